"""evolve's ``rl`` arm: config, compute matching, curriculum-driven RL tasks, report, resume.

The end-to-end test checks the machinery on ``tiny/micro`` (the RL stage runs between
the arm's SFT and its evaluation, the control gets the same optimizer steps, the RL
episodes reach the next curriculum, the report shows the rl arm, a failed RL stage is
redone alone), not learning: an untrained micro model never succeeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from palaestra.env import make, tasks
from palaestra.evolve import (
    EvolveConfig,
    RLArmConfig,
    check_evolve_config,
    control_steps,
    propose,
)
from palaestra.evolve._curriculum import Cell, initial_cells
from palaestra.evolve._loop import train_suite_file
from palaestra.evolve._rl_arm import TaskRouter, rl_run_config, rl_stats, rl_tasks
from palaestra.train import DPORunConfig, SFTRunConfig
from palaestra.trajectory import Episode, Outcome

RL = {"num_generations": 2, "batch_size": 2, "max_steps": 1, "beta": 0.0, "progress": False}


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
        "rl": RL,
    }
    base.update(kw)
    return EvolveConfig.model_validate(base)


# ---- config ---------------------------------------------------------------------------------


def test_rl_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"rl\.env: set by evolve"):
        _config(rl={**RL, "env": "maze-v1"})
    with pytest.raises(ValueError, match=r"rl\.max_turns: set by evolve"):
        _config(rl={**RL, "max_turns": 3})
    with pytest.raises(ValueError, match="max_steps"):
        _config(rl={**RL, "max_steps": 0})
    with pytest.raises(ValueError, match="multiple of num_generations"):
        _config(rl={**RL, "batch_size": 3})
    with pytest.raises(ValueError, match="rl: not with a dpo section"):
        _config(dpo=DPORunConfig())
    with pytest.raises(
        ValueError, match=r"train\.max_steps \(-1\) must be >= 1 with rl\.after_sft"
    ):
        _config(train=SFTRunConfig(max_steps=-1))
    _config(train=SFTRunConfig(max_steps=-1), rl={**RL, "after_sft": False})  # no SFT: fine
    with pytest.raises(ValueError, match=r"rollouts: 1 task\(s\) per environment"):
        _config(rollouts=1, rl={**RL, "batch_size": 4})
    with pytest.raises(ValueError, match=r"rl\.agent: unknown agent 'nope'"):
        check_evolve_config(_config(rl={**RL, "agent": "nope"}))


def test_rl_config_round_trips_for_resume() -> None:
    """evolve.json stores every field (the loop-owned ones at their defaults): it loads back."""
    cfg = _config(rl={**RL, "algorithm": "rloo", "learning_rate": 3e-4})
    again = EvolveConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg and isinstance(again.rl, RLArmConfig) and again.rl.algorithm == "rloo"


def test_rl_run_config_fills_what_the_loop_owns() -> None:
    cfg = _config(seed=5, concurrency=3, rl={**RL, "algorithm": "rloo", "temperature": 0.7})
    task_list = tasks("toolqa-v1", "train", n=3)
    run = rl_run_config(cfg, 2, task_list)
    assert (run.env, run.n, run.seed, run.concurrency) == ("toolqa-v1", 3, 7, 3)
    assert (run.prompt, run.max_turns, run.max_new_tokens) == ("compact", 3, 16)
    assert (run.algorithm, run.temperature, run.max_steps) == ("rloo", 0.7, 1)


# ---- compute matching -----------------------------------------------------------------------


def test_control_steps_match_the_improving_arms_sft_and_rl_steps() -> None:
    train = SFTRunConfig(max_steps=30)
    assert control_steps(_config(train=train, rl=None)) == 30
    assert control_steps(_config(train=train, rl={**RL, "max_steps": 12})) == 42
    assert control_steps(_config(train=train, rl={**RL, "max_steps": 12, "after_sft": False})) == 12


# ---- the curriculum drives the RL tasks ------------------------------------------------------


def _cells() -> list[Cell]:
    cells = initial_cells(["toolqa-v1", "house-v1"], ["easy", "medium"])
    for c in cells:
        c.share = 0.0 if c.difficulty == "medium" else 1.0
    return cells


def test_rl_tasks_are_the_curriculums_train_tasks(tmp_path: Path) -> None:
    cells = _cells()
    planned, _ = propose(1, cells, 3)
    suite = train_suite_file(tmp_path, "train-iter1", planned)
    got = rl_tasks(suite, cells, [])
    assert [t.task_id for t in got] == [t.task_id for t in planned] and len(got) == 6
    assert {t.split for t in got} == {"train"}
    assert {(t.env_id, t.difficulty) for t in got} == {("toolqa-v1", "easy"), ("house-v1", "easy")}


def test_rl_tasks_refuse_unplanned_cells_and_evaluation_seeds(tmp_path: Path) -> None:
    cells = _cells()
    medium = tasks("toolqa-v1", "train", n=1, difficulty="medium", start=500)
    with pytest.raises(ValueError, match="in no cell the curriculum planned"):
        rl_tasks(train_suite_file(tmp_path, "x", medium), cells, [])
    easy = tasks("toolqa-v1", "train", n=2, difficulty="easy", start=500)
    with pytest.raises(ValueError, match="are evaluation tasks"):
        rl_tasks(train_suite_file(tmp_path, "x", easy), cells, easy[:1])
    assert len(rl_tasks(train_suite_file(tmp_path, "x", easy), cells, [])) == 2


def test_task_router_plays_tasks_of_several_environments() -> None:
    router = TaskRouter("toolqa-v1")
    try:
        for task in [*tasks("house-v1", "train", n=1), *tasks("toolqa-v1", "train", n=1)]:
            obs = router.reset(task)
            assert router.env_id == task.env_id and router.task == task and obs.text
            assert router.description == make(task.env_id).description
    finally:
        router.close()


def test_rl_stats_read_the_log_history_and_the_episodes() -> None:
    task = tasks("toolqa-v1", "train", n=1)[0]

    def ep(outcome: Outcome, attempt: int) -> Episode:
        return Episode(
            run_id="r", model_id="m", agent="react", task=task, attempt=attempt, outcome=outcome
        )

    log: list[dict[str, Any]] = [
        {"step": 1, "reward": 0.25, "rl/success_rate": 0.0, "num_tokens": 100.0},
        {"step": 2, "reward": 0.75, "rl/success_rate": 0.5, "num_tokens": 250.0},
        {"train_runtime": 3.0, "step": 2},
    ]
    eps = [ep("success", 0), ep("failure", 1), ep("error", 2), ep("success", 3)]
    s = rl_stats("grpo", log, eps, tasks=1, steps=2)
    assert (s.steps, s.episodes, s.errors, s.tokens) == (2, 4, 1, 250)
    assert s.success_rate == pytest.approx(2 / 3) and s.reward_mean == pytest.approx(0.5)
    assert (s.reward_first, s.reward_last, s.success_first, s.success_last) == (0.25, 0.75, 0, 0.5)


# ---- end to end -----------------------------------------------------------------------------


def _stage_times(out: Path) -> dict[str, float]:
    return {str(p.parent.relative_to(out)): p.stat().st_mtime_ns for p in out.rglob("stage.json")}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iteration 0 (demos, base SFT, its evaluation), run once: it does not depend on ``rl``."""
    pytest.importorskip("trl")
    from palaestra.evolve import evolve

    out = tmp_path_factory.mktemp("base") / "evo"
    evolve(_config(iterations=0, rl=None), out, progress=False)
    return out


def _from_base(base: Path, out: Path) -> Path:
    """A run folder holding the finished iteration-0 stages of ``base`` (they are skipped)."""
    for stage in ("iter-0", "evals/base"):
        shutil.copytree(base / stage, out / stage)
    return out


@pytest.mark.train
def test_evolve_rl_arm_runs_matches_the_control_reports_and_resumes(
    base_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import palaestra.train
    from palaestra.evolve import evolve

    out = _from_base(base_run, tmp_path / "evo")
    cfg = _config()

    def crash(model: str, config: Any, out_dir: Path, **_: Any) -> Any:
        Path(out_dir).mkdir(parents=True)
        (Path(out_dir) / "half-written").write_text("")
        raise RuntimeError("killed during RL")

    real = palaestra.train.train_rl
    monkeypatch.setattr(palaestra.train, "train_rl", crash)
    with pytest.raises(RuntimeError, match="killed during RL"):
        evolve(cfg, out, progress=False)
    done = _stage_times(out)
    assert {"iter-0/train", "evals/base"} <= set(done)
    assert {"iter-1/rl/rollouts", "iter-1/rl/data", "iter-1/rl/train"} <= set(done)
    assert "iter-1/rl/rl" not in done and "iter-1/control/train" not in done

    # the re-run redoes the RL stage alone (resuming train_rl in its folder) and goes on
    monkeypatch.setattr(palaestra.train, "train_rl", real)
    result = evolve(cfg, out, progress=False)
    after = _stage_times(out)
    assert all(after[k] == v for k, v in done.items())
    # the folder is kept, not rebuilt: train_rl resumes from a checkpoint there (test_rl_resume)
    assert (out / "iter-1/rl/rl/model/half-written").exists()
    assert [m.label for m in result.models] == ["base", "iter1-rl", "iter1-control"]
    rl, ctl = result.models[1], result.models[2]
    # compute matching: base 2, then the rl arm's 2 SFT + 1 RL step = the control's 3 SFT steps
    assert rl.optimizer_steps == ctl.optimizer_steps == 5
    control = json.loads((out / "iter-1/control/train/stage.json").read_text())["result"]
    assert control["optimizer_steps"] == 3 and control["tokens"] > 0
    stage = json.loads((out / "iter-1/rl/rl/stage.json").read_text())["result"]
    assert stage["optimizer_steps"] == 1 and stage["stats"]["episodes"] == 2
    assert rl.rl is not None and rl.rl.steps == 1 and rl.rl.tasks == 4
    assert rl.tokens is not None and rl.tokens > stage["tokens"] > 0  # SFT + RL tokens

    # the RL episodes are on the curriculum's tasks and feed the next curriculum
    plan = json.loads((out / "iter-1/curriculum/curriculum.json").read_text())
    assessed = json.loads((out / "iter-1/assessment.json").read_text())
    assert sum(c["episodes"] for c in assessed["cells"]) == 4 + 2  # 4 explored + 2 in RL
    assert plan["tasks"] == {"toolqa-v1/easy": 4}

    report = (out / "report/evolve.md").read_text()
    assert "rl arm vs control" in report and "The rl arm's RL steps" in report
    assert "Training budget per iteration" in report
    summary = json.loads((out / "report/summary.json").read_text())
    assert summary["rl"][0]["label"] == "iter1-rl" and summary["rl"][0]["episodes"] == 2
    budget = {b["label"]: b for b in summary["budget"]}
    assert (budget["iter1-rl"]["sft_steps"], budget["iter1-rl"]["rl_steps"]) == (2, 1)
    assert (budget["iter1-control"]["sft_steps"], budget["iter1-control"]["steps"]) == (3, 3)
    assert {c["arm"] for c in summary["comparison"]} == {"rl"}


@pytest.mark.train
def test_rl_instead_of_sft_skips_exploration_and_sft(base_run: Path, tmp_path: Path) -> None:
    from palaestra.evolve import evolve

    out = _from_base(base_run, tmp_path / "evo")
    cfg = _config(rl={**RL, "after_sft": False, "max_steps": 2})
    result = evolve(cfg, out, progress=False)
    done = set(_stage_times(out))
    assert "iter-1/rl/rl" in done and "iter-1/control/train" in done
    assert not {"iter-1/rl/rollouts", "iter-1/rl/data", "iter-1/rl/train"} & done
    rl, ctl = result.models[1], result.models[2]
    assert rl.optimizer_steps == ctl.optimizer_steps == 2 + 2  # base 2, then RL 2 = SFT 2
    assessed = json.loads((out / "iter-1/assessment.json").read_text())
    assert sum(c["episodes"] for c in assessed["cells"]) == 4  # the RL episodes alone
