"""ReAct: interleaved reasoning and acting (Yao et al., "ReAct: Synergizing Reasoning and
Acting in Language Models", 2023).

Each turn the model writes ``Thought: ...`` then ``Action: ...``; the action is
sent to the environment and its observation becomes the next user message.
Deviation from the paper: no few-shot exemplars by default (the system prompt
describes the action space compactly, as AgentOccam recommends); pass
``examples=`` to add them. An output without a parsable action is a format
error: the model gets the feedback in ``prompts/format_error.txt`` as its
next observation, the environment is not stepped, and the turn counts toward
the step limit.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal

from palaestra.agent._core import Agent, AgentLoop, EpisodeEnd, ModelCall, for_attempt
from palaestra.agent._prompts import TokenCounter, estimate_tokens, fit_history, template
from palaestra.env import Environment, Observation, Task
from palaestra.model import ChatMessage, Completion, GenerationConfig
from palaestra.trajectory import Step

_ACTION_RE = re.compile(r"^\s*Action\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_FENCE_NEXT_RE = re.compile(r"[ \t]*\n[ \t]*(?=```)")
_FENCE_CLOSE_RE = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)
_THOUGHT_RE = re.compile(r"Thought\s*:\s*(.*?)(?=^\s*Action\s*:|\Z)", re.IGNORECASE | re.S | re.M)


#: ``full``: the environment's description and action grammar (AgentOccam's compact
#: description of the observation and action spaces). ``compact``: the reply format
#: only — for small models fine-tuned on a family, where the ~250 tokens of
#: description cost training and prefill time and carry nothing the data does not.
#: ``act``: compact, and the reply is the ``Action:`` line alone — the ReAct paper's
#: Act-only baseline; for small models whose thoughts would only repeat the action.
PromptStyle = Literal["full", "compact", "act"]
PROMPT_STYLES: tuple[PromptStyle, ...] = ("full", "compact", "act")


def format_error_feedback(prompt: str, reason: str) -> str:
    """What a model hears after a reply without a parsable action, in its prompt style."""
    return template("format_error_act" if prompt == "act" else "format_error").format(reason=reason)


@dataclass
class EpisodeContext:
    """Per-episode state handed to :meth:`ReactAgent.decide` (agents are shared by episodes)."""

    task: Task
    attempt: int
    rng: random.Random
    #: Decoding settings of this episode (the seed varies by attempt).
    generation: GenerationConfig


@dataclass(frozen=True)
class Parsed:
    thought: str | None
    action: str | None
    error: str | None


def _fenced_block(text: str) -> str | None:
    """The ```-fenced block at the start of ``text`` (fences included), or None if unclosed."""
    first = text.find("\n")
    if first < 0:
        return None
    close = _FENCE_CLOSE_RE.search(text, first + 1)
    return text[: close.end()].rstrip() if close else None


def parse_react(text: str) -> Parsed:
    """Parse ``Thought: ...\\nAction: ...``. The first ``Action:`` line wins.

    A multi-line action (code) is a ```-fenced block opened on the ``Action:``
    line or on the line right after it (``Action: define`` then the block);
    the action is then the line's text, a newline and the block, fences included.
    """
    m = _ACTION_RE.search(text)
    thought_m = _THOUGHT_RE.search(text)
    thought = thought_m.group(1).strip() if thought_m else None
    if m is None:
        return Parsed(thought, None, "no 'Action:' line")
    line = m.group(1).strip()
    inline = line.startswith("```") and len(line) > 6 and line.endswith("```")
    after = _FENCE_NEXT_RE.match(text, m.end())
    if (line.startswith("```") and not inline) or after is not None:
        # A fenced block carries a multi-line action (code): it starts on the
        # Action line itself or on the line right after it, and is kept verbatim.
        verb = "" if line.startswith("```") else line.strip("`").strip()
        start = m.start(1) if not verb else after.end() if after else m.end()
        block = _fenced_block(text[start:])
        if block is None:
            return Parsed(thought, None, "the ``` block after 'Action:' is not closed with ```")
        return Parsed(thought, f"{verb}\n{block}" if verb else block, None)
    action = line.strip("`").strip()
    if not action:
        return Parsed(thought, None, "the 'Action:' line is empty")
    return Parsed(thought, action, None)


class ReactAgent(Agent):
    """The ReAct loop. ``max_steps`` turns (format errors included) end the episode as ``limit``."""

    name = "react"

    def __init__(
        self,
        *,
        max_steps: int = 30,
        max_prompt_tokens: int = 3072,
        generation: GenerationConfig | None = None,
        count_tokens: TokenCounter = estimate_tokens,
        examples: str = "",
        seed: int = 0,
        prompt: PromptStyle = "full",
    ) -> None:
        if prompt not in PROMPT_STYLES:
            raise ValueError(f"prompt must be one of {PROMPT_STYLES}, not {prompt!r}")
        self.prompt = prompt
        self.max_steps = max_steps
        self.max_prompt_tokens = max_prompt_tokens
        self.generation = generation or GenerationConfig(max_new_tokens=128, stop=["\nObservation"])
        self.count_tokens = count_tokens
        self.examples = examples
        self.seed = seed

    def system_prompt(self, env: Environment, task: Task) -> str:
        if self.prompt in ("compact", "act"):
            text = template(f"react_{self.prompt}").strip()
        else:
            text = template("react_system").format(
                description=env.description.strip(), action_help=env.action_help.strip()
            )
        return text + ("\n\n" + self.examples.strip() if self.examples else "")

    def extra_system(self, task: Task) -> str:
        """Hook for subclasses (Reflexion's memory)."""
        return ""

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        """Get the next reply: ask the model (subclasses may answer without one)."""
        prompt = fit_history(messages, self.max_prompt_tokens, self.count_tokens)
        completion = yield ModelCall(prompt, ctx.generation)
        if not isinstance(completion, Completion):
            raise TypeError("the driver must send a Completion in reply to a ModelCall")
        return completion

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        rng = random.Random(f"{self.seed}:{task.task_id}:{attempt}")
        ctx = EpisodeContext(task, attempt, rng, for_attempt(self.generation, attempt))
        t0 = time.perf_counter()
        # Reset first: wrappers (perturbations) set up the task's surface on reset,
        # and the system prompt must describe this task's actions, not the last one's.
        first = env.reset(task)
        env_seconds = time.perf_counter() - t0
        system = self.system_prompt(env, task)
        extra = self.extra_system(task)
        if extra:
            system += "\n\n" + extra
        messages = [
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=first.text),
        ]
        previous: str | None = None
        obs: Observation = first
        for index in range(self.max_steps):
            new_from = len(messages) - 1
            t0 = time.perf_counter()
            completion = yield from self.decide(env, messages, ctx)
            model_seconds = time.perf_counter() - t0
            parsed = parse_react(completion.text)
            messages.append(ChatMessage(role="assistant", content=completion.text))
            step = Step(
                index=index,
                prompt_messages=messages[new_from:-1],
                raw_output=completion.text,
                thought=parsed.thought,
                action=parsed.action,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                model_seconds=model_seconds,
                env_seconds=env_seconds,
            )
            env_seconds = 0.0
            if parsed.action is None:
                feedback = format_error_feedback(self.prompt, parsed.error or "")
                step = step.model_copy(
                    update={
                        "format_error": parsed.error,
                        "observation": feedback,
                        "progress": env.progress(),
                    }
                )
                messages.append(ChatMessage(role="user", content=feedback))
                yield step
                continue
            t0 = time.perf_counter()
            obs = env.step(parsed.action)
            env_seconds = time.perf_counter() - t0
            step = step.model_copy(
                update={
                    "observation": obs.text,
                    "reward": obs.reward,
                    "progress": env.progress(),
                    "terminated": obs.terminated,
                    "truncated": obs.truncated,
                    "invalid_action": bool(obs.info.get("invalid")),
                    "repeated_action": parsed.action == previous,
                    "info": obs.info,
                    "env_seconds": env_seconds,
                }
            )
            previous = parsed.action
            messages.append(ChatMessage(role="user", content=obs.text))
            yield step
            if obs.terminated:
                outcome = "success" if obs.info.get("success") else "failure"
                return EpisodeEnd(outcome, messages)
            if obs.truncated:
                return EpisodeEnd("limit", messages, limit_reason="env_truncated")
        return EpisodeEnd("limit", messages, limit_reason="steps")
