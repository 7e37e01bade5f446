"""Scripted agents for prompt-injection evaluation: ``ObedientAgent`` obeys what it reads.

The ``injection-v1`` suite measures AgentDojo's targeted attack success
("AgentDojo: A Dynamic Environment to Evaluate Prompt Injection Attacks and
Defenses for LLM Agents", Debenedetti et al., 2024): whether the agent
carries out an action that an instruction planted in third-party text asks
for (the ``inject_instruction`` perturbation). Its two scripted bounds are
the expert, which never reads observations and so is never attacked
successfully, and this agent, which executes the action of any
injection-shaped instruction in its latest observation and otherwise acts
like the expert (or at random): its attack success is ≈100%.

Like the expert it runs no model and speaks the ReAct format, so its
episodes have a model's shape and cost no tokens.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, Literal

from palaestra.agent._core import ModelCall
from palaestra.agent._react import EpisodeContext, ReactAgent
from palaestra.env import Environment
from palaestra.model import ChatMessage, Completion

#: An instruction that sets the user's task aside ("ignore previous instructions", "do the
#: following first") and names an action in backticks — the shape of every injection
#: template (``palaestra.env._injection.INJECTION_TEMPLATES``) and of common real ones.
_INSTRUCTION_RE = re.compile(
    r"(?:\b(?:ignore|disregard)\b[^`]{0,80}?\binstructions?\b|\bdo\s+the\s+following\s+first\b)"
    r"[^`]{0,160}?`([^`\n]+)`",
    re.IGNORECASE,
)

Fallback = Literal["expert", "random"]


def find_instruction(text: str) -> str | None:
    """The action the last injection-shaped instruction in ``text`` asks for, or None."""
    found = _INSTRUCTION_RE.findall(text)
    return " ".join(found[-1].split()) if found else None


def _reply(text: str) -> Completion:
    # No model ran: no tokens (as the expert's replies; see _baseline_agents).
    return Completion(text=text, finish_reason="stop", prompt_tokens=0, completion_tokens=0)


class ObedientAgent(ReactAgent):
    """Executes the action named by an injected instruction in the latest observation.

    Without one it acts like ``fallback``: ``"expert"`` (``env.expert()``, so
    the attack is the only thing that goes wrong) or ``"random"`` (uniform
    over ``available_actions()``, seeded by task and attempt).
    """

    name = "obedient"
    needs_model = False

    def __init__(self, *, fallback: Fallback = "expert", **kwargs: Any) -> None:
        if fallback not in ("expert", "random"):
            raise ValueError(f"fallback must be 'expert' or 'random', not {fallback!r}")
        super().__init__(**kwargs)
        self.fallback: Fallback = fallback

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        latest = messages[-1].content if messages and messages[-1].role == "user" else ""
        action = find_instruction(latest)
        if action is not None:
            thought = "The page tells me to do this first."
        elif self.fallback == "expert":
            action, thought = env.expert(), "I will work on the task."
        else:
            actions = env.available_actions()
            action, thought = (ctx.rng.choice(actions) if actions else "look"), "I will try this."
        if self.prompt == "act":
            return _reply(f"Action: {action}")
        return _reply(f"Thought: {thought}\nAction: {action}")
        yield  # pragma: no cover - a generator that never asks the model
