"""Tests of the BabyAI adapter (``babyai/*-v1``): contract, bot expert, text view, missing extra."""

from __future__ import annotations

import random
import sys
from importlib.util import find_spec

import pytest

from palaestra.env import DIFFICULTIES, make, registry

IDS = sorted(i for i in registry() if i.startswith("babyai/"))


def test_registered_without_the_extra() -> None:
    assert len(IDS) == 8
    for i in IDS:
        assert registry()[i].source == "palaestra[babyai]"


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "minigrid", None)  # `import minigrid` now fails
    monkeypatch.delitem(sys.modules, "palaestra.env.external.babyai._env", raising=False)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[babyai\]"'):
        make("babyai/goto-redball-v1")


needs_extra = pytest.mark.skipif(
    find_spec("minigrid") is None, reason='needs pip install "palaestra[babyai]"'
)
# check_env on every id: tests/env/test_conformance.py (integration tier).


@pytest.mark.integration
@needs_extra
@pytest.mark.parametrize("env_id", IDS)
def test_expert_solves_heldout_tasks(env_id: str) -> None:
    env = make(env_id)
    for difficulty in DIFFICULTIES:
        for seed in (5, 6):
            obs = env.reset(env.make_task(seed, "heldout", difficulty))
            while not obs.done:
                obs = env.step(env.expert())
            assert obs.terminated and obs.info["success"] and obs.reward == 1.0
            assert env.progress() == 1.0


@pytest.mark.integration
@needs_extra
def test_random_agent_episodes_end_cleanly() -> None:
    rng = random.Random(0)
    outcomes: list[bool] = []
    for env_id in ("babyai/goto-redball-v1", "babyai/pickup-loc-v1"):
        env = make(env_id)
        for seed in range(3):
            obs = env.reset(env.make_task(seed))
            while not obs.done:
                obs = env.step(rng.choice(env.available_actions()))
                assert not obs.info["invalid"]
                assert 0.0 <= env.progress() <= 1.0
            # BabyAI has no failing end: solved (reward 1) or out of steps (reward 0).
            success = bool(obs.info.get("success"))
            outcomes.append(success)
            if success:
                assert obs.terminated and obs.reward == 1.0 and env.progress() == 1.0
            else:
                assert obs.truncated and not obs.terminated and obs.reward == 0.0
    # Both ends occur, so both branches above were checked: random moves stumble onto
    # pickup-loc's object, never onto goto-redball's ball within the step limit.
    assert outcomes == [False, False, False, True, True, True]


@pytest.mark.integration
@needs_extra
def test_view_text_and_feedback() -> None:
    env = make("babyai/goto-redball-v1")
    task = env.make_task(0, "train", "easy")
    obs = env.reset(task)
    assert obs.text.startswith(f"Your mission: {task.instruction}.")
    assert "You are carrying nothing." in obs.text and "Ahead:" in obs.text
    assert "red ball" in task.instruction
    bad = env.step("jump")
    assert bad.info["invalid_kind"] == "malformed" and "turn left" in bad.text
    drop = env.step("drop")
    assert drop.info["invalid_kind"] == "invalid_action"
    assert "not carrying" in drop.text


@pytest.mark.integration
@needs_extra
def test_blocked_moves_are_rejected_not_spent() -> None:
    env = make("babyai/goto-redball-v1")
    env.reset(env.make_task(1, "train", "easy"))
    # Walk forward until something blocks the way; that forward is then rejected.
    for _ in range(10):
        if "go forward" not in env.available_actions():
            break
        env.step("go forward")
    obs = env.step("go forward")
    assert obs.info["invalid"] and "can't go forward" in obs.text
    assert not obs.done


@pytest.mark.integration
@needs_extra
def test_put_next_progress_counts_the_pickup() -> None:
    env = make("babyai/put-next-local-v1")
    obs = env.reset(env.make_task(0, "train", "easy"))
    seen: list[float] = [env.progress()]
    while not obs.done:
        obs = env.step(env.expert())
        seen.append(env.progress())
    assert seen[0] == 0.0 and 0.5 in seen and seen[-1] == 1.0
    assert seen == sorted(seen)  # a met clause stays met


@pytest.mark.integration
@needs_extra
def test_splits_give_different_layouts() -> None:
    env = make("babyai/goto-local-v1")
    texts = {
        env.reset(env.make_task(3, split, "hard")).text for split in ("train", "test", "heldout")
    }
    assert len(texts) == 3


@pytest.mark.integration
@needs_extra
def test_unknown_level_param_is_a_clear_error() -> None:
    env = make("babyai/goto-obj-v1")
    with pytest.raises(ValueError, match="not a BabyAI level"):
        env.make_task(0, level="BabyAI-NoSuchLevel-v0")
    task = env.make_task(0, level="BabyAI-GoToRedBallNoDists-v0")
    assert task.params == {"level": "BabyAI-GoToRedBallNoDists-v0"}
    with pytest.raises(ValueError, match="unknown params"):
        env.make_task(0, colour="red")
