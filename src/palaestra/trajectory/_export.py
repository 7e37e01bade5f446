"""Exports of a run: one flat row per episode, as JSONL, Parquet or a ``datasets`` folder.

The three formats hold the same columns with the same types (:data:`ROW_COLUMNS`,
documented in ``docs/rollouts.md``), so a script written against one reads the
others. The row is the conversational format TRL trains on: a ``messages``
column of ``{role, content, train}`` dicts, plus one column per episode field
used for filtering. ``train`` says whether an assistant turn carries loss when
trained on: ``True`` unless a data builder marked the turn ``False`` (the rule of
:mod:`palaestra.data`), and ``None`` for every other role. Every column has a
declared type, so a column that is empty
in one run (``suite`` outside an evaluation, ``error`` in a clean run) has the
same type as in any other, instead of Arrow's ``null``.

The full-fidelity form, with every step, observation and stored field, is the
nested :class:`Episode` JSONL (``palaestra runs export --format episodes``,
:meth:`RunStore.export_jsonl`, read back by :func:`read_jsonl`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from palaestra.trajectory._schema import Episode

if TYPE_CHECKING:
    from datasets import Dataset, Features

ColumnType = Literal["string", "int64", "float64", "bool", "list[string]", "messages"]

#: The exported row, column by column: its type and what it holds.
ROW_COLUMNS: dict[str, tuple[ColumnType, str]] = {
    "schema_version": ("int64", "Version of the trajectory schema that wrote the episode."),
    "run_id": ("string", "The run's id."),
    "episode_id": ("string", "Unique within a run: task_id#attempt."),
    "task_id": ("string", "Stable id of the task."),
    "env_id": ("string", "Registered environment id, e.g. house-v1."),
    "split": ("string", "train, test or heldout."),
    "difficulty": ("string", "easy, medium or hard."),
    "seed": ("int64", "The task's seed."),
    "instruction": ("string", "The goal, as shown to the agent."),
    "attempt": ("int64", "Attempt index (epochs, pass@k)."),
    "agent": ("string", "Agent name, e.g. react."),
    "model_id": ("string", "Model id ('' for model-free agents)."),
    "outcome": ("string", "success, failure, limit or error."),
    "score": ("float64", "Summed reward (0 for error episodes, which are never scored)."),
    "progress": ("float64", "The environment's progress measure at the end, in [0, 1]."),
    "n_steps": ("int64", "Agent turns."),
    "prompt_tokens": ("int64", "Prompt tokens over the episode."),
    "completion_tokens": ("int64", "Generated tokens over the episode."),
    "wall_seconds": ("float64", "Wall time of the episode."),
    "started_at": ("string", "ISO 8601 UTC start time."),
    "finished_at": ("string", "ISO 8601 UTC end time."),
    "limit_reason": ("string", "For limit: steps, tokens, seconds or env_truncated; else null."),
    "error": ("string", "For error: 'Type: message' of the infrastructure failure; else null."),
    "error_source": ("string", "For error: env, model, sandbox or agent; else null."),
    "suite": ("string", "Evaluation suite id (eval runs; else null)."),
    "suite_group": ("string", "The suite's group of the task (eval runs; else null)."),
    "perturbations": ("list[string]", "Perturbations applied to the task ([] when none)."),
    "task": ("string", "The whole Task as JSON (params included)."),
    "metadata": ("string", "Episode.metadata as JSON (search summaries, reflections, ...)."),
    "messages": (
        "messages",
        "The conversation, system prompt first: [{role, content, train}]; train is a bool "
        "for assistant turns (loss when trained on), null for the others.",
    ),
}


def episode_row(ep: Episode) -> dict[str, Any]:
    """One flat row per episode, with the columns of :data:`ROW_COLUMNS` in that order."""
    meta = ep.metadata
    perturbations = meta.get("perturbations") or []
    row: dict[str, Any] = {
        "schema_version": ep.schema_version,
        "run_id": ep.run_id,
        "episode_id": ep.episode_id,
        "task_id": ep.task.task_id,
        "env_id": ep.task.env_id,
        "split": ep.task.split,
        "difficulty": ep.task.difficulty,
        "seed": ep.task.seed,
        "instruction": ep.task.instruction,
        "attempt": ep.attempt,
        "agent": ep.agent,
        "model_id": ep.model_id,
        "outcome": ep.outcome,
        "score": ep.score,
        "progress": ep.progress,
        "n_steps": ep.n_steps,
        "prompt_tokens": ep.prompt_tokens,
        "completion_tokens": ep.completion_tokens,
        "wall_seconds": ep.wall_seconds,
        "started_at": ep.started_at.isoformat(),
        "finished_at": ep.finished_at.isoformat(),
        "limit_reason": ep.limit_reason,
        "error": f"{ep.error.type}: {ep.error.message}" if ep.error else None,
        "error_source": ep.error.source if ep.error else None,
        "suite": _str_or_none(meta.get("suite")),
        "suite_group": _str_or_none(meta.get("suite_group")),
        "perturbations": [str(p) for p in perturbations],
        "task": ep.task.model_dump_json(),
        "metadata": json.dumps(meta, sort_keys=True, default=str),
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "train": m.train is not False if m.role == "assistant" else None,
            }
            for m in ep.messages
        ],
    }
    return row


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def row_features() -> Features:
    """The ``datasets.Features`` of :data:`ROW_COLUMNS` (needs the ``[train]`` extra)."""
    from datasets import Features, List, Value

    def feature(kind: ColumnType) -> Any:
        if kind == "list[string]":
            return List(Value("string"))
        if kind == "messages":
            return List(
                {"role": Value("string"), "content": Value("string"), "train": Value("bool")}
            )
        return Value(kind)

    return Features({name: feature(kind) for name, (kind, _) in ROW_COLUMNS.items()})


def to_dataset(episodes: Iterable[Episode]) -> Dataset:
    """A ``datasets.Dataset`` with one row per episode (see :func:`episode_row`)."""
    try:
        from datasets import Dataset
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError('exporting to datasets needs: pip install "palaestra[train]"') from e
    return Dataset.from_list([episode_row(ep) for ep in episodes], features=row_features())


def export_rows_jsonl(episodes: Iterable[Episode], path: str | Path) -> int:
    """Write one :func:`episode_row` JSON per line (atomically); returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w") as f:
        for ep in episodes:
            f.write(json.dumps(episode_row(ep), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def export_parquet(episodes: Iterable[Episode], path: str | Path) -> int:
    """Write episodes as Parquet (atomically); returns the row count."""
    path = Path(path)
    ds = to_dataset(episodes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ds.to_parquet(str(tmp))
    tmp.replace(path)
    return len(ds)


def export_hf(episodes: Iterable[Episode], path: str | Path) -> int:
    """Save a ``datasets`` folder loadable with ``datasets.load_from_disk``."""
    ds = to_dataset(episodes)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_to_disk(str(path))
    return len(ds)
