"""Conformance over every registered environment: the contract, perturbations, stability.

``test_check_env`` runs :func:`check_env` on every id in the registry — the
families that ship with Palaestra in the default tier, the third-party
adapters in the ``integration`` tier — so a new family or adapter is checked
the moment it registers. An id whose extra is not installed (or that needs a
system package or a server this machine lacks) is skipped with the line that
installs it. ``PLANS`` sizes the check per adapter (external worlds are slow to
load) and lists the findings an adapter documents it cannot meet.

The other tests hold the built-in families to more: the expert solves every
split, a random agent scores low, and the golden file pins each family's tasks
and first observations: "same task id ⇒ same start state, forever, on every
machine". If a change to a family alters them, that is a new environment
version (``-v2``), not an edit. To record a NEW id's golden entries:
``PALAESTRA_REGEN_GOLDEN=1 pytest tests/env/test_conformance.py`` (existing
entries are never rewritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import closing
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution, requires
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from palaestra.env import (
    DIFFICULTIES,
    PERTURBATIONS,
    SPLITS,
    Difficulty,
    check_env,
    expert_policy,
    make,
    random_policy,
    registry,
    run_episode,
    tasks,
)

REGISTRY = registry()
BUILTIN = [i for i, s in REGISTRY.items() if s.source == "palaestra"]
GOLDEN = Path(__file__).with_name("golden_tasks.json")

# ---- every registered id -------------------------------------------------------------

#: TextWorld-Express and ScienceWorld have a gold path, not a planner: once random actions
#: leave it the expert cannot recover (docs/environments.md, note 2).
NO_RECOVERY = "the expert did not solve the task from the after random actions"


@dataclass(frozen=True)
class Plan:
    """How ``test_check_env`` checks an id."""

    seeds: tuple[int, ...] = (0, 1, 2)
    difficulties: tuple[Difficulty, ...] = DIFFICULTIES
    max_steps: int = 300
    #: Problems containing one of these are documented limits of the adapter, not failures.
    known: tuple[str, ...] = ()
    #: Minutes per id: checked with ``-m slow`` only.
    slow: bool = False


_ONE_EASY: dict[str, Any] = {"seeds": (0, 1), "difficulties": ("easy",)}

#: By id first, then by namespace (``"twx/"``); any other id gets ``Plan()``.
PLANS: dict[str, Plan] = {
    "babyai/": Plan(seeds=(0, 1)),
    "textarena/": Plan(seeds=(0, 1)),
    # A cold game cache costs seconds per TextWorld game: few games.
    "textworld/": Plan(seeds=(0,), difficulties=("medium",)),
    "textworld/simple-v1": Plan(**_ONE_EASY),
    "twx/": Plan(seeds=(0,), difficulties=("easy",), max_steps=60, known=(NO_RECOVERY,)),
    # ~400 listed actions per state, each checked from a reloaded state: minutes per task.
    "scienceworld/": Plan(
        seeds=(0,), difficulties=("easy",), max_steps=60, known=(NO_RECOVERY,), slow=True
    ),
    # MiniWoB++ tasks have one difficulty (ours only picks a seed stream). The integration
    # tier checks the stateful form and checkbox tasks; -m slow every other task.
    "miniwob/": Plan(seeds=(0, 1, 2), difficulties=("easy",), slow=True),
    "miniwob/click-checkboxes-v1": Plan(**_ONE_EASY),
    "miniwob/login-user-v1": Plan(**_ONE_EASY),
    "agentgym/": Plan(**_ONE_EASY),
}


def plan_for(env_id: str) -> Plan:
    namespace = env_id.split("/")[0] + "/" if "/" in env_id else None
    return PLANS.get(env_id) or (PLANS.get(namespace) if namespace else None) or Plan()


def _extra_of(source: str) -> str | None:
    """``"palaestra[babyai]"`` -> ``"babyai"``: the extra a registration says it needs."""
    m = re.fullmatch(r"palaestra\[([\w-]+)\]", source)
    return m.group(1) if m else None


def _missing_distributions(extra: str) -> list[str]:
    """The distributions that ``pip install "palaestra[extra]"`` would add and are absent."""
    try:
        reqs = [Requirement(r) for r in requires("palaestra") or []]
    except PackageNotFoundError:  # running from a bare source tree: nothing is known
        return ["palaestra"]
    of_extra = [r for r in reqs if r.marker is not None and r.marker.evaluate({"extra": extra})]
    if not of_extra:  # an extra the installed metadata does not know yet: not installed
        return [f"palaestra[{extra}]"]
    missing: list[str] = []
    for r in of_extra:
        try:
            distribution(r.name)
        except PackageNotFoundError:
            missing.append(r.name)
    return missing


def unavailable(env_id: str) -> str | None:
    """Why ``env_id`` cannot be built here, with the fix; None when it can."""
    source = REGISTRY[env_id].source
    extra = _extra_of(source)
    if extra is not None:
        missing = _missing_distributions(extra)
        if missing:
            return f'needs pip install "palaestra[{extra}]" (missing: {", ".join(missing)})'
    if env_id.startswith("agentgym/"):
        from palaestra.env.external.agentgym._env import url_env_var

        var = url_env_var(env_id.split("/")[1].rsplit("-v", 1)[0])
        if not os.environ.get(var):
            return (
                f"needs a running AgentGym server: set {var} "
                "(tests/env/external/test_agentgym.py checks the adapter against a stand-in)"
            )
    return None


def _param(env_id: str) -> Any:
    marks: list[pytest.MarkDecorator] = []
    if REGISTRY[env_id].source != "palaestra":
        marks.append(pytest.mark.integration)
    if plan_for(env_id).slow:
        marks.append(pytest.mark.slow)
    return pytest.param(env_id, marks=marks, id=env_id)


@pytest.mark.parametrize("env_id", [_param(i) for i in REGISTRY])
def test_check_env(env_id: str) -> None:
    why = unavailable(env_id)
    if why is not None:
        pytest.skip(why)
    plan = plan_for(env_id)
    try:
        report = check_env(
            lambda: make(env_id),
            seeds=plan.seeds,
            difficulties=plan.difficulties,
            max_steps=plan.max_steps,
            raise_on_error=False,
        )
    except ImportError as e:  # the Python extra is there, a system package is not
        if "apt-get install" in str(e):
            pytest.skip(str(e))
        raise
    problems = [p for p in report.problems if not any(k in p for k in plan.known)]
    assert problems == [], f"{env_id} failed conformance:\n" + "\n".join(problems)
    assert report.tasks_checked == len(plan.seeds) * len(plan.difficulties)


def test_every_namespace_plan_names_registered_ids() -> None:
    # A plan for a renamed or dropped adapter would silently stop applying.
    for key in PLANS:
        assert any(i == key or i.startswith(key) for i in REGISTRY), key


def test_missing_extras_skip_with_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(name: str) -> Any:
        raise PackageNotFoundError(name)

    monkeypatch.setitem(globals(), "distribution", absent)  # as on a dev install
    assert unavailable("babyai/goto-redball-v1") == (
        'needs pip install "palaestra[babyai]" (missing: minigrid)'
    )
    assert unavailable("shop-v1") is None
    monkeypatch.delenv("PALAESTRA_AGENTGYM_WEBSHOP_URL", raising=False)
    assert "PALAESTRA_AGENTGYM_WEBSHOP_URL" in (unavailable("agentgym/webshop-v1") or "")


# ---- the built-in families -----------------------------------------------------------


@pytest.mark.parametrize("env_id", BUILTIN)
def test_check_env_under_all_perturbations(env_id: str) -> None:
    check_env(lambda: make(env_id, perturbations=PERTURBATIONS, perturbation_seed=7), seeds=(0,))


@pytest.mark.parametrize("env_id", BUILTIN)
def test_expert_solves_every_split_and_difficulty(env_id: str) -> None:
    with closing(make(env_id)) as env:
        for split in SPLITS:
            for task in tasks(env_id, split, n=15):
                r = run_episode(env, task, expert_policy)
                assert r.success and r.score == 1.0 and r.progress == 1.0, (task.task_id, r)


@pytest.mark.parametrize("env_id", BUILTIN)
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


@pytest.mark.parametrize("env_id", BUILTIN)
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
