"""TextWorld-Express adapter: registration, missing extra, and (integration) all 8 games."""

from __future__ import annotations

import random
import sys

import pytest

from palaestra.env import expert_policy, make, registry, run_episode, tasks

IDS = sorted(i for i in registry() if i.startswith("twx/"))
# check_env on every id: tests/env/test_conformance.py (integration tier).


def test_registered_without_the_extra() -> None:
    assert len(IDS) == 8
    for i in IDS:
        assert registry()[i].source == "palaestra[twx]"


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "textworld_express", None)
    monkeypatch.delitem(sys.modules, "palaestra.env.external.twx._env", raising=False)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[twx\]"'):
        make("twx/coin-v1")


@pytest.mark.integration
@pytest.mark.parametrize("env_id", IDS)
def test_expert_solves_every_split_and_difficulty(env_id: str) -> None:
    pytest.importorskip("textworld_express")
    env = make(env_id)
    try:
        for split in ("train", "test", "heldout"):
            for task in tasks(env_id, split, n=3):
                r = run_episode(env, task, expert_policy)
                assert r.success and r.score == 1.0 and r.progress == 1.0, (task.task_id, r)
    finally:
        env.close()


@pytest.mark.integration
def test_expert_ignores_information_actions() -> None:
    pytest.importorskip("textworld_express")
    env = make("twx/coin-v1")
    try:
        task = env.make_task(3, "train", "medium")
        env.reset(task)
        env.step("inventory")
        env.step("look around")
        r = run_episode(env, task, expert_policy)
        assert r.success
    finally:
        env.close()


@pytest.mark.integration
def test_random_agent_and_invalid_actions() -> None:
    pytest.importorskip("textworld_express")
    env = make("twx/cookingworld-v1", max_episode_steps=25)
    rng = random.Random(0)
    try:
        for task in tasks("twx/cookingworld-v1", "test", n=3):
            obs = env.reset(task)
            bad = env.step("fly to the moon")
            assert bad.info["invalid_kind"] == "invalid_action" and "Valid actions" in bad.text
            while not obs.done:
                obs = env.step(rng.choice(env.available_actions()))
                assert not obs.info["invalid"]
    finally:
        env.close()
