"""The SQLite run store: append-only, idempotent, error replacement, filters, exports."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from palaestra.env import ToyEnv
from palaestra.model import ChatMessage
from palaestra.trajectory import (
    SCHEMA_VERSION,
    Episode,
    ErrorInfo,
    Run,
    RunStore,
    Step,
    StoreError,
    read_jsonl,
    to_dataset,
)


def _episode(
    seed: int, outcome: str = "success", attempt: int = 0, split: str = "train"
) -> Episode:
    task = ToyEnv().make_task(seed, split)  # type: ignore[arg-type]
    return Episode(
        run_id="r",
        task=task,
        attempt=attempt,
        agent="react",
        model_id="scripted",
        outcome=outcome,  # type: ignore[arg-type]
        score=1.0 if outcome == "success" else 0.0,
        steps=[Step(index=0, action="inc", observation="You are at 1.")],
        messages=[
            ChatMessage(role="system", content="sys"),
            ChatMessage(role="user", content=task.instruction),
            ChatMessage(role="assistant", content="Action: inc", train=True),
        ],
        error=ErrorInfo(type="EnvError", message="down") if outcome == "error" else None,
    )


def test_add_is_idempotent_and_ordered(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        assert store.add(_episode(0))
        assert store.add(_episode(1, "failure"))
        assert not store.add(_episode(0, "failure"))  # same id: ignored, first result kept
        assert len(store) == 2
        eps = list(store.episodes())
        assert [e.task.seed for e in eps] == [0, 1] and eps[0].outcome == "success"
        assert store.done() == {e.episode_id for e in eps}


def test_error_episodes_are_replaced_by_a_later_result(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.add(_episode(0, "error"))
        assert store.done() == set() and len(store.done(include_errors=True)) == 1
        assert store.add(_episode(0, "success"))
        assert [e.outcome for e in store.episodes()] == ["success"]


def test_filters_and_summary(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        for i, outcome in enumerate(["success", "failure", "error", "limit"]):
            store.add(_episode(i, outcome, split="test" if i % 2 else "train"))
        assert {e.outcome for e in store.episodes(outcome=["success", "limit"])} == {
            "success",
            "limit",
        }
        assert len(list(store.episodes(split="test"))) == 2
        assert len(list(store.episodes(env_id="toy-v1"))) == 4
        s = store.summary()
        assert s["episodes"] == 4 and s["scored"] == 3 and s["outcomes"]["error"] == 1
        assert s["mean_score"] == pytest.approx(1 / 3)  # the error is excluded, not a 0


def test_run_header_first_write_wins(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        store.write_run(Run(run_id="a", config={"x": 1}))
        store.write_run(Run(run_id="b"))
        run = store.run()
        assert run is not None and run.run_id == "a" and run.config == {"x": 1}


def test_reader_sees_writes_of_a_live_writer(tmp_path: Path) -> None:
    writer = RunStore(tmp_path)
    reader = RunStore(tmp_path, readonly=True)
    writer.add(_episode(0))
    assert len(reader) == 1
    writer.add(_episode(1))
    assert len(list(reader.episodes())) == 2
    writer.close()
    reader.close()


def test_not_a_run_and_wrong_version(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a run directory"):
        RunStore(tmp_path / "nothing", readonly=True)
    with RunStore(tmp_path):
        pass
    con = sqlite3.connect(tmp_path / "run.sqlite")
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=f"schema v999; this Palaestra reads v{SCHEMA_VERSION}"):
        RunStore(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.sqlite").write_text("not a database")
    with pytest.raises(StoreError, match="not a readable run store"):
        RunStore(tmp_path / "junk")


def test_jsonl_round_trip(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run") as store:
        store.add(_episode(0))
        store.add(_episode(1, "failure"))
        assert store.export_jsonl(tmp_path / "eps.jsonl") == 2
    back = list(read_jsonl(tmp_path / "eps.jsonl"))
    assert [e.episode_id for e in back] == [
        e.episode_id for e in RunStore(tmp_path / "run").episodes()
    ]
    (tmp_path / "bad.jsonl").write_text(json.dumps({"no": "episode"}) + "\n")
    with pytest.raises(StoreError, match=r"bad\.jsonl:1"):
        list(read_jsonl(tmp_path / "bad.jsonl"))


def test_dataset_export_keeps_train_flags(tmp_path: Path) -> None:
    ds = to_dataset([_episode(0), _episode(1, "failure")])
    assert ds.num_rows == 2 and ds[0]["outcome"] == "success"
    msgs = ds[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[2]["train"] is True and msgs[0]["train"] is None
    from palaestra.trajectory import export_hf, export_parquet

    assert export_parquet([_episode(0)], tmp_path / "x.parquet") == 1
    import datasets

    assert datasets.Dataset.from_parquet(str(tmp_path / "x.parquet")).num_rows == 1  # type: ignore[union-attr]
    export_hf([_episode(0)], tmp_path / "hf")
    assert datasets.load_from_disk(str(tmp_path / "hf")).num_rows == 1  # type: ignore[union-attr]
