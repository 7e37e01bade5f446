"""Tests of the TextArena adapter (``textarena/*-v1``): contract, our solvers, RNG isolation."""

from __future__ import annotations

import random
import sys
from importlib.util import find_spec

import pytest

from palaestra.env import DIFFICULTIES, make, registry

IDS = sorted(i for i in registry() if i.startswith("textarena/"))

needs_extra = pytest.mark.skipif(
    find_spec("textarena") is None, reason='needs pip install "palaestra[textarena]"'
)
# check_env on every id: tests/env/test_conformance.py (integration tier).


def test_registered_without_the_extra() -> None:
    assert len(IDS) == 5
    for i in IDS:
        assert registry()[i].source == "palaestra[textarena]"


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "textarena", None)  # `import textarena` now fails
    monkeypatch.delitem(sys.modules, "palaestra.env.external.textarena._env", raising=False)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[textarena\]"'):
        make("textarena/sudoku-v1")


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
@pytest.mark.parametrize("env_id", IDS)
def test_random_agent_episodes_end_cleanly(env_id: str) -> None:
    rng = random.Random(0)
    env = make(env_id)
    for seed in range(3):
        obs = env.reset(env.make_task(seed))
        while not obs.done:
            obs = env.step(rng.choice(env.available_actions()))
            assert not obs.info["invalid"], obs.text
        assert obs.reward in (0.0, 1.0)
        if obs.terminated:
            assert obs.reward == float(obs.info["success"])
            assert "textarena_reward" in obs.info


@pytest.mark.integration
@needs_extra
def test_global_random_is_left_alone() -> None:
    env = make("textarena/frozen-lake-v1")
    random.seed(1234)
    before = random.getstate()
    env.reset(env.make_task(3))
    env.step(env.expert())
    assert random.getstate() == before
    # ... and the caller's use of `random` does not change the episode.
    first = env.reset(env.make_task(3)).text
    random.seed(99)
    assert env.reset(env.make_task(3)).text == first


@pytest.mark.integration
@needs_extra
def test_invalid_moves_never_end_the_game() -> None:
    env = make("textarena/tower-of-hanoi-v1")
    obs = env.reset(env.make_task(0))
    for _ in range(5):  # TextArena alone would end the game at the second one
        obs = env.step("[A B] [B C]")
        assert obs.info["invalid_kind"] == "malformed" and not obs.done
        obs = env.step("[C A]")
        assert obs.info["invalid_kind"] == "invalid_action" and not obs.done
        assert "empty tower" in obs.text
    assert env.progress() == 0.0 and obs.info["invalid_count"] == 10
    assert env.step("[A C]").text.startswith("You moved disk 1 from A to C.")


@pytest.mark.integration
@needs_extra
def test_guess_the_number_binary_search_and_progress() -> None:
    env = make("textarena/guess-the-number-v1")
    obs = env.reset(env.make_task(0, "test", "hard"))
    assert "between 1 and 100" in obs.text
    assert env.expert() == "[50]"
    progress = [env.progress()]
    while not obs.done:
        obs = env.step(env.expert())
        progress.append(env.progress())
    assert obs.info["success"] and len(progress) <= 8  # ceil(log2(101)) guesses at most
    assert progress == sorted(progress)


@pytest.mark.integration
@needs_extra
def test_hanoi_expert_is_optimal_from_the_start() -> None:
    env = make("textarena/tower-of-hanoi-v1")
    for difficulty, disks in zip(DIFFICULTIES, (3, 4, 5), strict=True):
        obs, n = env.reset(env.make_task(0, "train", difficulty)), 0
        while not obs.done:
            obs, n = env.step(env.expert()), n + 1
        assert obs.info["success"] and n == 2**disks - 1


@pytest.mark.integration
@needs_extra
def test_losing_ends_with_reward_zero() -> None:
    env = make("textarena/frozen-lake-v1")
    for seed in range(20):  # find a hole next to the start and step in
        env.reset(env.make_task(seed))
        inner = env.unwrapped
        grid = inner._t.state.game_state["grid"]  # pyright: ignore[reportAttributeAccessIssue]
        if grid[1][0] == "H":
            obs = env.step("[down]")
            assert obs.terminated and not obs.info["success"] and obs.reward == 0.0
            assert env.progress() < 1.0
            return
    pytest.fail("no seed in 0..19 has a hole below the start")
