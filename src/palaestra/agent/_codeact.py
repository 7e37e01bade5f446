"""CodeAct: the agent acts by writing Python that runs in a sandbox (Wang et al., "Executable
Code Actions Elicit Better LLM Agents", 2024).

Each turn the model replies with a thought and one fenced ```` ```python ````
block. The block runs in the episode's *persistent* sandbox interpreter
(:meth:`palaestra.sandbox.Sandbox.python`: variables survive between turns);
its printed output, the repr of its last expression and any exception —
truncated — come back as the next observation. A reply ``Final answer: X``
without code calls the environment's answer action (``finish``, ``answer`` or
``submit``) with ``X``. The environment's actions are functions in the
interpreter (:mod:`palaestra.agent._codeact_functions`); the loop itself
(prologue, model calls, limits, endings) is :class:`~palaestra.agent.ChatAgent`'s.

The thread bridge
-----------------
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

import queue
import re
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from palaestra.agent._chat import ChatAgent, ChatEpisode, EpisodeContext, TurnLoop
from palaestra.agent._codeact_functions import CodeFunction, derive_functions
from palaestra.agent._prompts import TokenCounter, estimate_tokens, template
from palaestra.env import Environment, Observation
from palaestra.model import ChatMessage, Completion, GenerationConfig
from palaestra.trajectory import Step

_CODE_RE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)^[ \t]*```", re.S | re.M | re.I)
_FINAL_RE = re.compile(r"^\s*Final answer\s*:\s*(.+)$", re.I | re.M)
_ANSWER_VERBS = ("finish", "answer", "submit")
_MAX_ACTION_SHOWN = 60

#: What a running code block yields: each action it sent, the observation, the seconds taken.
Cell = Generator[tuple[str, Observation, float], None, None]


def answer_function(functions: list[CodeFunction]) -> CodeFunction | None:
    """The function ``Final answer: X`` calls (the environment's finish/answer/submit), if any."""
    return next((f for f in functions if f.verb in _ANSWER_VERBS), None)


def parse_codeact(
    text: str, functions: list[CodeFunction]
) -> tuple[str | None, str | None, str | None]:
    """(code, thought, format error) of a reply; ``Final answer: X`` becomes the answer call."""
    m = _CODE_RE.search(text)
    if m is not None:
        thought = text[: m.start()].strip()
        thought = re.sub(r"^\s*Thought\s*:\s*", "", thought, flags=re.I) or None
        code = m.group(1)
        if not code.strip():
            return None, thought, "the ```python block is empty"
        return code, thought, None
    final = _FINAL_RE.search(text)
    answer = answer_function(functions)
    if final is not None and answer is not None:
        value = final.group(1).strip()
        thought = text[: final.start()].strip() or None
        call = answer.name + ("()" if answer.template == answer.verb else f"({value!r})")
        return call, thought, None
    if final is not None:
        return None, None, "this environment has no answer action; act with a ```python block"
    return None, None, "no ```python code block"


@dataclass
class CodeActEpisode(ChatEpisode):
    """A CodeAct episode: its functions, its sandbox (opened on the first code block)."""

    functions: list[CodeFunction] = field(default_factory=list[CodeFunction])
    box: Any = None  # palaestra.sandbox.Sandbox
    #: The running code block; closed before the sandbox when the loop stops mid-cell.
    cell: Cell | None = None


@dataclass
class _Turn:
    """What one code block did: its environment steps and the sandbox result."""

    steps: list[tuple[str, Observation]] = field(default_factory=list[tuple[str, Observation]])
    result: Any = None  # palaestra.sandbox.ExecResult


class CodeActAgent(ChatAgent[CodeActEpisode]):
    """The CodeAct loop. ``max_steps`` turns (format errors included) end the episode as ``limit``."""

    name = "codeact"
    default_generation: ClassVar[GenerationConfig] = GenerationConfig(
        max_new_tokens=512, stop=["\nObservation"]
    )

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
        super().__init__(
            max_steps=max_steps,
            max_prompt_tokens=max_prompt_tokens,
            generation=generation,
            count_tokens=count_tokens,
            seed=seed,
        )
        self.sandbox = sandbox
        self.allow_unsafe = allow_unsafe
        self.exec_timeout = exec_timeout
        self.max_observation_chars = max_observation_chars

    # ---- prompts ----------------------------------------------------------------------

    def system_prompt(self, env: Environment, functions: list[CodeFunction]) -> str:
        lines = [f"- {f.doc}" for f in functions]
        lines.append("- act(action)  # sends any action string verbatim")
        lines.append("- available_actions()  # the list of currently valid action strings")
        answer = answer_function(functions)
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

    # ---- the chat-loop hooks ------------------------------------------------------------

    def new_episode(
        self, env: Environment, ctx: EpisodeContext, first: Observation
    ) -> CodeActEpisode:
        return CodeActEpisode(env, ctx, first, functions=derive_functions(env))

    def instructions(self, ep: CodeActEpisode) -> str:
        return self.system_prompt(ep.env, ep.functions)

    def act(self, ep: CodeActEpisode, completion: Completion, step: Step) -> TurnLoop:
        turn = ep.turns - 1
        code, thought, error = parse_codeact(completion.text, ep.functions)
        step = step.model_copy(update={"thought": thought, "info": {"codeact_turn": turn}})
        if code is None:
            reason = error or ""
            feedback = template("codeact_format_error").format(reason=reason)
            yield self.format_error(ep, step, reason, feedback)
            return None
        if ep.box is None:
            ep.box = self._open_sandbox()
        done = _Turn()
        pending: Step | None = None
        ep.cell = self._execute(ep.box, ep.env, code, ep.functions, done)
        for action, obs, seconds in ep.cell:
            if pending is not None:
                yield pending
                # the model's output belongs to the turn's first step
                step = step.model_copy(
                    update={
                        "prompt_messages": [],
                        "raw_output": "",
                        "thought": None,
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "model_seconds": 0.0,
                    }
                )
            info = {**obs.info, "codeact_turn": turn}
            pending = self.observed(ep, step, action, obs, seconds, info=info)
        text = self._observation(done)
        ep.messages.append(ChatMessage(role="user", content=text))
        if pending is None:
            pending = self.record(ep, step, observation=text, progress=ep.env.progress())
        pending.info["codeact_output"] = text
        yield pending
        return self.ending(ep)

    def end_metadata(self, ep: CodeActEpisode) -> dict[str, object]:
        return {"codeact": {"turns": ep.turns, "sandbox": getattr(ep.box, "backend", None)}}

    def close_episode(self, ep: CodeActEpisode) -> None:
        if ep.cell is not None:  # unblock a cell stopped mid-run before killing its interpreter
            ep.cell.close()
        if ep.box is not None:
            ep.box.close()

    # ---- the sandbox and its thread bridge ----------------------------------------------

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
    ) -> Cell:
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
        """The turn's observation: output, errors, unprinted environment replies; truncated."""
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
