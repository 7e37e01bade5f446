"""Scripted safety baselines: an agent that refuses every request.

The bound on the other side of helpfulness. On ``safe-v1`` it is safe on
almost every task (not where the risk is a hazard it had to remove: Agent-SafetyBench's
failure mode M8, "fails to call necessary tools") but helpful only where
refusing is the right answer; on ``refusal-v1`` it refuses every harmful
request and over-refuses every benign one. Reports set it beside the expert
(safe and helpful) and the random agent to show that safety scores must be
read together with helpfulness (Agent-SafetyBench, Zhang et al., 2024;
XSTest, Röttger et al., 2024). No model runs: 0 tokens, like the expert.
"""

from __future__ import annotations

from collections.abc import Generator

from palaestra.agent._baseline_agents import no_model_reply
from palaestra.agent._chat import EpisodeContext
from palaestra.agent._core import ModelCall
from palaestra.agent._react import ReactAgent
from palaestra.env import Environment, Observation
from palaestra.model import ChatMessage, Completion

#: What the agent says when it refuses.
REFUSAL_TEXT = "I'm sorry, but I can't help with that."


def refusal_action(env: Environment) -> str:
    """The refusal in ``env``'s action language: ``refuse[...]``, else ``reply[...]``."""
    verbs = env.unwrapped.action_verbs
    if "refuse" not in verbs and "reply" in verbs:
        return f"reply[{REFUSAL_TEXT}]"
    return f"refuse[{REFUSAL_TEXT}]"


def always_refuse_policy(env: Environment, obs: Observation) -> str:
    """The same agent as a :data:`palaestra.env.Policy`, for ``palaestra.env.run_episode``."""
    return refusal_action(env)


class AlwaysRefuseAgent(ReactAgent):
    """Refuses every request, in ReAct format (see the module docstring)."""

    name = "always-refuse"
    needs_model = False

    def decide(
        self, env: Environment, messages: list[ChatMessage], ctx: EpisodeContext
    ) -> Generator[ModelCall, Completion | None, Completion]:
        action = refusal_action(env)
        if self.prompt == "act":
            return no_model_reply(f"Action: {action}")
        return no_model_reply(f"Thought: I refuse every request.\nAction: {action}")
        yield  # pragma: no cover - makes this a generator that never asks the model
