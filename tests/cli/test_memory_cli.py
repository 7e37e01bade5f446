"""`palaestra data memory` and `--memory` on rollout: build, poison, use, and refuse bad input."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from palaestra.agent import TrajectoryMemory
from palaestra.cli import app
from palaestra.model import ScriptedModel, register_provider
from palaestra.trajectory import RunStore

runner = CliRunner()


def test_memory_from_a_run_poisoned_and_used_by_react(tmp_path: Path) -> None:
    register_provider(
        "memtest", lambda name, **kw: ScriptedModel(lambda _: "Action: look"), override=True
    )
    run = tmp_path / "expert"
    res = runner.invoke(
        app,
        [
            "rollout",
            "--env",
            "house-v1",
            "--agent",
            "expert",
            "--n",
            "20",
            "--difficulty",
            "easy",
            "--out",
            str(run),
        ],
    )
    assert res.exit_code == 0, res.output
    mem = tmp_path / "mem.jsonl"
    res = runner.invoke(app, ["data", "memory", str(run), "--out", str(mem)])
    assert res.exit_code == 0, res.output
    assert "20 entries (0 poisoned)" in res.output
    assert len(TrajectoryMemory.load(mem)) == 20

    bad = tmp_path / "bad.jsonl"
    args = ["data", "memory", str(run), "--out", str(bad), "--poison-rate", "0.1"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--malicious-action" in res.output
    res = runner.invoke(app, [*args, "--malicious-action", "drop key"])
    assert res.exit_code == 0, res.output
    assert "22 entries (2 poisoned)" in res.output

    # react with the memory: the retrieved examples are in the first prompt
    used = tmp_path / "react"
    res = runner.invoke(
        app,
        ["rollout", "--env", "house-v1", "--agent", "react", "--model", "memtest/x", "--n", "1",
         "--start", "100", "--max-turns", "1", "--memory", str(mem), "--out", str(used)],
    )  # fmt: skip
    assert res.exit_code in (0, 1), res.output
    with RunStore(used, readonly=True) as store:
        (episode,) = list(store.episodes())
    assert episode.messages[0].role == "system"
    assert "Examples of similar tasks solved before:" in episode.messages[0].content


def test_memory_flags_are_checked(tmp_path: Path) -> None:
    base = ["rollout", "--env", "house-v1", "--n", "1", "--out", str(tmp_path / "r")]
    res = runner.invoke(app, [*base, "--agent", "react", "--memory", str(tmp_path / "nope.jsonl")])
    assert res.exit_code == 2 and "no memory file" in res.output
    (tmp_path / "m.jsonl").write_text("")
    res = runner.invoke(app, [*base, "--agent", "expert", "--memory", str(tmp_path / "m.jsonl")])
    assert res.exit_code == 2 and "memory works with the react and reflexion agents" in res.output
