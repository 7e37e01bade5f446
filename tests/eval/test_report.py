"""``palaestra report``: the numbers it prints are recomputed here from the raw run store."""

from __future__ import annotations

import base64
import json
import math
import re
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from palaestra.agent import get_agent
from palaestra.cli.report import report_cmd
from palaestra.env import make, tasks
from palaestra.rollout import RolloutEngine
from palaestra.trajectory import Episode, ErrorInfo, Run, RunStore

SUITE = "mini-v1"
#: (env, split, suite group) of the test suite.
SLICES = (("house-v1", "test", "heldin"), ("maze-v1", "heldout", "heldout"))


def build_run(root: Path, agent: str, *, with_error: bool = False) -> Path:
    """An eval-like run: expert or random on 4 house + 4 maze tasks, 2 epochs each."""
    run_dir = root / agent
    with RunStore(run_dir) as store:
        store.write_run(
            Run(
                run_id=agent,
                kind="eval",
                model_id=agent,
                agent=agent,
                config={"suite": SUITE, "agent": agent, "epochs": 2},
            )
        )
        for env, split, group in SLICES:
            engine = RolloutEngine(
                get_agent(agent, max_steps=40), lambda env=env: make(env), run_id=agent
            )
            for ep in engine.run(tasks(env, split, 4), attempts=2):
                meta = {**ep.metadata, "suite": SUITE, "suite_group": group, "perturbations": []}
                store.add(ep.model_copy(update={"metadata": meta}))
        if with_error:
            # An infrastructure failure on a fifth house task: excluded from every rate.
            task = tasks("house-v1", "test", 1, start=40)[0]
            store.add(
                Episode(
                    run_id=agent,
                    task=task,
                    agent=agent,
                    model_id=agent,
                    outcome="error",
                    error=ErrorInfo(type="EnvError", message="server down"),
                    metadata={"suite": SUITE, "suite_group": "heldin", "perturbations": []},
                )
            )
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("runs")
    return build_run(root, "random", with_error=True), build_run(root, "expert")


def invoke(*args: str) -> Any:
    app = typer.Typer()
    app.command()(report_cmd)
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def report(runs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report")
    result = invoke(str(runs[0]), str(runs[1]), "--out", str(out), "--n-boot", "300")
    assert result.exit_code == 0, result.output
    return {
        "out": out,
        "stdout": result.output,
        "json": json.loads((out / "report.json").read_text()),
        "md": (out / "report.md").read_text(),
        "html": (out / "report.html").read_text(),
    }


# ---- independent recomputation from the raw SQLite file ----------------------------------------


def raw_rows(run_dir: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(run_dir / "run.sqlite")
    try:
        rows = con.execute(
            "SELECT env_id, task_id, outcome, progress, n_steps, "
            "json_extract(body, '$.metadata.suite_group') FROM episodes"
        ).fetchall()
    finally:
        con.close()
    keys = ("env", "task", "outcome", "progress", "steps", "group")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def expected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    scored = [r for r in rows if r["outcome"] != "error"]
    succ = sum(r["outcome"] == "success" for r in scored)
    return {
        "tasks": len({r["task"] for r in rows}),
        "scored": len(scored),
        "errors": len(rows) - len(scored),
        "limits": sum(r["outcome"] == "limit" for r in rows),
        "success": succ / len(scored),
        "progress": sum(r["progress"] for r in scored) / len(scored),
        "steps": sum(r["steps"] for r in scored) / len(scored),
    }


def pass_hat(rows: list[dict[str, Any]], k: int) -> float:
    per_task: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        if r["outcome"] != "error":
            per_task[r["task"]].append(r["outcome"] == "success")
    vals = [math.comb(sum(v), k) / math.comb(len(v), k) for v in per_task.values() if len(v) >= k]
    return sum(vals) / len(vals)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def md_row(md: str, *cells: str) -> str:
    """The first Markdown table row starting with ``cells`` (sections come in reading order)."""
    prefix = "| " + " | ".join(cells) + " |"
    found = [line for line in md.splitlines() if line.startswith(prefix)]
    assert len(found) >= 1, f"no row starting {prefix!r}"
    return found[0]


def test_report_numbers_match_the_store(runs: tuple[Path, Path], report: dict[str, Any]) -> None:
    data, md = report["json"], report["md"]
    assert data["labels"] == ["random", "expert"]
    for label, run_dir, metrics in zip(data["labels"], runs, data["runs"], strict=True):
        rows = raw_rows(run_dir)
        scopes: list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]] = [
            ("overall", "all", rows, metrics["overall"])
        ]
        for env, _, group in SLICES:
            env_rows = [r for r in rows if r["env"] == env]
            scopes.append(("env", env, env_rows, metrics["by_env"][env]))
            group_rows = [r for r in rows if r["group"] == group]
            scopes.append(("group", group, group_rows, metrics["by_group"][group]))
        for _, name, subset, got in scopes:
            want = expected(subset)
            assert got["n_tasks"] == want["tasks"]
            assert got["counts"]["scored"] == want["scored"]
            assert got["counts"]["error"] == want["errors"]
            assert got["counts"]["limit"] == want["limits"]
            assert got["success"]["value"] == pytest.approx(want["success"])
            assert got["progress"]["value"] == pytest.approx(want["progress"])
            assert got["steps"]["value"] == pytest.approx(want["steps"])
            # The Markdown shows the same numbers: run | scope | tasks | scored | success [CI] ...
            row = md_row(md, label, name, str(want["tasks"]), str(want["scored"]))
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[4].startswith(pct(want["success"]) + " ["), row
            assert cells[6].startswith(pct(want["progress"])), row
            assert cells[-1].endswith(f"/ {want['errors']}"), row
        assert metrics["overall"]["pass_hat_k"]["2"]["value"] == pytest.approx(pass_hat(rows, 2))
        overall_row = md_row(md, label, "all")
        assert f"{pct(pass_hat(rows, 2))} (k=2)" in overall_row
    # The terminal summary prints the same headline.
    random_rows = raw_rows(runs[0])
    assert pct(expected(random_rows)["success"]) in report["stdout"]


def test_errors_are_visible_and_excluded(runs: tuple[Path, Path], report: dict[str, Any]) -> None:
    random = report["json"]["runs"][0]
    assert random["overall"]["counts"]["error"] == 1
    assert random["overall"]["counts"]["error_types"] == {"env: EnvError": 1}
    assert random["overall"]["success"]["n"] == random["overall"]["counts"]["episodes"] - 1
    assert "1 (env: EnvError ×1)" in report["md"]


def test_comparison_is_paired_and_significant(
    runs: tuple[Path, Path], report: dict[str, Any]
) -> None:
    comps = {c["scope"]: c for c in report["json"]["comparisons"]}
    overall = comps["overall"]
    assert (overall["a"], overall["b"]) == ("random", "expert")
    # Recompute wins: tasks where expert's success rate beats random's, paired by episode id.
    per_task: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    a_by = _by_episode(runs[0])
    b_by = _by_episode(runs[1])
    for eid in a_by.keys() & b_by.keys():
        if "error" not in (a_by[eid], b_by[eid]):
            per_task[eid.split("#")[0]].append((a_by[eid] == "success", b_by[eid] == "success"))
    wins = sum(sum(b for _, b in v) > sum(a for a, _ in v) for v in per_task.values())
    losses = sum(sum(b for _, b in v) < sum(a for a, _ in v) for v in per_task.values())
    s = overall["success"]
    assert (s["wins"], s["losses"]) == (wins, losses)
    assert overall["n_pairs"] == sum(len(v) for v in per_task.values())
    assert s["test"] == "sign-exact"  # two epochs per task
    assert s["significant"] is (s["p_value"] < 0.05)
    assert s["significant"]  # the expert solves every task, random almost none
    assert len(a_by) == len(b_by) + 1  # random's extra episode is the error: unpaired
    assert overall["unpaired"] == 1
    assert "yes (p=" in report["md"]


def _by_episode(run_dir: Path) -> dict[str, str]:
    con = sqlite3.connect(run_dir / "run.sqlite")
    try:
        return dict(con.execute("SELECT episode_id, outcome FROM episodes").fetchall())
    finally:
        con.close()


def test_html_is_self_contained_with_embedded_plots(report: dict[str, Any]) -> None:
    page: str = report["html"]
    assert page.startswith("<!doctype html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 4
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    for title in ("Held-in, held-out and perturbed", "Failure taxonomy", "Comparisons"):
        assert title in page and title in report["md"]


def test_curve_price_table_and_evolve_note(runs: tuple[Path, Path], tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "random: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
        "expert: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
    )
    out = tmp_path / "curve"
    args = [str(runs[0]), str(runs[1]), "--curve", "--prices", str(prices), "--out", str(out)]
    result = invoke(*args, "--n-boot", "100")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text())
    assert data["curve"] is True
    assert "Over iterations" in (out / "report.html").read_text()
    # These agents use no model, so no tokens and a cost of exactly $0.
    assert data["runs"][0]["overall"]["usage"]["cost_usd"] == 0.0
    assert "$0.0000" in (out / "report.md").read_text()

    evolve = tmp_path / "evolve"
    with RunStore(evolve) as store:
        store.write_run(Run(run_id="evolve", kind="evolve"))
    result = invoke(str(evolve), "--out", str(tmp_path / "ev"))
    assert result.exit_code == 0, result.output
    notes = json.loads((tmp_path / "ev" / "report.json").read_text())["notes"]
    assert any("--curve" in n for n in notes) and any("no episodes" in n for n in notes)


def test_bad_inputs_fail_with_a_message(runs: tuple[Path, Path], tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "nothing"))
    assert result.exit_code == 2 and "not a run directory" in result.output
    bad = tmp_path / "prices.yaml"
    bad.write_text("random: {input_per_mtok: -1, output_per_mtok: 0}\n")
    result = invoke(str(runs[0]), "--prices", str(bad), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "bad price entry" in result.output


def test_eval_runs_of_builtin_suites(tmp_path: Path) -> None:
    """Acceptance: `palaestra eval` of expert and random on heldin-v1 and heldout-v1."""
    from palaestra.eval._run import EvalConfig, evaluate

    dirs: list[Path] = []
    for suite in ("heldin-v1", "heldout-v1"):
        for agent in ("random", "expert"):
            d = tmp_path / f"{agent}-{suite}"
            evaluate(EvalConfig(suite=suite, agent=agent, max_steps=30), d, progress=False)
            dirs.append(d)
    out = tmp_path / "report"
    result = invoke(*map(str, dirs), "--out", str(out), "--n-boot", "200")
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    for label, d, metrics in zip(data["labels"], dirs, data["runs"], strict=True):
        rows = raw_rows(d)
        want = expected(rows)
        assert metrics["suite"] in ("heldin-v1", "heldout-v1")
        assert metrics["overall"]["success"]["value"] == pytest.approx(want["success"])
        assert metrics["overall"]["progress"]["value"] == pytest.approx(want["progress"])
        for env in {r["env"] for r in rows}:
            env_want = expected([r for r in rows if r["env"] == env])
            row = md_row(md, label, env)
            assert f"| {pct(env_want['success'])} [" in row, row
        groups = {r["group"] for r in rows}
        assert set(metrics["by_group"]) == groups
    # Each random run is compared with the expert run of its own suite.
    pairs = {(c["a"], c["b"]) for c in data["comparisons"] if c["scope"] == "overall"}
    assert pairs == {
        ("random-heldin-v1", "expert-heldin-v1"),
        ("random-heldout-v1", "expert-heldout-v1"),
    }
