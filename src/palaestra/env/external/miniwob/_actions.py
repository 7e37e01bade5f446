"""Parsing the MiniWoB++ adapter's actions: BrowserGym's high-level style, leniently.

``click(12)``, ``type(12, "Bobby")``, ``select(7, "Canada")``,
``press("Enter")`` / ``press(12, "Enter")``, ``focus(12)``, ``clear(12)``,
``hover(12)``, ``dblclick(12)``. Following BrowserGym (de Chezelles et al.,
2024, ``browsergym/core/action/functions.py``), ``fill`` and
``select_option`` are accepted as aliases of ``type`` and ``select``; the id
may be quoted (``click('12')``, BrowserGym's bid form) or bracketed
(``click([12])``, as the page listing shows it), and the parentheses may be
dropped (``click 12``). ``type`` replaces the field's content, like
BrowserGym's ``fill``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Literal

Verb = Literal["click", "dblclick", "hover", "focus", "clear", "type", "select", "press"]

_ALIASES: dict[str, Verb] = {
    "click": "click",
    "dblclick": "dblclick",
    "double_click": "dblclick",
    "hover": "hover",
    "focus": "focus",
    "clear": "clear",
    "type": "type",
    "fill": "type",
    "select": "select",
    "select_option": "select",
    "press": "press",
    "keyboard_press": "press",
}
_ELEMENT_ONLY: frozenset[Verb] = frozenset({"click", "dblclick", "hover", "focus", "clear"})
_CALL = re.compile(r"^([A-Za-z_]+)\s*\((.*)\)$", re.DOTALL)
_BARE = re.compile(r"^([A-Za-z_]+)\s+(.*)$", re.DOTALL)
_ID = re.compile(r"""^\s*(?:\[\s*)?["']?\s*(\d+)\s*["']?(?:\s*\])?\s*(?:,\s*(.*))?$""", re.DOTALL)


class ActionParseError(ValueError):
    """The action does not parse; the message says how it should look."""


@dataclass(frozen=True)
class Action:
    verb: Verb
    pid: int | None = None
    text: str | None = None


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        try:
            value = ast.literal_eval(s)
        except (ValueError, SyntaxError):
            return s[1:-1]
        if isinstance(value, str):
            return value
    return s


def parse_action(raw: str) -> Action:
    """Parse one action string; raises :class:`ActionParseError` with a fix when it cannot."""
    s = raw.strip().rstrip(";").strip()
    m = _CALL.match(s) or _BARE.match(s)
    word = (m.group(1) if m else s).lower()
    verb = _ALIASES.get(word)
    if verb is None:
        known = ", ".join(sorted({v for v in _ALIASES.values()}))
        raise ActionParseError(f"unknown action {word[:40]!r}; the verbs are {known}")
    args = m.group(2).strip() if m else ""
    if verb == "press":
        idm = _ID.match(args)
        if idm and idm.group(2) is not None:
            key = _unquote(idm.group(2))
            pid: int | None = int(idm.group(1))
        else:
            key, pid = _unquote(args), None
        if not key:
            raise ActionParseError('press needs a key, e.g. press("Enter") or press(12, "Tab")')
        return Action("press", pid, key)
    idm = _ID.match(args)
    if idm is None:
        raise ActionParseError(
            f"{verb} needs an element id, the number in brackets in the page listing, "
            f"e.g. {verb}(12" + (")" if verb in _ELEMENT_ONLY else ', "text")')
        )
    pid = int(idm.group(1))
    rest = idm.group(2)
    if verb in _ELEMENT_ONLY:
        if rest is not None and rest.strip():
            raise ActionParseError(f"{verb} takes only an element id, e.g. {verb}({pid})")
        return Action(verb, pid)
    if rest is None:
        raise ActionParseError(f'{verb} needs a text after the id, e.g. {verb}({pid}, "some text")')
    return Action(verb, pid, _unquote(rest))
