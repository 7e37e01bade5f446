"""``sft``: successful trajectories as conversations with loss on the agent's turns only.

Follows AgentTuning (Zeng et al., "AgentTuning: Enabling Generalized Agent
Abilities for LLMs", 2023): keep the trajectories whose reward clears a
threshold (AgentEvol's filter in AgentGym, Xi et al., 2024, keeps reward-1
trajectories for behavioural cloning), train on every agent turn and none of the
observations, and optionally mix in general chat data. AgentTuning reports a
mixture of agent share eta = 0.2 as best; here ``mix_ratio`` is the *general*
share of the final rows (0.8 reproduces theirs). Deviation: each task keeps one
trajectory (the shortest, ties broken by run order) so easy tasks solved many
times do not dominate; pass ``dedup=False`` to keep all.

``reward="orm"`` takes success from an outcome reward model's labels
(``orm_labels.jsonl`` beside each run, written by
:func:`palaestra.train.label_run`) instead of the environment's score: WebRL's
use of an ORM on tasks that have no checker.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from palaestra.data._common import (
    DatasetCard,
    Encoder,
    Message,
    Source,
    conversation_stats,
    load_sources,
    message_dict,
    source_names,
    to_dataset,
    tokenizer_name,
)
from palaestra.data._general import load_general
from palaestra.trajectory import Episode, read_orm_labels

if TYPE_CHECKING:
    from datasets import Dataset


def episode_messages(ep: Episode) -> list[Message]:
    """The episode's conversation with every agent turn trained (unless it said train=False)."""
    return [
        message_dict(m, m.train is not False if m.role == "assistant" else None)
        for m in ep.messages
    ]


def build_sft(
    run_dirs: Iterable[str | Path] | None = None,
    *,
    sources: list[Source] | None = None,
    threshold: float = 1.0,
    dedup: bool = True,
    mix_ratio: float = 0.0,
    general: str | Path | None = None,
    seed: str = "sft",
    tokenizer: Encoder | None = None,
    reward: Literal["env", "orm"] = "env",
) -> tuple[Dataset, DatasetCard]:
    """Successful trajectories (``score >= threshold`` and not an error) of the runs.

    ``mix_ratio`` in [0, 1): the share of general chat rows in the result, drawn
    without replacement from ``general`` (JSONL file or ``datasets`` folder;
    default the shipped generated set) and capped at what it holds.
    ``reward="orm"``: success is the ORM label of each run's ``orm_labels.jsonl``
    (``threshold`` then does not apply; unlabelled episodes are skipped and counted).
    """
    if not 0.0 <= mix_ratio < 1.0:
        raise ValueError(f"mix_ratio must be in [0, 1), got {mix_ratio}")
    if reward not in ("env", "orm"):
        raise ValueError(f"reward must be 'env' or 'orm', got {reward!r}")
    srcs = sources if sources is not None else load_sources(run_dirs or [])
    counts = {"episodes": 0, "successful": 0, "duplicates_dropped": 0}
    orm_success: dict[str, set[str]] = {}
    if reward == "orm":
        counts["unlabelled"] = 0
        for src in srcs:
            labels = read_orm_labels(src.path)
            orm_success[src.path] = {k for k, lab in labels.items() if lab.success}
            counts["unlabelled"] += sum(
                ep.episode_id not in labels and ep.outcome != "error" for ep in src.episodes
            )
    best: dict[str, tuple[Episode, str]] = {}
    kept: list[tuple[Episode, str]] = []
    for src in srcs:
        for ep in src.episodes:
            counts["episodes"] += 1
            if ep.outcome == "error" or not ep.steps:
                continue
            if reward == "orm":
                if ep.episode_id not in orm_success[src.path]:
                    continue
            elif ep.score < threshold:
                continue
            counts["successful"] += 1
            if not dedup:
                kept.append((ep, src.run_id))
                continue
            old = best.get(ep.task.task_id)
            if old is None or ep.n_steps < old[0].n_steps:
                if old is not None:
                    counts["duplicates_dropped"] += 1
                best[ep.task.task_id] = (ep, src.run_id)
            else:
                counts["duplicates_dropped"] += 1
    if dedup:
        kept = list(best.values())
    rows: list[dict[str, Any]] = [
        {
            "messages": episode_messages(ep),
            "task_id": ep.task.task_id,
            "env_id": ep.task.env_id,
            "source": run_id,
            "score": ep.score,
        }
        for ep, run_id in kept
    ]
    counts["agent_rows"] = len(rows)
    n_general = 0
    if mix_ratio > 0 and rows:
        pool = load_general(general)
        want = round(len(rows) * mix_ratio / (1 - mix_ratio))
        n_general = min(want, len(pool))
        rng = random.Random(f"palaestra-sft-mix:{seed}")
        for i in sorted(rng.sample(range(len(pool)), n_general)):
            rows.append(
                {
                    "messages": pool[i],
                    "task_id": f"general/{i}",
                    "env_id": "general",
                    "source": str(general) if general else "palaestra-general",
                    "score": 1.0,
                }
            )
        # interleave so a trainer without shuffling still sees both kinds
        rng.shuffle(rows)
    counts["general_rows"] = n_general
    counts["rows"] = len(rows)
    card = DatasetCard(
        builder="sft",
        sources=source_names(srcs),
        parameters={
            "threshold": threshold,
            "dedup": dedup,
            "mix_ratio": mix_ratio,
            "general": str(general) if general else ("shipped" if mix_ratio else None),
            "seed": seed,
            "reward": reward,
        },
        counts=counts,
        tokens=conversation_stats([r["messages"] for r in rows], tokenizer),
        tokenizer=tokenizer_name(tokenizer),
    )
    return to_dataset(rows), card
