"""`palaestra runs export`: one row schema for JSONL, Parquet and datasets (issue 14, item 7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from palaestra.cli import app
from palaestra.env import Task
from palaestra.model._core import ChatMessage
from palaestra.trajectory import Episode, ErrorInfo, Run, RunStore, Step, read_jsonl

datasets = pytest.importorskip("datasets")
runner = CliRunner()


def _episode(seed: int, outcome: Any = "success", *, eval_meta: bool = True) -> Episode:
    task = Task(env_id="house-v1", split="test", seed=seed, difficulty="easy", instruction="go")
    meta: dict[str, Any] = (
        {"suite": "heldin-v1", "suite_group": "house", "perturbations": ["distractors"]}
        if eval_meta
        else {}
    )
    return Episode(
        run_id="r",
        task=task,
        agent="react",
        model_id="tiny",
        outcome=outcome,
        score=1.0 if outcome == "success" else 0.0,
        steps=[Step(index=0)],
        # As a rollout stores them: no message carries a train flag.
        messages=[
            ChatMessage(role="system", content="sys"),
            ChatMessage(role="user", content="obs"),
            ChatMessage(role="assistant", content="Action: look"),
        ],
        error=ErrorInfo(type="EnvError", message="down") if outcome == "error" else None,
        metadata=meta,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.write_run(Run(run_id="r", kind="eval", agent="react", model_id="tiny"))
        store.add(_episode(0))
        store.add(_episode(1, "error"))
        store.add(_episode(2, "failure", eval_meta=False))
    return run


def _export(run: Path, fmt: str, out: Path) -> None:
    res = runner.invoke(app, ["runs", "export", str(run), "--format", fmt, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists()


def _rows(fmt: str, path: Path) -> list[dict[str, Any]]:
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    ds = (
        datasets.Dataset.from_parquet(str(path))
        if fmt == "parquet"
        else datasets.load_from_disk(str(path))
    )
    return ds.to_list()


def test_the_three_formats_hold_the_same_rows(run_dir: Path, tmp_path: Path) -> None:
    # Into folders that do not exist yet: the export makes them.
    targets = {
        "jsonl": tmp_path / "new" / "a" / "x.jsonl",
        "parquet": tmp_path / "new" / "b" / "x.parquet",
        "hf": tmp_path / "new" / "c" / "hf",
    }
    rows: dict[str, list[dict[str, Any]]] = {}
    for fmt, path in targets.items():
        _export(run_dir, fmt, path)
        rows[fmt] = _rows(fmt, path)
    assert rows["jsonl"] == rows["parquet"] == rows["hf"]
    by_seed = {r["seed"]: r for r in rows["jsonl"]}
    # Suite, group and perturbations are columns in every format, null outside an eval.
    assert (by_seed[0]["suite"], by_seed[0]["suite_group"]) == ("heldin-v1", "house")
    assert by_seed[0]["perturbations"] == ["distractors"]
    assert (by_seed[2]["suite"], by_seed[2]["perturbations"]) == (None, [])
    assert by_seed[1]["error"] == "EnvError: down" and by_seed[1]["error_source"] == "env"
    assert by_seed[0]["error"] is None
    # train: a bool on assistant turns (loss when trained on), null on the others.
    assert [m["train"] for m in by_seed[0]["messages"]] == [None, None, True]


def test_columns_and_types_are_declared(run_dir: Path, tmp_path: Path) -> None:
    from palaestra.trajectory._export import ROW_COLUMNS

    _export(run_dir, "parquet", tmp_path / "x.parquet")
    ds = datasets.Dataset.from_parquet(str(tmp_path / "x.parquet"))
    assert list(ds.column_names) == list(ROW_COLUMNS)
    # Typed even where a run has no value at all (no message carried a flag in the store).
    assert ds.features["messages"].feature["train"].dtype == "bool"
    assert ds.features["suite"].dtype == "string"
    _export(run_dir, "jsonl", tmp_path / "x.jsonl")
    first = json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0])
    assert list(first) == list(ROW_COLUMNS)


def test_an_all_clean_run_keeps_typed_columns(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore(run) as store:
        store.add(_episode(0, eval_meta=False))
    _export(run, "parquet", tmp_path / "x.parquet")
    ds = datasets.Dataset.from_parquet(str(tmp_path / "x.parquet"))
    assert ds.features["error"].dtype == "string" and ds.features["suite"].dtype == "string"


def test_episodes_format_is_the_full_nested_episode(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "eps.jsonl"
    _export(run_dir, "episodes", out)
    back = list(read_jsonl(out))
    assert len(back) == 3 and all(len(ep.steps) == 1 for ep in back)


def test_default_targets_and_bad_format(run_dir: Path) -> None:
    res = runner.invoke(app, ["runs", "export", str(run_dir)])
    assert res.exit_code == 0 and (run_dir / "rows.jsonl").is_file(), res.output
    res = runner.invoke(app, ["runs", "export", str(run_dir), "--format", "csv"])
    assert res.exit_code == 2 and "jsonl, parquet, hf, episodes" in res.output
