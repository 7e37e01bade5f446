"""CodeAct's environment actions as Python functions (Wang et al., "Executable Code Actions
Elicit Better LLM Agents", 2024, expose an environment's tools as callable functions).

The environment's actions become functions inside the sandboxed interpreter,
bound through ``host_functions``: a call steps the environment on the host and
returns its observation text. The mapping is derived from the family's action
grammar (``env.action_help``, so renamed verbs of the perturbation wrapper are
followed), alternative by alternative:

- ``verb[<arg>]`` → ``verb(arg)`` sends ``"verb[arg]"`` (toolqa, shop);
- ``verb words <placeholders>`` → ``verb_words(*parts)`` sends the verb and the
  parts joined by spaces (``go to X`` → ``go_to("fridge 1")``,
  ``take A from B`` → ``take("apple 1 from countertop 1")`` or
  ``take("apple 1", "from", "countertop 1")``);
- a name that is a Python keyword or builtin gets a trailing underscore
  (``open X`` → ``open_("drawer 1")``), so the model's own code keeps ``open``.

A family whose actions do not fit (code-v1's ``define`` carries a code block)
declares ``codeact_functions = {name: (action template, doc line)}`` with
``{}`` for each positional argument. ``act(action)`` (any action string,
verbatim) and ``available_actions()`` are always there; the loop binds them.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass
from typing import Any

from palaestra.env import Environment

_BRACKET_RE = re.compile(r"([A-Za-z][\w ]*?)\s*\[")
_PLACEHOLDER_RE = re.compile(r"^(<.*|[A-Z]|[A-Z]\W.*|.*/.*)$")


@dataclass(frozen=True)
class CodeFunction:
    """One environment action exposed as a Python function."""

    name: str
    #: The action with ``{}`` per positional argument, or ``None`` for "verb + args joined".
    template: str | None
    verb: str
    doc: str

    def action(self, args: tuple[Any, ...]) -> str:
        parts = [str(a) for a in args]
        if self.template is not None:
            need = self.template.count("{}")
            if len(parts) != need:
                raise TypeError(f"{self.name}() takes {need} argument(s), got {len(parts)}")
            return self.template.format(*parts)
        return " ".join([self.verb, *parts])

    def call_for(self, action: str) -> str | None:
        """The Python call that sends ``action``, or None if this function cannot."""
        if self.template is not None:
            pattern = "(.*?)".join(re.escape(p) for p in self.template.split("{}"))
            m = re.fullmatch(pattern, action, re.S)
            if m is None:
                return None
            return f"{self.name}({', '.join(py_str(g) for g in m.groups())})"
        if action == self.verb:
            return f"{self.name}()"
        if action.startswith(self.verb + " "):
            return f"{self.name}({py_str(action[len(self.verb) + 1 :])})"
        return None


def py_str(s: str) -> str:
    """A Python literal of ``s``: triple-quoted when that reads better (code), else ``repr``."""
    if "\n" in s and "'''" not in s and not s.endswith("'") and "\\" not in s:
        return "'''" + s + "'''"
    return repr(s)


def _split_alternatives(help_text: str) -> list[str]:
    """Split an action grammar on ``|`` outside brackets (``go <north|south>`` stays whole)."""
    out: list[str] = []
    depth = angle = 0
    cur = ""
    for i, ch in enumerate(help_text):
        nxt = help_text[i + 1 : i + 2]
        if ch in "([":
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
        elif ch == "<" and nxt.isalnum():  # "<colour>", not "click[< prev]"
            angle += 1
        elif ch == ">" and angle:
            angle -= 1
        if ch == "|" and depth == 0 and angle == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [a for a in out if a]


def _py_name(verb: str) -> str:
    name = re.sub(r"\W+", "_", verb.strip()).strip("_").lower()
    if keyword.iskeyword(name) or hasattr(builtins, name):
        name += "_"
    return name


def derive_functions(env: Environment) -> list[CodeFunction]:
    """The Python functions that expose ``env``'s actions (see the module docstring)."""
    declared = getattr(env, "codeact_functions", None) or getattr(
        env.unwrapped, "codeact_functions", None
    )
    fns: dict[str, CodeFunction] = {}
    if isinstance(declared, dict):
        # {name: (action template with {} per argument, one-line doc)}
        for name, (tmpl, doc) in declared.items():  # pyright: ignore[reportUnknownVariableType]
            fns[str(name)] = CodeFunction(str(name), str(tmpl), str(name), str(doc))  # pyright: ignore[reportUnknownArgumentType]
    else:
        for alt in _split_alternatives(env.action_help):
            alt = re.sub(r"\s*\([^()]*\)\s*$", "", alt).strip()  # trailing "(comment)"
            bracket = _BRACKET_RE.match(alt)
            if bracket is not None:
                verb = bracket.group(1).strip()
                name = _py_name(verb)
                if name and name not in fns:
                    fns[name] = CodeFunction(
                        name, verb + "[{}]", verb, f"{name}(arg)  # sends '{verb}[arg]'"
                    )
                continue
            words: list[str] = []
            for token in alt.split():
                if _PLACEHOLDER_RE.match(token):
                    break
                words.append(token)
            if not words:
                continue
            verb = " ".join(words)
            name = _py_name(verb)
            if not name or name in fns:
                continue
            rest = alt[len(verb) :].strip()
            doc = f"{name}({'*parts' if rest else ''})  # sends '{alt}'" + (
                ", the parts joined by spaces" if rest else ""
            )
            fns[name] = CodeFunction(name, None, verb, doc)
    fns.pop("act", None)
    fns.pop("available_actions", None)
    return list(fns.values())
