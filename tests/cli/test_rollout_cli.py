"""`palaestra rollout` and `palaestra runs` end to end (expert/random agents: no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from palaestra.cli import app
from palaestra.trajectory import RunStore, read_jsonl

runner = CliRunner()


def test_rollout_resume_and_runs_commands(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "r1"
    args = ["rollout", "--env", "house-v1", "--agent", "expert", "--n", "4", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "4 new episode(s), 0 already done" in res.output
    res = runner.invoke(app, [*args[:-4], "--n", "6", "--out", str(out)])
    assert res.exit_code == 0 and "2 new episode(s), 4 already done" in res.output
    with RunStore(out, readonly=True) as store:
        assert len(store) == 6 and all(e.outcome == "success" for e in store.episodes())

    res = runner.invoke(app, ["runs", "show", str(out)])
    assert res.exit_code == 0 and "house-v1" in res.output and "100%" in res.output
    res = runner.invoke(app, ["runs", "list", str(tmp_path / "runs")])
    assert res.exit_code == 0 and "expert" in res.output
    res = runner.invoke(app, ["runs", "export", str(out), "--format", "episodes"])
    assert res.exit_code == 0
    assert len(list(read_jsonl(out / "episodes.jsonl"))) == 6


def test_rollout_refuses_a_changed_config(tmp_path: Path) -> None:
    base = ["rollout", "--env", "maze-v1", "--n", "2", "--out", str(tmp_path)]
    assert runner.invoke(app, [*base, "--agent", "expert"]).exit_code == 0
    res = runner.invoke(app, [*base, "--agent", "random"])
    assert res.exit_code == 2 and "agent: 'expert' -> 'random'" in res.output


def test_rollout_config_file_and_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("env: toolqa-v1\nagent: random\nn: 3\nsplit: test\n")
    res = runner.invoke(
        app, ["rollout", "--config", str(cfg), "--n", "2", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    with RunStore(tmp_path / "o", readonly=True) as store:
        run = store.run()
        assert run is not None and run.config["n"] == 2 and run.config["split"] == "test"
        assert json.loads(run.model_dump_json())["agent"] == "random"
    cfg.write_text("env: toolqa-v1\nagnet: random\n")
    res = runner.invoke(app, ["rollout", "--config", str(cfg), "--out", str(tmp_path / "p")])
    assert res.exit_code == 2 and "unknown key(s) agnet" in res.output
    res = runner.invoke(app, ["rollout", "--env", "nope-v1", "--out", str(tmp_path / "q")])
    assert res.exit_code == 2 and "no environment 'nope-v1'" in res.output
    res = runner.invoke(app, ["rollout", "--env", "house-v1", "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and "needs --model" in res.output
    res = runner.invoke(app, ["runs", "show", str(tmp_path / "none")])
    assert res.exit_code == 2 and "not a run directory" in res.output
