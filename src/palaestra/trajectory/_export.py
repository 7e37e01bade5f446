"""Exports of a run: JSONL (in ``_store``), Parquet, and Hugging Face ``datasets``.

The ``datasets`` form is the conversational format TRL trains on: a
``messages`` column of ``{role, content, train}`` dicts, where ``train`` says
whether an assistant turn carries loss (``None`` for non-assistant turns),
plus one column per episode field used for filtering.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palaestra.trajectory._schema import Episode

if TYPE_CHECKING:
    from datasets import Dataset


def episode_row(ep: Episode) -> dict[str, Any]:
    """One flat row per episode; ``messages`` keeps the per-turn ``train`` flags."""
    return {
        "episode_id": ep.episode_id,
        "run_id": ep.run_id,
        "task_id": ep.task.task_id,
        "env_id": ep.task.env_id,
        "split": ep.task.split,
        "difficulty": ep.task.difficulty,
        "seed": ep.task.seed,
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
        "task": ep.task.model_dump_json(),
        "messages": [{"role": m.role, "content": m.content, "train": m.train} for m in ep.messages],
    }


def to_dataset(episodes: Iterable[Episode]) -> Dataset:
    """A ``datasets.Dataset`` with one row per episode (see :func:`episode_row`)."""
    try:
        from datasets import Dataset
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError('exporting to datasets needs: pip install "palaestra[train]"') from e
    return Dataset.from_list([episode_row(ep) for ep in episodes])


def export_parquet(episodes: Iterable[Episode], path: str | Path) -> int:
    """Write episodes as Parquet (atomically); returns the row count."""
    path = Path(path)
    ds = to_dataset(episodes)
    tmp = path.with_name(path.name + ".tmp")
    ds.to_parquet(str(tmp))
    tmp.replace(path)
    return len(ds)


def export_hf(episodes: Iterable[Episode], path: str | Path) -> int:
    """Save a ``datasets`` folder loadable with ``datasets.load_from_disk``."""
    ds = to_dataset(episodes)
    ds.save_to_disk(str(path))
    return len(ds)
