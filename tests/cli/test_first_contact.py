"""First contact with the CLI (issue 14): install hints that survive rich, missing extras,
YAML syntax errors, unknown ids, runs of errors, evolve's up-front checks, eval's interval."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import palaestra.env._registry as reg
from palaestra.cli import app
from palaestra.cli._common import fail
from palaestra.env import EnvError, ToyEnv, register
from palaestra.trajectory import Episode, Run, RunStore, Step

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
HINT = 'pip install "palaestra[foo]"'


@pytest.fixture(autouse=True)
def _registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """toy-v1, an env whose adapter lacks its extra, and one whose every step fails."""
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg.registry()))
    register("toy-v1", ToyEnv, max_episode_steps=20)
    # An adapter module that fails to import the way palaestra's adapters do: naming the extra.
    (tmp_path / "palaestra_test_noextra.py").write_text(
        f"raise ImportError('Foo environments need the foo package: {HINT}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register("foo/bar-v1", "palaestra_test_noextra:FooEnv", source="palaestra[foo]")
    register("broken-v1", _BrokenEnv, max_episode_steps=20)
    yield


class _BrokenEnv(ToyEnv):
    """Infrastructure that always fails: every episode ends in ``error``."""

    def step(self, action: str):  # type: ignore[override]
        raise EnvError("the env server went away")


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


# ---- 9: messages and data text are never read as rich markup ------------------------------


def test_fail_keeps_the_extra_of_an_install_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - typer.Exit
        fail('evolve needs torch: pip install "palaestra[train]"')
    assert 'pip install "palaestra[train]"' in capsys.readouterr().err


def test_envs_show_prints_bracketed_actions() -> None:
    res = runner.invoke(app, ["envs", "show", "shop-v1"])
    assert res.exit_code == 0, res.output
    # shop's actions are search[<query>], click[<product id>], ...: rich used to eat them.
    assert "search[<query>]" in res.output and "search[mug]" in res.output


def test_envs_list_keeps_install_hints() -> None:
    res = runner.invoke(app, ["envs", "list"], env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "foo/bar-v1" in line)
    assert "palaestra[foo]" in row and HINT in row


# ---- 12: envs show / play on an adapter without its extra ----------------------------------


@pytest.mark.parametrize("command", ["show", "play"])
def test_envs_show_and_play_name_the_missing_extra(command: str) -> None:
    res = runner.invoke(app, ["envs", command, "foo/bar-v1"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(_lines(res.output)) == 1, res.output
    assert "environment 'foo/bar-v1' is not available" in res.output and HINT in res.output


# ---- 10: a core install (no torch) gets the install line, not a traceback -----------------


@pytest.mark.parametrize(
    "args",
    [
        ["train", "sft", "--model", "tiny", "--data", "d", "--out", "o"],
        ["train", "dpo", "--model", "tiny", "--data", "d", "--out", "o"],
        ["merge", "adapter", "--out", "o"],
        ["evolve", str(ROOT / "configs" / "quickstart.yaml"), "--out", "o"],
    ],
    ids=["train-sft", "train-dpo", "merge", "evolve"],
)
def test_without_torch_the_train_commands_name_the_extra(args: list[str], tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # what `import torch` meets on a core install
        sys.argv = ["palaestra", *{args!r}]
        from palaestra.cli import main
        main()
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out and len(_lines(out)) == 1, out
    assert 'needs torch, which is not installed: pip install "palaestra[train]"' in out


# ---- 11: a YAML syntax error is one line at file:line:column -------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["rollout", "--out", "o"],
        ["eval", "--out", "o"],
        ["train", "sft", "--model", "tiny", "--data", "d", "--out", "o"],
        ["evolve", "--out", "o"],
    ],
    ids=["rollout", "eval", "train-sft", "evolve"],
)
def test_yaml_syntax_error_is_one_line(command: list[str], tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("env: house-v1\nagent: [expert\nn: 3\n")
    args = [*command[:1], str(cfg), *command[1:]] if command[0] == "evolve" else command
    if command[0] != "evolve":
        args = [*command, "--config", str(cfg)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(_lines(res.output)) == 1, res.output
    assert f"{cfg}:3:2: YAML syntax error: expected ',' or ']'" in res.output
    assert "(from 2:8)" in res.output


# ---- 15: an unknown id names its closest matches, not the whole registry -------------------


@pytest.mark.parametrize(
    ("args", "close"),
    [
        (["envs", "show", "hose-v1"], "house-v1"),
        (["envs", "play", "shop-v2"], "shop-v1"),
        (["rollout", "--env", "toy-v2", "--agent", "expert", "--out", "o"], "toy-v1"),
        (["demo", "maze"], "maze-v1"),
        (["evolve", "--env", "toolqa", "--out", "o"], "toolqa-v1"),
    ],
)
def test_unknown_env_suggests_close_ids(args: list[str], close: str) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert f"did you mean {close}" in res.output, res.output
    assert "palaestra envs list" in res.output
    assert "scienceworld/boil-v1" not in res.output  # not the 80-id list
    assert len(_lines(res.output)) <= 2, res.output


# ---- 13: errors are not results ---------------------------------------------------------


def test_rollout_of_errors_exits_nonzero_and_runs_show_scores_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["rollout", "--env", "broken-v1", "--agent", "expert", "--n", "2", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "2 of 2 episode(s) ended in error" in res.output
    assert "EnvError: the env server went away" in res.output and "Traceback" not in res.output

    res = runner.invoke(app, ["runs", "show", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    row = next(line for line in res.output.splitlines() if "broken-v1" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    # env, split, n, success, fail, limit, error, score, progress, steps, tokens
    assert cells[2] == "2" and cells[6] == "2", cells
    assert cells[3] == "–" and cells[7:] == ["–"] * 4, cells

    res = runner.invoke(app, ["runs", "list", str(tmp_path)], env={"COLUMNS": "200"})
    row = next(line for line in res.output.splitlines() if "run" in line and "expert" in line)
    assert "0%" not in row and "–" in row, row


def test_rollout_without_errors_still_exits_zero(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["rollout", "--env", "toy-v1", "--agent", "expert", "--n", "2", "--out", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output


# ---- 14: evolve checks everything before the first stage ---------------------------------


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--model", "nope"], "model: 'nope' is not a base model evolve can train"),
        (["--model", "tiny/huge"], "model: unknown tiny preset 'tiny/huge'"),
        (["--env", "foo/bar-v1"], "envs: environment 'foo/bar-v1' is not available"),
    ],
)
def test_evolve_refuses_a_bad_config_before_any_stage(
    flags: list[str], needle: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "evolve.yaml"
    cfg.write_text(
        "envs: [toy-v1]\ndemos: 2\neval_suites: [heldin-v1]\neval_envs: [house-v1]\neval_n: 1\n"
    )
    out = tmp_path / "out"
    res = runner.invoke(app, ["evolve", str(cfg), "--out", str(out), *flags])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(_lines(res.output)) == 1, res.output
    assert not out.exists()  # no iter-0/ left behind


# ---- 16: eval's summary shows the report's interval ---------------------------------------


def test_eval_summary_shows_wilson_where_the_bootstrap_collapses(tmp_path: Path) -> None:
    from rich.console import Console

    from palaestra.cli.eval import summary_table
    from palaestra.env import Task

    with RunStore(tmp_path) as store:
        store.write_run(Run(run_id="r", kind="eval", agent="expert", model_id=""))
        for seed in range(20):
            task = Task(
                env_id="toy-v1", split="test", seed=seed, difficulty="easy", instruction="x"
            )
            store.add(
                Episode(
                    run_id="r",
                    task=task,
                    agent="expert",
                    model_id="",
                    outcome="success",
                    score=1.0,
                    progress=1.0,
                    steps=[Step(index=0)],
                    metadata={"suite": "s-v1", "suite_group": "g"},
                )
            )
    console = Console(width=200, record=True)
    console.print(summary_table(tmp_path))
    text = console.export_text()
    # 20/20 successes: the report's Wilson interval is [83.9-100.0], never "100%-100%".
    assert "100%-100%" not in text
    assert "83.9–100.0" in text, text
