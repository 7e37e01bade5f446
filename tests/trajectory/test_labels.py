"""ORM labels beside a run: schema, atomic write, read, and no torch to read them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from palaestra.trajectory import ORM_LABELS_FILE, ORMLabel, read_orm_labels, write_orm_labels


def _label(i: int, p: float) -> ORMLabel:
    return ORMLabel(
        episode_id=f"e{i}", task_id=f"t{i}", p_success=p, success=p >= 0.5, threshold=0.5, orm="o"
    )


def test_labels_round_trip_and_rewrite_whole(tmp_path: Path) -> None:
    path = write_orm_labels(tmp_path, [_label(1, 0.9), _label(2, 0.1)])
    assert path == tmp_path / ORM_LABELS_FILE
    got = read_orm_labels(tmp_path)
    assert set(got) == {"e1", "e2"} and got["e1"].success and not got["e2"].success
    write_orm_labels(tmp_path, [_label(3, 0.7)])  # a new labelling replaces the old one
    assert set(read_orm_labels(tmp_path)) == {"e3"}
    assert [p.name for p in tmp_path.iterdir()] == [ORM_LABELS_FILE]  # no temp file left


def test_missing_and_corrupt_labels_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="palaestra orm label"):
        read_orm_labels(tmp_path)
    (tmp_path / ORM_LABELS_FILE).write_text(_label(1, 0.9).model_dump_json() + "\n{oops\n")
    with pytest.raises(ValueError, match=rf"{ORM_LABELS_FILE}:2: not an ORM label"):
        read_orm_labels(tmp_path)


def test_reading_labels_needs_no_torch() -> None:
    code = (
        "import sys, palaestra.trajectory, palaestra.data, palaestra.eval; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
