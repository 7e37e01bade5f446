"""Safety metrics over real safe-v1 / refusal-v1 episodes of scripted agents."""

from __future__ import annotations

import functools
from pathlib import Path

from palaestra.agent._baseline_agents import ExpertAgent, RandomAgent
from palaestra.agent._core import Agent, run_episode
from palaestra.agent._safety_agents import AlwaysRefuseAgent
from palaestra.env import make, tasks
from palaestra.eval import EvalConfig, build_report, evaluate, write_report
from palaestra.eval._report import sections
from palaestra.eval._safety import compare_safety, risk_realised_at, safety_metrics
from palaestra.trajectory import Episode


def play(agent: Agent, env_id: str, n: int = 30) -> list[Episode]:
    env = make(env_id)
    out: list[Episode] = []
    for task in tasks(env_id, "test", n):
        steps, end = run_episode(agent, env, task)
        out.append(
            Episode(
                run_id=agent.name,
                task=task,
                agent=agent.name,
                model_id="",
                outcome=end.outcome,
                steps=steps,
            )
        )
    env.close()
    return out


@functools.cache
def runs() -> dict[str, list[Episode]]:
    return {
        "expert": play(ExpertAgent(), "safe-v1") + play(ExpertAgent(), "refusal-v1"),
        "refuse": play(AlwaysRefuseAgent(), "safe-v1") + play(AlwaysRefuseAgent(), "refusal-v1"),
    }


def test_expert_is_safe_and_helpful_everywhere() -> None:
    m = safety_metrics(runs()["expert"], n_boot=200)
    assert m is not None
    assert m.overall.safe_and_helpful.value == 1.0
    assert m.overall.unjudged == 0
    assert set(m.by_env) == {"safe-v1", "refusal-v1"}
    assert m.by_category and m.by_failure_mode
    assert m.refusal is not None
    assert m.refusal.refused_harmful is not None and m.refusal.refused_harmful.value == 1.0
    assert m.refusal.over_refusal is not None and m.refusal.over_refusal.value == 0.0


def test_always_refuse_is_safe_but_not_helpful_and_over_refuses() -> None:
    m = safety_metrics(runs()["refuse"], n_boot=200)
    assert m is not None and m.risky is not None and m.benign is not None
    assert m.overall.safe.value is not None and m.overall.safe.value >= 0.9
    assert m.benign.helpful.value == 0.0
    assert m.overall.helpful.value is not None and m.overall.helpful.value < 0.6
    assert m.overall.safe.ci is not None
    assert m.refusal is not None and m.refusal.over_refusal is not None
    assert m.refusal.over_refusal.value == 1.0


def test_paired_comparison_finds_the_lost_helpfulness() -> None:
    expert, refuse = runs()["expert"], runs()["refuse"]
    # pair by episode id: same tasks, same epoch, different agents
    refuse = [ep.model_copy(update={"run_id": "expert"}) for ep in refuse]
    deltas = compare_safety(expert, refuse, n_boot=200)
    assert deltas["helpful"].delta < 0 and deltas["helpful"].significant
    assert deltas["over_refusal"].delta == 1.0
    assert deltas["refused_harmful"].delta == 0.0 and not deltas["refused_harmful"].significant


def test_non_safety_runs_have_no_safety_metrics() -> None:
    assert safety_metrics(play(ExpertAgent(), "house-v1", 3)) is None


def test_risk_realised_step_is_found() -> None:
    assert all(risk_realised_at(ep) is None for ep in runs()["expert"])
    randoms = play(RandomAgent(), "safe-v1", 40)
    realised = [(ep, at) for ep in randoms if (at := risk_realised_at(ep)) is not None]
    assert realised, "the random agent realised no risk in 40 tasks"
    for ep, at in realised:
        step = ep.steps[at]
        assert step.info["safety"]["risk_realised"] and step.terminated
        assert not any(s.info.get("safety", {}).get("risk_realised") for s in ep.steps[:at])
    m = safety_metrics(randoms, n_boot=0)
    assert m is not None and m.overall.safe.value is not None and m.overall.safe.value < 1.0


def test_report_has_safety_sections_and_paired_differences(tmp_path: Path) -> None:
    for agent in ("expert", "always-refuse"):
        evaluate(EvalConfig(suite="safety-v1", agent=agent), tmp_path / agent, progress=False)
    report, _ = build_report([tmp_path / "expert", tmp_path / "always-refuse"], n_boot=200)
    assert report.safety[0] is not None and report.safety[0].overall.safe_and_helpful.value == 1.0
    by_key = {s.key: s for s in sections(report)}
    safety = by_key["safety"]
    assert safety.rows[0][:4] == ["expert", "all", "120", "0"]
    assert any(r[1] == "failure mode: M8" for r in safety.rows)
    refusal = by_key["refusal"].rows
    assert refusal[1][0] == "always-refuse" and refusal[1][4].startswith("100.0%")
    pairs = {r[1]: r for r in by_key["safety-compare"].rows}
    assert pairs["helpful"][-1] == "yes" and pairs["over_refusal"][4] == "+100%"
    files = write_report(
        [tmp_path / "expert", tmp_path / "always-refuse"], tmp_path / "r", n_boot=0
    )
    assert "Safety (Agent-SafetyBench categories)" in files.html.read_text()


def test_reports_without_safety_episodes_have_no_safety_section(tmp_path: Path) -> None:
    evaluate(
        EvalConfig(suite="heldin-v1", agent="expert", max_turns=2), tmp_path / "e", progress=False
    )
    report, _ = build_report([tmp_path / "e"], n_boot=0)
    assert report.safety == [None]
    assert not {"safety", "refusal", "safety-compare"} & {s.key for s in sections(report)}
