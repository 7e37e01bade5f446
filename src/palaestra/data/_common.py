"""Shared pieces of the data builders: reading run stores, dataset cards, token statistics.

Every builder returns ``(datasets.Dataset, DatasetCard)``; :func:`save` writes the
dataset with ``save_to_disk`` and the card next to it as ``card.json`` and
``README.md``. Token statistics use a tokenizer when one is given (anything
with ``encode(text) -> list[int]``), else whitespace words, and the card says which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field

from palaestra.env import Perturbation
from palaestra.model import ChatMessage
from palaestra.trajectory import Episode, RunStore

if TYPE_CHECKING:
    from datasets import Dataset

Message = dict[str, Any]


class Encoder(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass
class Source:
    """One run directory's episodes and what is needed to replay them."""

    path: str
    run_id: str
    episodes: list[Episode]
    perturbations: list[Perturbation] = field(default_factory=list[Perturbation])


def load_sources(run_dirs: Iterable[str | Path]) -> list[Source]:
    """Read every episode of each run directory (read-only)."""
    out: list[Source] = []
    for d in run_dirs:
        with RunStore(d, readonly=True) as store:
            run = store.run()
            eps = list(store.episodes())
        config: dict[str, Any] = run.config if run else {}
        out.append(
            Source(
                path=str(d),
                run_id=run.run_id if run else Path(d).name,
                episodes=eps,
                perturbations=list(config.get("perturbations") or []),
            )
        )
    return out


def message_dict(m: ChatMessage, train: bool | None = None) -> Message:
    """A ``{role, content, train}`` row; ``train`` only for assistant turns."""
    return {
        "role": m.role,
        "content": m.content,
        "train": (m.train if train is None else train) if m.role == "assistant" else None,
    }


def msg(role: str, content: str, train: bool | None = None) -> Message:
    return {"role": role, "content": content, "train": train if role == "assistant" else None}


def counter(tokenizer: Encoder | None) -> Callable[[str], int]:
    if tokenizer is None:
        return lambda text: len(text.split())
    return lambda text: len(tokenizer.encode(text))


class TokenStats(BaseModel):
    """Token counts over a dataset (whitespace words when no tokenizer was given)."""

    unit: str = Field(description="'tokens' (with the named tokenizer) or 'words'.")
    total: int = 0
    trained: int = Field(default=0, description="In turns that carry loss (train=True).")
    mean_per_row: float = 0.0
    max_per_row: int = 0


def conversation_stats(
    rows: Sequence[Sequence[Message]], tokenizer: Encoder | None = None
) -> TokenStats:
    """Token statistics of ``messages`` columns."""
    count = counter(tokenizer)
    per_row: list[int] = []
    trained = 0
    for msgs in rows:
        n = 0
        for m in msgs:
            k = count(str(m["content"]))
            n += k
            if m["role"] == "assistant" and m.get("train") is not False:
                trained += k
        per_row.append(n)
    return TokenStats(
        unit="words" if tokenizer is None else "tokens",
        total=sum(per_row),
        trained=trained,
        mean_per_row=sum(per_row) / len(per_row) if per_row else 0.0,
        max_per_row=max(per_row, default=0),
    )


class DatasetCard(BaseModel):
    """What a built dataset is made of: sources, parameters, counts, token statistics."""

    builder: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    sources: list[str] = Field(default_factory=list[str], description="Run directories (run id).")
    parameters: dict[str, Any] = Field(default_factory=dict[str, Any])
    counts: dict[str, int] = Field(default_factory=dict[str, int])
    tokens: TokenStats | None = None
    tokenizer: str | None = None
    notes: str = ""

    def to_markdown(self) -> str:
        lines = [
            f"# palaestra `{self.builder}` dataset",
            "",
            f"Built {self.created_at:%Y-%m-%d %H:%M} UTC by `palaestra.data.{self.builder}`.",
            "",
            "## Sources",
            *[f"- {s}" for s in self.sources],
            "",
            "## Parameters",
            *[f"- `{k}`: {v!r}" for k, v in self.parameters.items()],
            "",
            "## Counts",
            "| what | n |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in self.counts.items()],
        ]
        if self.tokens is not None:
            t = self.tokens
            lines += [
                "",
                f"## Size ({t.unit}{', ' + self.tokenizer if self.tokenizer else ''})",
                f"- total: {t.total}; with loss: {t.trained}",
                f"- per row: mean {t.mean_per_row:.1f}, max {t.max_per_row}",
            ]
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"


def source_names(sources: Sequence[Source]) -> list[str]:
    return [f"{s.path} ({s.run_id})" for s in sources]


def tokenizer_name(tokenizer: Encoder | None) -> str | None:
    if tokenizer is None:
        return None
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def to_dataset(rows: list[dict[str, Any]]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_list(rows)


def save(ds: Dataset, card: DatasetCard, out: str | Path) -> Path:
    """``ds.save_to_disk(out)`` plus ``card.json`` and ``README.md`` in the same folder."""
    out = Path(out)
    ds.save_to_disk(str(out))
    (out / "card.json").write_text(card.model_dump_json(indent=2) + "\n")
    (out / "README.md").write_text(card.to_markdown())
    return out


def load_card(path: str | Path) -> DatasetCard:
    return DatasetCard.model_validate_json((Path(path) / "card.json").read_text())
