"""ScienceWorld adapter: registration, missing extra, and (integration) a few of its 30 tasks.

The JVM starts in seconds and loading a task costs ~1 s, so the integration
tests check the gold-path expert on three task families; ``check_env`` runs on
every task in the slow tier (tests/env/test_conformance.py).
"""

from __future__ import annotations

import sys

import pytest

from palaestra.env import expert_policy, make, registry, run_episode

IDS = sorted(i for i in registry() if i.startswith("scienceworld/"))


def test_all_30_tasks_registered_without_the_extra() -> None:
    assert len(IDS) == 30
    assert "scienceworld/boil-v1" in IDS
    for i in IDS:
        assert registry()[i].source == "palaestra[scienceworld]"


def test_missing_extra_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scienceworld", None)
    monkeypatch.delitem(sys.modules, "palaestra.env.external.scienceworld._env", raising=False)
    with pytest.raises(ImportError, match=r'pip install "palaestra\[scienceworld\]"'):
        make("scienceworld/boil-v1")


@pytest.mark.integration
@pytest.mark.parametrize(
    "env_id",
    [
        "scienceworld/find-living-thing-v1",
        "scienceworld/melt-v1",
        "scienceworld/test-conductivity-v1",
    ],
)
def test_gold_path_expert_solves_train_and_heldout(env_id: str) -> None:
    pytest.importorskip("scienceworld")
    env = make(env_id)
    try:
        for split in ("train", "heldout"):
            task = env.make_task(0, split)
            r = run_episode(env, task, expert_policy)
            assert r.success and r.score == 1.0 and r.progress == 1.0, (task.task_id, r)
    finally:
        env.close()


@pytest.mark.integration
def test_unparseable_action_is_rejected() -> None:
    pytest.importorskip("scienceworld")
    env = make("scienceworld/find-living-thing-v1")
    try:
        env.reset(env.make_task(1, "test"))
        before = env.progress()  # some variations start with a partial score
        obs = env.step("xyzzy plugh")
        assert obs.info["invalid_kind"] == "invalid_action" and not obs.done
        assert env.progress() == before
    finally:
        env.close()
