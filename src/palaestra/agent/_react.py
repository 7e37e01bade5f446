"""ReAct: interleaved reasoning and acting (Yao et al., "ReAct: Synergizing Reasoning and
Acting in Language Models", 2023).

Each turn the model writes ``Thought: ...`` then ``Action: ...``; the action is
sent to the environment and its observation becomes the next user message.
Deviation from the paper: no few-shot exemplars by default (the system prompt
describes the action space compactly, as AgentOccam recommends); pass
``examples=`` to add them. An output without a parsable action is a format
error: the model gets the feedback in ``prompts/format_error.txt`` as its
next observation, the environment is not stepped, and the turn counts toward
the step limit. The loop itself (prologue, model calls, step building, endings) is
:class:`~palaestra.agent.ChatAgent`'s; this module states the reply format and the acting.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# EpisodeContext lived here until the chat-loop base took it; kept importable for a release.
from palaestra.agent._chat import ChatAgent, ChatEpisode, EpisodeContext, TurnLoop
from palaestra.agent._memory import TrajectoryMemory, format_examples
from palaestra.agent._prompts import TokenCounter, estimate_tokens, template
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


class ReactAgent(ChatAgent[ChatEpisode]):
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
        memory: TrajectoryMemory | str | Path | None = None,
        memory_k: int = 2,
    ) -> None:
        if prompt not in PROMPT_STYLES:
            raise ValueError(f"prompt must be one of {PROMPT_STYLES}, not {prompt!r}")
        super().__init__(
            max_steps=max_steps,
            max_prompt_tokens=max_prompt_tokens,
            generation=generation,
            count_tokens=count_tokens,
            seed=seed,
        )
        self.prompt = prompt
        self.examples = examples
        #: Past successes retrieved per task as worked examples (AdaptAgent-style; see
        #: :mod:`palaestra.agent._memory`); a path is a file written by ``TrajectoryMemory.save``.
        self.trajectory_memory = (
            memory
            if memory is None or isinstance(memory, TrajectoryMemory)
            else TrajectoryMemory.load(memory)
        )
        if memory_k < 1:
            raise ValueError(f"memory_k must be at least 1, not {memory_k}")
        self.memory_k = memory_k

    def system_prompt(self, env: Environment, task: Task) -> str:
        if self.prompt in ("compact", "act"):
            text = template(f"react_{self.prompt}").strip()
        else:
            text = template("react_system").format(
                description=env.description.strip(), action_help=env.action_help.strip()
            )
        if self.examples:
            text += "\n\n" + self.examples.strip()
        if self.trajectory_memory is not None:
            hits = self.trajectory_memory.retrieve(
                task.instruction, self.memory_k, env_id=task.env_id
            )
            if hits:
                text += "\n\n" + format_examples(hits)
        return text

    def new_episode(self, env: Environment, ctx: EpisodeContext, first: Observation) -> ChatEpisode:
        return ChatEpisode(env, ctx, first)

    def instructions(self, ep: ChatEpisode) -> str:
        return self.system_prompt(ep.env, ep.ctx.task)

    def act(self, ep: ChatEpisode, completion: Completion, step: Step) -> TurnLoop:
        parsed = parse_react(completion.text)
        step = step.model_copy(update={"thought": parsed.thought, "action": parsed.action})
        if parsed.action is None:
            reason = parsed.error or ""
            yield self.format_error(ep, step, reason, format_error_feedback(self.prompt, reason))
            return None
        t0 = time.perf_counter()
        obs = ep.env.step(parsed.action)
        seconds = time.perf_counter() - t0
        step = self.observed(ep, step, parsed.action, obs, seconds)
        ep.messages.append(ChatMessage(role="user", content=obs.text))
        yield step
        return self.ending(ep)
