"""CodeAct: the agent acts by writing Python that runs in a sandbox (Wang et al., "Executable
Code Actions Elicit Better LLM Agents", 2024).

Each turn the model replies with a thought and one fenced ```` ```python ````
block. The block runs in the episode's *persistent* sandbox interpreter
(:meth:`palaestra.sandbox.Sandbox.python`: variables survive between turns);
its printed output, the repr of its last expression and any exception —
truncated — come back as the next observation. A reply ``Final answer: X``
without code calls the environment's answer action (``finish``, ``answer`` or
``submit``) with ``X``.

Environment actions as Python functions
---------------------------------------
The environment's actions become functions inside the interpreter, bound
through ``host_functions``: a call steps the environment on the host and
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
declares ``codeact_functions = {name: action template}`` with ``{}`` for each
positional argument. ``act(action)`` (any action string, verbatim) and
``available_actions()`` are always there.

Each environment step made from inside the code is one :class:`Step` event,
yielded while the code runs: ``python()`` runs in a worker thread and each
host call is handed to the generator over a queue, so the environment is only
touched by the thread that drives the agent. A turn that takes no environment
step is recorded as one Step with ``action=None`` (and no format error); the
turn's full observation is in ``info["codeact_output"]`` of its last Step.

Deviations from the paper: no few-shot examples and no tool-use
documentation beyond the derived function list (AgentOccam's compact prompt,
as for ReAct); environment replies are appended to the observation when the
code did not print them, so a model that forgets to ``print`` still sees them;
the sandbox (bubblewrap by default, see :mod:`palaestra.sandbox`) replaces
the paper's Jupyter kernel in a Docker container. A sandbox failure ends the
episode with the ``error`` outcome (``SandboxUnavailable``, an ``EnvError``
whose message starts with ``sandbox_unavailable``), never a reward of 0.
"""

from __future__ import annotations

import builtins
import keyword
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from palaestra.agent._baseline_agents import no_model_reply
from palaestra.agent._core import Agent, AgentLoop, EpisodeEnd, ModelCall, for_attempt
from palaestra.agent._prompts import TokenCounter, estimate_tokens, fit_history, template
from palaestra.agent._react import EpisodeContext
from palaestra.env import Environment, Observation, Task
from palaestra.model import ChatMessage, Completion, GenerationConfig
from palaestra.trajectory import Step

_CODE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```", re.S | re.M | re.I)
_FINAL_RE = re.compile(r"^\s*Final answer\s*:\s*(.+)$", re.I | re.M)
_ANSWER_VERBS = ("finish", "answer", "submit")
_BRACKET_RE = re.compile(r"([A-Za-z][\w ]*?)\s*\[")
_PLACEHOLDER_RE = re.compile(r"^(<.*|[A-Z]|[A-Z]\W.*|.*/.*)$")
_MAX_ACTION_SHOWN = 60


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
            return f"{self.name}({', '.join(_py_str(g) for g in m.groups())})"
        if action == self.verb:
            return f"{self.name}()"
        if action.startswith(self.verb + " "):
            return f"{self.name}({_py_str(action[len(self.verb) + 1 :])})"
        return None


def _py_str(s: str) -> str:
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


@dataclass
class _Turn:
    """What one code block did: its environment steps and the sandbox result."""

    steps: list[tuple[str, Observation]] = field(default_factory=list[tuple[str, Observation]])
    result: Any = None  # palaestra.sandbox.ExecResult


class CodeActAgent(Agent):
    """The CodeAct loop. ``max_steps`` turns (format errors included) end the episode as ``limit``."""

    name = "codeact"

    def __init__(
        self,
        *,
        max_steps: int = 30,
        max_prompt_tokens: int = 3072,
        generation: GenerationConfig | None = None,
        count_tokens: TokenCounter = estimate_tokens,
        seed: int = 0,
        prompt: str = "full",
        sandbox: str = "auto",
        allow_unsafe: bool = False,
        exec_timeout: float = 20.0,
        max_observation_chars: int = 2000,
    ) -> None:
        if prompt != "full":
            raise ValueError(f"the codeact agent has one prompt style, 'full'; got {prompt!r}")
        self.max_steps = max_steps
        self.max_prompt_tokens = max_prompt_tokens
        self.generation = generation or GenerationConfig(max_new_tokens=512, stop=["\nObservation"])
        self.count_tokens = count_tokens
        self.seed = seed
        self.sandbox = sandbox
        self.allow_unsafe = allow_unsafe
        self.exec_timeout = exec_timeout
        self.max_observation_chars = max_observation_chars

    # ---- prompts ----------------------------------------------------------------------

    def system_prompt(self, env: Environment, functions: list[CodeFunction]) -> str:
        lines = [f"- {f.doc}" for f in functions]
        lines.append("- act(action)  # sends any action string verbatim")
        lines.append("- available_actions()  # the list of currently valid action strings")
        answer = next((f for f in functions if f.verb in _ANSWER_VERBS), None)
        final = (
            f"When you know the final answer you may instead reply `Final answer: <answer>`, "
            f"which calls {answer.name}(<answer>)."
            if answer is not None and answer.template and answer.template.count("{}") == 1
            else "The episode ends when the environment says so."
        )
        return (
            template("codeact_system")
            .format(description=env.description.strip(), functions="\n".join(lines), final=final)
            .strip()
        )

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        """Get the next reply: ask the model (test doubles answer without one)."""
        prompt = fit_history(messages, self.max_prompt_tokens, self.count_tokens)
        completion = yield ModelCall(prompt, ctx.generation)
        if not isinstance(completion, Completion):
            raise TypeError("the driver must send a Completion in reply to a ModelCall")
        return completion

    # ---- the loop -----------------------------------------------------------------------

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        rng = random.Random(f"{self.seed}:{task.task_id}:{attempt}")
        ctx = EpisodeContext(task, attempt, rng, for_attempt(self.generation, attempt))
        t0 = time.perf_counter()
        first = env.reset(task)
        env_seconds = time.perf_counter() - t0
        functions = derive_functions(env)
        messages = [
            ChatMessage(role="system", content=self.system_prompt(env, functions)),
            ChatMessage(role="user", content=first.text),
        ]
        box: Any = None
        cell: Generator[tuple[str, Observation, float], None, None] | None = None
        index = 0
        last: Observation = first
        previous: str | None = None
        try:
            for turn in range(self.max_steps):
                new_from = len(messages) - 1
                t0 = time.perf_counter()
                completion = yield from self.decide(env, messages, ctx)
                model_seconds = time.perf_counter() - t0
                messages.append(ChatMessage(role="assistant", content=completion.text))
                code, thought, error = self._parse(completion.text, functions)
                base = Step(
                    index=index,
                    prompt_messages=messages[new_from:-1],
                    raw_output=completion.text,
                    thought=thought,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    model_seconds=model_seconds,
                    env_seconds=env_seconds,
                    info={"codeact_turn": turn},
                )
                env_seconds = 0.0
                if code is None:
                    feedback = template("codeact_format_error").format(reason=error)
                    messages.append(ChatMessage(role="user", content=feedback))
                    yield base.model_copy(
                        update={
                            "format_error": error,
                            "observation": feedback,
                            "progress": env.progress(),
                        }
                    )
                    index += 1
                    continue
                if box is None:
                    box = self._open_sandbox()
                turn_state = _Turn()
                pending: Step | None = None
                cell = self._execute(box, env, code, functions, turn_state)
                for action, obs, seconds in cell:
                    if pending is not None:
                        yield pending
                        index += 1
                    update: dict[str, Any] = {
                        "index": index,
                        "action": action,
                        "observation": obs.text,
                        "reward": obs.reward,
                        "progress": env.progress(),
                        "terminated": obs.terminated,
                        "truncated": obs.truncated,
                        "invalid_action": bool(obs.info.get("invalid")),
                        "repeated_action": action == previous,
                        "info": {**obs.info, "codeact_turn": turn},
                        "env_seconds": seconds,
                    }
                    if pending is not None:  # the model's output belongs to the turn's first step
                        update.update(
                            prompt_messages=[],
                            raw_output="",
                            thought=None,
                            prompt_tokens=0,
                            completion_tokens=0,
                            model_seconds=0.0,
                        )
                    pending = base.model_copy(update=update)
                    previous, last = action, obs
                text = self._observation(turn_state)
                messages.append(ChatMessage(role="user", content=text))
                if pending is None:
                    pending = base.model_copy(
                        update={"observation": text, "progress": env.progress()}
                    )
                pending.info["codeact_output"] = text
                yield pending
                index += 1
                if last.terminated:
                    outcome = "success" if last.info.get("success") else "failure"
                    return EpisodeEnd(outcome, messages, metadata=self._meta(box, turn + 1))
                if last.truncated:
                    return EpisodeEnd(
                        "limit",
                        messages,
                        limit_reason="env_truncated",
                        metadata=self._meta(box, turn + 1),
                    )
            return EpisodeEnd(
                "limit", messages, limit_reason="steps", metadata=self._meta(box, self.max_steps)
            )
        finally:
            if cell is not None:  # unblock a cell stopped mid-run before killing its interpreter
                cell.close()
            if box is not None:
                box.close()

    # ---- pieces -------------------------------------------------------------------------

    def _parse(
        self, text: str, functions: list[CodeFunction]
    ) -> tuple[str | None, str | None, str | None]:
        """(code, thought, format error) of a reply."""
        m = _CODE_RE.search(text)
        if m is not None:
            thought = text[: m.start()].strip()
            thought = re.sub(r"^\s*Thought\s*:\s*", "", thought, flags=re.I) or None
            code = m.group(1)
            if not code.strip():
                return None, thought, "the ```python block is empty"
            return code, thought, None
        final = _FINAL_RE.search(text)
        answer = next((f for f in functions if f.verb in _ANSWER_VERBS), None)
        if final is not None and answer is not None:
            value = final.group(1).strip()
            thought = text[: final.start()].strip() or None
            call = answer.name + ("()" if answer.template == answer.verb else f"({value!r})")
            return call, thought, None
        if final is not None:
            return None, None, "this environment has no answer action; act with a ```python block"
        return None, None, "no ```python code block"

    def _open_sandbox(self) -> Any:
        from palaestra.sandbox import SandboxError, SandboxUnavailable, open_sandbox

        try:
            box = open_sandbox(self.sandbox, allow_unsafe=self.allow_unsafe)
            box.start()
        except SandboxUnavailable:
            raise
        except SandboxError as e:  # NoSandboxBackend, bad backend name
            raise SandboxUnavailable(f"sandbox_unavailable: {e}") from e
        return box

    def _execute(
        self,
        box: Any,
        env: Environment,
        code: str,
        functions: list[CodeFunction],
        turn: _Turn,
    ) -> Generator[tuple[str, Observation, float], None, None]:
        """Run ``code`` in a worker thread; step ``env`` here for each action the code takes."""
        from palaestra.sandbox import SandboxUnavailable

        requests: queue.Queue[tuple[str, Any]] = queue.Queue()
        replies: queue.Queue[tuple[bool, Any]] = queue.Queue()
        stopped = threading.Event()

        def host(kind: str, fn: CodeFunction | None) -> Callable[..., Any]:
            def call(*args: Any) -> Any:
                if stopped.is_set():
                    raise RuntimeError("the episode was stopped")
                payload: Any = None
                if fn is not None:
                    payload = fn.action(args)
                elif kind == "step":
                    if len(args) != 1:
                        raise TypeError("act() takes one action string")
                    payload = str(args[0])
                requests.put((kind, payload))
                ok, value = replies.get()
                if not ok:
                    raise RuntimeError(value)
                return value

            return call

        bound: dict[str, Callable[..., Any]] = {f.name: host("step", f) for f in functions}
        bound["act"] = host("step", None)
        bound["available_actions"] = host("actions", None)

        def work() -> None:
            try:
                res = box.python(code, timeout=self.exec_timeout, host_functions=bound)
                requests.put(("done", res))
            except BaseException as e:  # handed to the agent's thread, which re-raises
                requests.put(("failed", e))

        worker = threading.Thread(target=work, name="codeact-cell", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    kind, payload = requests.get(timeout=self.exec_timeout + 30.0)
                except queue.Empty:
                    raise SandboxUnavailable(
                        "sandbox_unavailable: the interpreter did not answer within "
                        f"{self.exec_timeout + 30.0:.0f}s"
                    ) from None
                if kind == "done":
                    turn.result = payload
                    return
                if kind == "failed":
                    if isinstance(payload, SandboxUnavailable):
                        raise payload
                    raise SandboxUnavailable(f"sandbox_unavailable: {payload!r}") from payload
                if kind == "actions":
                    replies.put((True, env.available_actions()))
                    continue
                action: str = payload
                if turn.steps and turn.steps[-1][1].done:
                    replies.put((False, "The episode is over: no more actions."))
                    continue
                t0 = time.perf_counter()
                try:
                    obs = env.step(action)
                except BaseException:
                    replies.put((False, "the environment failed"))
                    raise
                turn.steps.append((action, obs))
                replies.put((True, obs.text))
                yield action, obs, time.perf_counter() - t0
        finally:
            stopped.set()
            replies.put((False, "the episode was stopped"))
            worker.join(timeout=0 if turn.result is not None else 5.0)

    def _observation(self, turn: _Turn) -> str:
        res = turn.result
        parts: list[str] = []
        out = (res.stdout if res is not None else "").rstrip()
        if out:
            parts.append(out)
        if res is not None and res.stderr.strip():
            parts.append(res.stderr.rstrip())
        if res is not None and res.error:
            parts.append(res.error.rstrip())
        if res is not None and res.timed_out:
            parts.append(
                f"The code timed out after {self.exec_timeout:.0f}s; the interpreter was "
                "restarted and earlier variables are lost."
            )
        for action, obs in turn.steps:
            if obs.text.strip() and obs.text.strip() not in out:
                shown = (
                    action
                    if len(action) <= _MAX_ACTION_SHOWN
                    else action[:_MAX_ACTION_SHOWN] + "..."
                )
                parts.append(f"[{shown}] -> {obs.text.strip()}")
        if turn.steps and turn.steps[-1][1].done:
            parts.append("The episode has ended.")
        text = "\n".join(parts) if parts else "(the code ran and printed nothing)"
        limit = self.max_observation_chars
        if len(text) > limit:
            half = limit // 2
            text = f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"
        return text

    @staticmethod
    def _meta(box: Any, turns: int) -> dict[str, object]:
        return {"codeact": {"turns": turns, "sandbox": getattr(box, "backend", None)}}


class CodeActExpertAgent(CodeActAgent):
    """Test double: writes the environment expert's next action as a one-call code block."""

    name = "codeact-expert"
    needs_model = False

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        return no_model_reply(expert_code_reply(env))
        yield  # pragma: no cover - a generator that never asks the model


def expert_code_reply(env: Environment) -> str:
    """A CodeAct reply that takes ``env.expert()``'s action through the derived functions."""
    action = env.expert()
    call = next(
        (c for f in derive_functions(env) if (c := f.call_for(action)) is not None),
        f"act({_py_str(action)})",
    )
    return f"Thought: the next step is {action.splitlines()[0]!r}.\n```python\nprint({call})\n```"
