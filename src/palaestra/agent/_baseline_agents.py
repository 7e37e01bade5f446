"""Agents that need no model: the environment's expert (for demonstrations), uniform random,
and the expert writing CodeAct code (the CodeAct loop's test double).

The first two speak the ReAct format, the third CodeAct's, so their trajectories
have exactly the shape a model's do and feed the same data builders: the expert's
conversations are supervised fine-tuning demonstrations (AgentTuning / AgentEvol's behavioural
cloning data). The expert's thought is a fixed template — the oracle has a
plan, not prose; builders that want richer thoughts can rewrite them.

No model runs, so no tokens are spent: their steps and episodes count 0
prompt and 0 completion tokens (the engine counts an episode's tokens from
model replies only, and a step must agree with its episode).
"""

from __future__ import annotations

from collections.abc import Generator

from palaestra.agent._chat import EpisodeContext
from palaestra.agent._codeact import CodeActAgent
from palaestra.agent._codeact_functions import derive_functions, py_str
from palaestra.agent._core import ModelCall
from palaestra.agent._react import ReactAgent
from palaestra.env import Environment
from palaestra.model import ChatMessage, Completion


def no_model_reply(text: str) -> Completion:
    """The reply of an agent that runs no model: no tokens spent (see the module docstring)."""
    return Completion(text=text, finish_reason="stop", prompt_tokens=0, completion_tokens=0)


class ExpertAgent(ReactAgent):
    """Replays the environment's oracle (``env.expert()``) in ReAct format."""

    name = "expert"
    needs_model = False
    thought = "I will {action}."  # short: demonstrations for small models cost per token

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        action = env.expert()
        if self.prompt == "act":
            return no_model_reply(f"Action: {action}")
        return no_model_reply(f"Thought: {self.thought.format(action=action)}\nAction: {action}")
        yield  # pragma: no cover - makes this a generator that never asks the model


class RandomAgent(ReactAgent):
    """Uniform over ``available_actions()``, seeded by task and attempt."""

    name = "random"
    needs_model = False

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        actions = env.available_actions()
        action = ctx.rng.choice(actions) if actions else "look"
        return no_model_reply(f"Thought: I will try something.\nAction: {action}")
        yield  # pragma: no cover


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
        f"act({py_str(action)})",
    )
    return f"Thought: the next step is {action.splitlines()[0]!r}.\n```python\nprint({call})\n```"
