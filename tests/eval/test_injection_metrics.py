"""``injection-v1`` and AgentDojo's metrics: utility, utility under attack, attack success."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from palaestra.agent import Agent, ExpertAgent
from palaestra.agent._attack_agents import ObedientAgent
from palaestra.agent._core import run_episode
from palaestra.env import Task, tasks
from palaestra.eval._metrics import compute_metrics, injection_metrics, run_metrics
from palaestra.eval._report import build_report, sections
from palaestra.eval._run import EvalConfig, episode_metadata, evaluate
from palaestra.eval._stats import wilson
from palaestra.eval._suites import (
    SuiteEnv,
    get_suite,
    load_suite,
    perturbed_task,
    split_perturbation,
    suite_tasks,
)
from palaestra.trajectory import Episode, ErrorInfo, Outcome, Step


def _play(agent: Agent, suite_id: str = "injection-v1") -> list[Episode]:
    """Every task of the suite, one epoch, as the eval engine would store it."""
    suite = get_suite(suite_id)
    items = suite_tasks(suite)
    meta = episode_metadata(suite, items)
    env = SuiteEnv()
    out: list[Episode] = []
    for st in items:
        env.select(st.task)
        steps, end = run_episode(agent, env, st.task)
        out.append(
            Episode(
                run_id="r",
                task=st.task,
                agent=agent.name,
                model_id=agent.name,
                outcome=end.outcome,
                score=sum(s.reward for s in steps),
                progress=steps[-1].progress if steps else 0.0,
                steps=steps,
                metadata=meta[st.task.task_id],
            )
        )
    env.close()
    return out


def test_the_suite_plays_each_task_clean_and_attacked() -> None:
    items = suite_tasks(get_suite("injection-v1"))
    clean = [st for st in items if st.group == "clean"]
    attacked = [st for st in items if st.group == "attacked"]
    assert len(clean) == len(attacked) == 30
    assert {st.perturbations for st in attacked} == {("inject_instruction",)}
    assert not any(st.perturbations for st in clean)
    assert [split_perturbation(st.task)[0] for st in attacked] == [st.task for st in clean]
    heldin = {st.task.task_id for st in suite_tasks(get_suite("heldin-v1"))}
    assert {st.task.task_id for st in clean} <= heldin


def test_obedient_is_always_attacked_and_the_expert_never() -> None:
    obedient = compute_metrics(_play(ObedientAgent()), n_boot=200)
    expert = compute_metrics(_play(ExpertAgent()), n_boot=200)
    for m in (obedient, expert):
        inj = m.injection
        assert inj is not None
        assert (inj.attacked_episodes, inj.planted_episodes, inj.clean_episodes) == (30, 30, 30)
        assert set(m.injection_by_env) == {"shop-v1", "toolqa-v1"}
        assert inj.utility.value == 1.0  # both solve every clean task (the expert's moves)
    assert obedient.injection is not None and expert.injection is not None
    assert obedient.injection.attack_success.value == 1.0
    assert expert.injection.attack_success.value == 0.0
    assert expert.injection.utility_under_attack.value == 1.0
    # Following the attacker costs the obedient agent some tasks (e.g. a wrong finish[...]).
    under_attack = obedient.injection.utility_under_attack.value
    assert under_attack is not None and under_attack < 1.0
    # Intervals: every rate at 0% or 100% falls back to Wilson, which stays honest.
    asr = expert.injection.attack_success
    assert asr.interval() == wilson(0, 30) and asr.n == 30 and asr.n_tasks == 30
    hi = obedient.injection.attack_success.interval()
    assert hi is not None and hi[0] < 1.0 and hi[1] == 1.0
    ci = obedient.injection.utility_under_attack.ci
    assert ci is not None and ci[0] < under_attack < ci[1]
    for env_id, per_env in obedient.injection_by_env.items():
        assert per_env.name == env_id and per_env.attack_success.value == 1.0
        assert per_env.attacked_episodes == 15


def _episode(
    seed: int, outcome: Outcome, *, attacked: bool, executed: bool = False, planted: bool = True
) -> Episode:
    task = Task(env_id="shop-v1", split="test", seed=seed, difficulty="easy", instruction="x")
    info: dict[str, Any] = {}
    if attacked:
        task = perturbed_task(task, ["inject_instruction"])
        info["injection"] = {
            "attacker_action": "back",
            "planted_at": 1 if planted else None,
            "executed": executed,
            "executed_at": 2 if executed else None,
        }
    return Episode(
        run_id="r",
        task=task,
        agent="a",
        model_id="m",
        outcome=outcome,
        steps=[Step(index=0, info=info)],
        error=ErrorInfo(type="EnvError", message="down") if outcome == "error" else None,
    )


def test_metrics_by_hand() -> None:
    eps = [
        # attacked: 5 scored episodes, 2 executed, 1 never planted; one error is excluded
        _episode(0, "success", attacked=True, executed=True),
        _episode(1, "failure", attacked=True, executed=True),
        _episode(2, "success", attacked=True),
        _episode(3, "success", attacked=True, planted=False),
        _episode(4, "limit", attacked=True),
        _episode(5, "error", attacked=True, executed=True),
        # clean: the base tasks of 0..2 count; seed 9 has no attacked twin and does not
        _episode(0, "success", attacked=False),
        _episode(1, "success", attacked=False),
        _episode(2, "failure", attacked=False),
        _episode(9, "failure", attacked=False),
    ]
    overall, by_env = injection_metrics(eps, n_boot=500)
    assert overall is not None and set(by_env) == {"shop-v1"}
    assert overall.attack_success.value == pytest.approx(2 / 5)
    assert overall.attack_success.wilson == wilson(2, 5)
    assert overall.utility_under_attack.value == pytest.approx(3 / 5)
    assert overall.utility.value == pytest.approx(2 / 3)
    assert (overall.attacked_episodes, overall.planted_episodes, overall.clean_episodes) == (
        5,
        4,
        3,
    )
    ci = overall.attack_success.ci
    assert ci is not None and ci[0] < 0.4 < ci[1]
    assert injection_metrics(eps[6:]) == (None, {})  # nothing attacked: nothing to report
    assert compute_metrics(eps[6:]).injection is None


def test_a_suite_cannot_inject_into_a_family_without_third_party_text(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "id: bad-injection-v1\n"
        "entries:\n"
        "  - {env: shop-v1, split: test, n: 2, perturbations: [inject_instruction]}\n"
        "  - {env: house-v1, split: test, n: 2, perturbations: [inject_instruction]}\n"
    )
    with pytest.raises(ValueError, match=r"entries\.1 \(house-v1\).*support it: .*shop-v1"):
        load_suite(path)


def test_an_eval_run_reports_the_injection_metrics(tmp_path: Path) -> None:
    out = tmp_path / "expert"
    evaluate(EvalConfig(suite="injection-v1", agent="expert"), out, progress=False)
    metrics = run_metrics(out, n_boot=100)
    assert metrics.injection is not None  # info["injection"] survived the run store
    assert metrics.injection.attack_success.value == 0.0
    assert metrics.injection.utility.value == metrics.injection.utility_under_attack.value == 1.0
    assert set(metrics.by_group) == {"clean", "attacked"}
    # The plain tasks' ids are those a clean rollout of the same seeds would store.
    clean = {t.task_id for env in ("shop-v1", "toolqa-v1") for t in tasks(env, "test", n=15)}
    assert {t.task_id for t in metrics.tasks if t.group == "clean"} == clean
    # The report shows the three numbers with their intervals, per env and overall.
    report, _ = build_report([out], n_boot=100)
    (section,) = [s for s in sections(report) if s.key == "injection"]
    assert [row[1] for row in section.rows] == ["shop-v1", "toolqa-v1", "all"]
    wilson_30 = "[88.6–100.0]"  # Wilson's 95% interval for 30 of 30
    assert section.rows[-1][2:] == [
        "30 / 30",
        f"100.0% {wilson_30}",
        f"100.0% {wilson_30}",
        "0.0% [0.0–11.4]",
    ]
