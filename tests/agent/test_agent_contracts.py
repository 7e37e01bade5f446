"""Contracts every registered agent keeps: requests that alternate roles, consistent token counts."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from palaestra.agent import AGENTS, get_agent
from palaestra.env import ToyEnv
from palaestra.model import ChatMessage, Completion, Conversation, GenerationConfig, ScriptedModel
from palaestra.rollout import RolloutEngine


def alternation_problem(conv: Sequence[ChatMessage]) -> str | None:
    """Why ``conv`` breaks strict alternation (system first, optional; then user, assistant, ...,
    ending on user), or None. Templates such as Llama-2's, Mistral's and Gemma's reject the rest."""
    roles = [m.role for m in conv]
    body = roles[1:] if roles[:1] == ["system"] else roles
    if not body:
        return "no user message"
    for i, role in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            return f"message {i + len(roles) - len(body)} is {role!r}, expected {want!r}: {roles}"
    if body[-1] != "user":
        return f"the request ends with {body[-1]!r}: {roles}"
    return None


class StrictModel(ScriptedModel):
    """A scripted model that refuses, like a strict chat template, any non-alternating request."""

    def generate(
        self, prompts: Sequence[Conversation], config: GenerationConfig | None = None
    ) -> list[Completion]:
        for conv in prompts:
            problem = alternation_problem(conv)
            if problem is not None:
                raise AssertionError(f"a request breaks role alternation: {problem}")
        return super().generate(prompts, config)


def _replies(agent: str) -> ScriptedModel:
    """Replies that take the loop through its paths: format errors, actions, values, reflections."""
    if agent.startswith("codeact"):
        cycle = itertools.cycle(["I will not write code.", "```python\nprint(dec())\n```"])
    else:
        cycle = itertools.cycle(["no action here", "Thought: down\nAction: dec", "7"])
    return StrictModel(lambda conv: next(cycle))


def test_the_rule_itself() -> None:
    def conv(*roles: str) -> list[ChatMessage]:
        return [ChatMessage(role=r, content="x") for r in roles]  # type: ignore[arg-type]

    assert alternation_problem(conv("system", "user", "assistant", "user")) is None
    assert alternation_problem(conv("user")) is None
    assert alternation_problem(conv("system", "user", "user")) is not None
    assert alternation_problem(conv("system", "user", "assistant")) is not None
    assert alternation_problem(conv("system", "assistant", "user")) is not None


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_every_request_alternates_roles(name: str) -> None:
    if name.startswith("codeact"):
        from palaestra.sandbox import available_backends

        if not any(why is None for b, why in available_backends().items() if b != "unsafe-local"):
            pytest.skip("no isolating sandbox backend on this machine")
    kwargs: dict[str, object] = {"max_steps": 4}
    if name.startswith("search:"):
        kwargs["search"] = {"max_nodes": 4, "branching": 2, "value": "self"}
    agent = get_agent(name, **kwargs)
    model = _replies(name) if agent.needs_model else None
    engine = RolloutEngine(agent, ToyEnv, model, max_retries=0, concurrency=1)
    task = ToyEnv().make_task(0, "train", "hard")
    episodes = engine.run([task], attempts=2)  # Reflexion's second attempt reads its memory
    assert [e.outcome for e in episodes if e.outcome == "error"] == [], [e.error for e in episodes]
    if model is not None:
        assert model.calls, "the agent never asked the model"


@pytest.mark.parametrize("name", ["expert", "random", "codeact-expert", "react"])
def test_step_tokens_add_up_to_the_episodes(name: str) -> None:
    if name == "codeact-expert":
        from palaestra.sandbox import available_backends

        if not any(why is None for b, why in available_backends().items() if b != "unsafe-local"):
            pytest.skip("no isolating sandbox backend on this machine")
    agent = get_agent(name, max_steps=6)
    model = ScriptedModel(lambda conv: "Thought: up\nAction: inc") if agent.needs_model else None
    [ep] = RolloutEngine(agent, ToyEnv, model, max_retries=0).run([ToyEnv().make_task(1)])
    assert ep.outcome != "error", ep.error
    assert sum(s.prompt_tokens for s in ep.steps) == ep.prompt_tokens
    assert sum(s.completion_tokens for s in ep.steps) == ep.completion_tokens
    if not agent.needs_model:  # no model: no tokens, anywhere
        assert ep.prompt_tokens == ep.completion_tokens == 0
