"""The `palaestra` CLI: envs list/show/play/check and demo, through typer's runner."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import palaestra.env._registry as reg
from palaestra.cli import app
from palaestra.env import ToyEnv, register

runner = CliRunner()


@pytest.fixture(autouse=True)
def _toy_registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg.registry()))
    register("toy-v1", ToyEnv, max_episode_steps=20)
    yield


def test_envs_list_json_includes_builtins() -> None:
    res = runner.invoke(app, ["envs", "list", "--json"])
    assert res.exit_code == 0, res.output
    ids = {row["id"] for row in json.loads(res.output)}
    assert {"shop-v1", "house-v1", "toolqa-v1", "maze-v1", "toy-v1"} <= ids


def test_envs_show_describes_example_task() -> None:
    res = runner.invoke(app, ["envs", "show", "toy-v1", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "inc | dec | stop" in res.output and "toy-v1/train/easy/3-" in res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["envs", "show", "toy-v9"], "no environment 'toy-v9'"),
        (["envs", "show", "toy-v1", "--split", "dev"], "--split must be one of"),
        (["envs", "play", "toy-v1", "--difficulty", "x"], "--difficulty must be one of"),
        (["demo", "nope-v1"], "no environment 'nope-v1'"),
        (["model", "build-tiny", "--pretrain"], "--pretrain needs --out DIR"),
    ],
)
def test_bad_input_gets_a_clear_error(args: list[str], needle: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert needle in res.output


def test_envs_play_solves_with_numbers_and_text() -> None:
    # seed 0 easy: target 2. "1" picks the first available action ("inc").
    res = runner.invoke(app, ["envs", "play", "toy-v1"], input="1\n:hint\ninc\nfly\nstop\n")
    assert res.exit_code == 0, res.output
    assert "expert: inc" in res.output
    assert "Unknown action 'fly'" in res.output
    assert "Episode over: solved" in res.output


def test_envs_play_quit() -> None:
    res = runner.invoke(app, ["envs", "play", "toy-v1"], input=":actions\n:quit\n")
    assert res.exit_code == 0 and "Bye." in res.output and "1. inc" in res.output


def test_envs_check_passes_and_fails() -> None:
    assert runner.invoke(app, ["envs", "check", "toy-v1", "--seeds", "1"]).exit_code == 0

    class Bad(ToyEnv):
        def expert(self) -> str:
            return "dec"

    register("bad-v1", Bad)
    res = runner.invoke(app, ["envs", "check", "bad-v1", "--seeds", "1"])
    assert res.exit_code == 1 and "expert did not solve" in res.output


def test_demo_writes_summary(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", "toy-v1", "-n", "4", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [r["difficulty"] for r in summary["rows"]] == ["easy", "medium", "hard"]
    assert all(r["expert"]["success"] == 1.0 for r in summary["rows"])
    assert all(r["random"]["success"] < 1.0 for r in summary["rows"])
