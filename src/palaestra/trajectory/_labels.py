"""Labels added to a run after the fact: the outcome reward model's ``orm_labels.jsonl``.

A run store is append-only and has no place for a judgement made later (an
outcome reward model scoring episodes of tasks without a checker), so labels
live in a sidecar JSONL file in the run folder, one :class:`ORMLabel` per
episode, replaced atomically on each labelling. Torch-free: the data builders
read labels (``build_sft(..., reward="orm")``) without the model that wrote them
(``palaestra.train.label_run``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

#: The sidecar file of ORM labels in a run folder (one :class:`ORMLabel` per line).
ORM_LABELS_FILE = "orm_labels.jsonl"


class ORMLabel(BaseModel):
    """One line of ``orm_labels.jsonl``: the ORM's judgement of one episode of the run."""

    model_config = ConfigDict(extra="forbid")

    episode_id: str
    task_id: str
    p_success: float = Field(ge=0, le=1)
    success: bool = Field(description="p_success >= threshold.")
    threshold: float
    orm: str = Field(description="The ORM folder that scored it.")
    labelled_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def write_orm_labels(run_dir: str | Path, labels: Iterable[ORMLabel]) -> Path:
    """(Re)write the run's ``orm_labels.jsonl`` atomically (a reader sees old or new, whole)."""
    target = Path(run_dir) / ORM_LABELS_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        for lab in labels:
            f.write(lab.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(target)
    return target


def read_orm_labels(run_dir: str | Path) -> dict[str, ORMLabel]:
    """The ORM labels of a run by episode id; a clear error when it was never labelled."""
    f = Path(run_dir) / ORM_LABELS_FILE
    if not f.is_file():
        raise FileNotFoundError(
            f"run {run_dir} has no ORM labels ({ORM_LABELS_FILE}); label it first with "
            f"`palaestra orm label {run_dir} --orm ORM_DIR`"
        )
    out: dict[str, ORMLabel] = {}
    for i, line in enumerate(f.read_text().splitlines(), 1):
        if line.strip():
            try:
                lab = ORMLabel.model_validate_json(line)
            except ValueError as e:
                raise ValueError(f"{f}:{i}: not an ORM label: {e}") from e
            out[lab.episode_id] = lab
    return out
