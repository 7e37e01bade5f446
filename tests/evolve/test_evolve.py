"""``palaestra evolve`` end to end on the micro model: stages, arms, resume, report.

This checks the machinery (every stage runs, both arms get the same optimizer steps and
tasks, a killed run resumes without redoing finished stages, the report compares the
arms), not learning: the learning itself is measured by the quickstart
(``configs/quickstart.yaml``) and ``tests/train/test_learning.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from palaestra.evolve import EvolveConfig, evolve, load_evolve_config
from palaestra.train import SFTRunConfig


def _config(**kw: object) -> EvolveConfig:
    base: dict[str, object] = {
        "model": "tiny/micro",
        "envs": ["toolqa-v1"],
        "demos": 6,
        "prompt": "compact",
        "base_sft": SFTRunConfig(method="full", learning_rate=5e-3, max_steps=2, batch_size=4),
        "iterations": 1,
        "rollouts": 4,
        "train": SFTRunConfig(method="full", learning_rate=1e-3, max_steps=2, batch_size=4),
        "eval_suites": ["recovery-v1"],
        "eval_envs": ["toolqa-v1"],
        "max_steps": 3,
        "max_new_tokens": 16,
    }
    base.update(kw)
    return EvolveConfig.model_validate(base)


def _stage_times(out: Path) -> dict[str, float]:
    return {str(p.parent.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("stage.json")}


@pytest.mark.train
def test_evolve_runs_both_arms_resumes_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "evo"
    cfg = _config(iterations=0)
    first = evolve(cfg, out, progress=False)
    assert [m.label for m in first.models] == ["base"]
    done = _stage_times(out)
    assert {"iter-0/demos", "iter-0/data", "iter-0/train", "evals/base"} <= set(done)

    # a later call with more iterations resumes: finished stages are not redone
    result = evolve(cfg.model_copy(update={"iterations": 1}), out, progress=False)
    assert [m.label for m in result.models] == ["base", "iter1-improve", "iter1-control"]
    after = _stage_times(out)
    assert all(after[k] == v for k, v in done.items())
    imp, ctl = result.models[1], result.models[2]
    assert imp.optimizer_steps == ctl.optimizer_steps == 4  # equal steps: base 2 + 2
    # the arms trained on the same tasks; the improving arm on more than expert data
    stage = json.loads((out / "iter-1/improve/data/stage.json").read_text())["result"]
    assert stage["counts"]["expert"] == 4 and stage["rows"] >= 4
    control = json.loads((out / "iter-1/control/data/stage.json").read_text())["result"]
    assert control["counts"] == {"expert": 4}
    report = (out / "report/evolve.md").read_text()
    assert "improving arm vs control" in report and "recovery" in report
    assert (out / "report/curves.png").stat().st_size > 1000
    assert (out / "report/detail/report.html").is_file()
    summary = json.loads((out / "report/summary.json").read_text())
    assert [m["label"] for m in summary["models"]] == ["base", "iter1-improve", "iter1-control"]
    # no held-in group was evaluated: the report says the base could not be checked
    assert summary["base_check"]["too_weak"] and "heldin-v1" in summary["base_check"]["why"]
    assert "Base check: too weak" in report

    # a half-written stage (no stage.json) is rebuilt; the rest is kept
    (out / "iter-1/control/train/stage.json").unlink()
    evolve(cfg.model_copy(update={"iterations": 1}), out, progress=False)
    again = _stage_times(out)
    assert again["iter-1/control/train"] != after["iter-1/control/train"]
    assert again["iter-1/improve/train"] == after["iter-1/improve/train"]

    # a changed setting is refused, naming it
    with pytest.raises(ValueError, match="demos: 6 -> 7"):
        evolve(cfg.model_copy(update={"demos": 7}), out, progress=False)


@pytest.mark.train
def test_expert_recovery_data_demonstrates_corrections_after_an_injected_mistake(
    tmp_path: Path,
) -> None:
    from palaestra.trajectory import RunStore

    cfg = _config(
        envs=["house-v1"],
        eval_envs=["house-v1"],
        max_steps=12,
        control=False,
        data={"expert": True, "refine": False, "self_sft": False, "expert_recovery": True},
    )
    evolve(cfg, tmp_path / "evo", progress=False)
    stage = json.loads((tmp_path / "evo/iter-1/improve/data/stage.json").read_text())["result"]
    assert stage["counts"]["expert"] == 4 and stage["counts"]["expert_recovery"] >= 3
    with RunStore(tmp_path / "evo/iter-1/improve/expert-recovery/run", readonly=True) as store:
        eps = list(store.episodes())
    assert len(eps) == 4
    notes = [
        m.content
        for ep in eps
        for m in ep.messages
        if "Your action was not carried out" in m.content
    ]
    assert len(notes) >= 3  # the environment did something else; the expert went on from there


def test_base_check_says_when_the_base_is_too_weak_and_what_to_change() -> None:
    from palaestra.evolve._report import base_check

    assert base_check(0.5, 0.2) is None
    assert base_check(0.2, 0.2) is None
    why = base_check(0.05, 0.2)
    assert why is not None and "5%" in why and "base_floor=20%" in why
    assert "base_sft.max_steps" in why and "--pretrain" in why and "env_params" in why
    with pytest.raises(ValueError, match="base_floor"):
        _config(base_floor=1.5)


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown environment"):
        load_evolve_config(envs=["nope-v1"])
    with pytest.raises(ValueError, match=r"data\.pairs needs a dpo section"):
        _config(data={"pairs": True})
    with pytest.raises(ValueError, match=r"data\.reflect needs search trees"):
        _config(data={"reflect": True})
    bad = tmp_path / "e.yaml"
    bad.write_text("envs: [house-v1]\niteratons: 2\n")
    with pytest.raises(ValueError, match="unknown key\\(s\\) iteratons"):
        load_evolve_config(bad)
    assert load_evolve_config(
        Path(__file__).parents[2] / "configs" / "quickstart.yaml"
    ).envs  # the shipped config loads


def test_env_params_reach_every_task_of_the_env(tmp_path: Path) -> None:
    from palaestra.evolve._curriculum import initial_cells
    from palaestra.evolve._loop import eval_suite_file

    params = {"house-v1": {"contents_visible": True}}
    cfg = _config(
        envs=["house-v1"],
        eval_envs=["house-v1"],
        eval_suites=["recovery-v1"],
        env_params=params,
        eval_difficulties=["easy"],
        eval_n=7,
    )
    _, eval_tasks = eval_suite_file(cfg, tmp_path)
    assert len(eval_tasks) == 7
    assert all(t.params.get("contents_visible") is True for t in eval_tasks)
    assert {t.difficulty for t in eval_tasks} == {"easy"}
    assert all(c.params == params["house-v1"] for c in initial_cells(cfg.envs, ["easy"], params))
    with pytest.raises(ValueError, match=r"env_params\['house-v1'\].*contents_visible"):
        _config(envs=["house-v1"], env_params={"house-v1": {"contents_visible": "yes"}})


def test_no_successful_demonstrations_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _config(envs=["house-v1"], eval_envs=["house-v1"], demos=2, max_steps=1)
    with pytest.raises(ValueError, match=r"expert solved none.*raise max_turns"):
        evolve(cfg, tmp_path / "run", progress=False)
