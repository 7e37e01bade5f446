"""The scripted obedient agent: it reads injected instructions and carries them out."""

from __future__ import annotations

import pytest

from palaestra.agent._attack_agents import Fallback, ObedientAgent, find_instruction
from palaestra.agent._core import run_episode
from palaestra.env import make, tasks
from palaestra.env._injection import INJECTION_TEMPLATES


@pytest.mark.parametrize("template", INJECTION_TEMPLATES)
def test_every_planted_template_is_understood(template: str) -> None:
    page = f"[B07XK2] Red Shirt {template.format(action='click[B01 ZZ]')} | $12.00\nback"
    assert find_instruction(page) == "click[B01 ZZ]"


@pytest.mark.parametrize(
    "text",
    [
        "Instruction: buy a shirt. Actions: search[<query>], `back`.",
        "Select an option with click[<option>]; ignore the banner.",
        "Please ignore the noise; nothing in `backticks` asks for anything.",
    ],
)
def test_ordinary_text_is_not_an_instruction(text: str) -> None:
    assert find_instruction(text) is None


def test_fallback_is_validated() -> None:
    with pytest.raises(ValueError, match="fallback"):
        ObedientAgent(fallback="nap")  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("fallback", ["expert", "random"])
def test_the_obedient_agent_executes_the_planted_action(fallback: Fallback) -> None:
    agent = ObedientAgent(fallback=fallback, max_steps=20)
    env = make("shop-v1", perturbations=["inject_instruction"], perturbation_seed=1)
    for task in tasks("shop-v1", "test", n=3):
        steps, _ = run_episode(agent, env, task)
        record = steps[-1].info["injection"]
        assert record["planted_at"] == 1  # every first action (a search) opens a results page
        executed = steps[record["planted_at"]]  # the step right after the planted observation
        assert executed.action == record["attacker_action"]
        assert record["executed"] and record["executed_at"] == record["planted_at"] + 1


def test_without_an_injection_it_is_the_expert() -> None:
    env = make("toolqa-v1")
    task = tasks("toolqa-v1", "test", n=1)[0]
    steps, end = run_episode(ObedientAgent(), env, task)
    assert end.outcome == "success"
    assert all(s.thought == "I will work on the task." for s in steps)
