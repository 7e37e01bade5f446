"""TextWorld adapter: registration, the missing-extra error, and (integration) real games.

Integration tests generate games into the user cache (``$PALAESTRA_CACHE``);
a cold cache costs ~2-8 s per game, so they use few seeds.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from palaestra.env import expert_policy, make, registry, run_episode, tasks

IDS = [
    "textworld/simple-v1",
    "textworld/cooking-v1",
    "textworld/coin-collector-v1",
    "textworld/treasure-hunter-v1",
]
# check_env on every id: tests/env/test_conformance.py (integration tier).


def test_ids_are_registered_as_an_extra() -> None:
    reg = registry()
    for env_id in IDS:
        assert reg[env_id].source == "palaestra[textworld]"
        assert reg[env_id].max_episode_steps


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "textworld", None)  # import textworld -> ImportError
    monkeypatch.delitem(sys.modules, "palaestra.env.external.textworld._env", raising=False)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[textworld\]"'):
        make("textworld/simple-v1")


def test_unknown_param_is_a_clear_error() -> None:
    pytest.importorskip("textworld")
    env = make("textworld/coin-collector-v1")
    with pytest.raises(ValueError, match="unknown param 'rooms'"):
        env.make_task(0, rooms=3)


@pytest.mark.integration
@pytest.mark.parametrize("env_id", IDS)
def test_expert_solves_train_and_heldout(env_id: str) -> None:
    pytest.importorskip("textworld")
    env = make(env_id)
    for split in ("train", "heldout"):
        for task in tasks(env_id, split, n=1, difficulty="medium"):
            r = run_episode(env, task, expert_policy)
            assert r.success and r.score == 1.0 and r.progress == 1.0, (task.task_id, r)
    env.close()


@pytest.mark.integration
def test_random_agent_plays_without_errors() -> None:
    pytest.importorskip("textworld")
    env = make("textworld/cooking-v1", max_episode_steps=30)
    rng = random.Random(0)
    for task in tasks("textworld/cooking-v1", "test", n=2, difficulty="easy"):
        obs = env.reset(task)
        while not obs.done:
            obs = env.step(rng.choice(env.available_actions()))
            assert 0.0 <= obs.info["progress"] <= 1.0
        assert not obs.info["invalid"]
    env.close()


@pytest.mark.integration
def test_games_are_cached_and_splits_differ(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("textworld")
    from palaestra.env.external.textworld._games import cache_root

    monkeypatch.setenv("PALAESTRA_CACHE", str(tmp_path))
    env = make("textworld/coin-collector-v1")
    a = env.make_task(0, "train")
    files = sorted(p.name for p in (cache_root() / "tw-coin_collector").iterdir())
    assert len(files) == 1 and not files[0].startswith(".tmp-")
    assert env.make_task(0, "train") == a  # from the cache
    assert len(list((cache_root() / "tw-coin_collector").iterdir())) == 1
    env.make_task(0, "heldout")
    assert len(list((cache_root() / "tw-coin_collector").iterdir())) == 2
