"""Conformance over every registered environment: the contract, perturbations, stability.

The golden file pins each family's tasks and first observations: "same task
id ⇒ same start state, forever, on every machine". If a change to a family
alters them, that is a new environment version (``-v2``), not an edit. To
record a NEW id's golden entries: ``PALAESTRA_REGEN_GOLDEN=1 pytest
tests/env/test_conformance.py`` (existing entries are never rewritten).
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import closing
from pathlib import Path

import pytest

from palaestra.env import (
    DIFFICULTIES,
    PERTURBATIONS,
    SPLITS,
    check_env,
    expert_policy,
    make,
    random_policy,
    registry,
    run_episode,
    tasks,
)

ENV_IDS = [i for i, s in registry().items() if s.source == "palaestra"]
GOLDEN = Path(__file__).with_name("golden_tasks.json")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str) -> None:
    check_env(lambda: make(env_id), seeds=(0, 1, 2))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_under_all_perturbations(env_id: str) -> None:
    check_env(lambda: make(env_id, perturbations=PERTURBATIONS, perturbation_seed=7), seeds=(0,))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_expert_solves_every_split_and_difficulty(env_id: str) -> None:
    with closing(make(env_id)) as env:
        for split in SPLITS:
            for task in tasks(env_id, split, n=15):
                r = run_episode(env, task, expert_policy)
                assert r.success and r.score == 1.0 and r.progress == 1.0, (task.task_id, r)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_random_agent_scores_low(env_id: str) -> None:
    with closing(make(env_id)) as env:
        results = [
            run_episode(env, t, random_policy(t.task_id)) for t in tasks(env_id, "test", n=30)
        ]
    rate = sum(r.success for r in results) / len(results)
    assert rate <= 0.35, f"{env_id}: a random agent solves {rate:.0%} of tasks"


def _fingerprint(env_id: str) -> dict[str, str]:
    out: dict[str, str] = {}
    with closing(make(env_id, max_episode_steps=0)) as env:
        for split in SPLITS:
            for difficulty in DIFFICULTIES:
                for seed in (0, 1):
                    task = env.make_task(seed, split, difficulty)
                    text = env.reset(task).text
                    digest = hashlib.sha256((task.instruction + "\n" + text).encode()).hexdigest()
                    out[task.task_id] = digest[:16]
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_tasks_and_start_states_never_change(env_id: str) -> None:
    golden: dict[str, dict[str, str]] = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    now = _fingerprint(env_id)
    if env_id not in golden:
        if os.environ.get("PALAESTRA_REGEN_GOLDEN") != "1":
            pytest.fail(f"no golden entry for {env_id}; record it with PALAESTRA_REGEN_GOLDEN=1")
        golden[env_id] = now
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
    assert now == golden[env_id], (
        f"{env_id}'s tasks or first observations changed: ids never change meaning — "
        "register the new behaviour as a new version instead"
    )
