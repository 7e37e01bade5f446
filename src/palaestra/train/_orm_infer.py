"""Outcome reward model (ORM), part 3: the classifier, scoring, loading, labelling runs.

:func:`load_orm` gives an :class:`OutcomeRewardModel` whose ``score`` is
P(success) per episode (rendered and truncated as in training, batched by
length); :func:`label_run` writes its labels beside a run
(``orm_labels.jsonl``, :mod:`palaestra.trajectory`'s schema), where
``build_sft(..., reward="orm")`` reads them. See ``_orm_data.py`` for the design.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from palaestra.train._common import on_cuda, resolve_model_path
from palaestra.train._orm_data import ORMConfig, ORMMeta, encode, read_orm_meta, render_episode
from palaestra.trajectory import Episode, ORMLabel, RunStore, write_orm_labels


def load_classifier(path: Path, tokenizer_path: Path) -> tuple[Any, Any]:
    """The checkpoint at ``path`` with a one-logit head (last-token pooling) and a tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dtype = torch.bfloat16 if on_cuda() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
    # Last-token pooling finds the last non-pad token; without a pad id it refuses batches.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def pad(batch: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` and ``attention_mask`` of a batch of token id lists."""
    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def predict(model: Any, pad_id: int, encoded: Sequence[list[int]], batch_size: int) -> list[float]:
    """P(success) per sequence, batched by similar length (less padding), in input order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probs = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in pad([encoded[i] for i in idx], pad_id).items()}
        logits = model(**batch).logits[:, 0].float()
        for i, p in zip(idx, torch.sigmoid(logits).tolist(), strict=True):
            probs[i] = float(p)
    if was_training:
        model.train()
    return probs


class OutcomeRewardModel:
    """A trained ORM: ``score(episodes)`` is P(success) per episode, in batches."""

    def __init__(self, model: Any, tokenizer: Any, meta: ORMMeta, path: Path) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.path = path
        self.config = ORMConfig.model_validate(meta.config)

    def score(self, episodes: Sequence[Episode], batch_size: int | None = None) -> list[float]:
        """P(success) of each episode (rendered and truncated as in training)."""
        cfg = self.config
        encoded = [
            encode(
                self.tokenizer,
                *render_episode(ep, include_thoughts=cfg.include_thoughts),
                cfg.max_length,
                cfg.head_tokens,
            )
            for ep in episodes
        ]
        return predict(
            self.model, int(self.tokenizer.pad_token_id), encoded, batch_size or cfg.eval_batch_size
        )


def load_orm(path: str | Path) -> OutcomeRewardModel:
    """Load an ORM folder written by :func:`train_orm` (LoRA adapters are merged for speed)."""
    folder = Path(path)
    meta = read_orm_meta(folder)
    if meta.method == "full":
        model, tokenizer = load_classifier(folder, folder)
    else:
        base = Path(meta.base_path)
        if not (base / "config.json").is_file():  # moved cache: rebuild from the id
            base = resolve_model_path(meta.base_model)
        from peft import PeftModel

        model, tokenizer = load_classifier(base, folder)
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()  # pyright: ignore[reportUnknownMemberType]
    if on_cuda():  # loaded in bf16 for the GPU: score there, not on the CPU
        model = model.to("cuda")
    model.eval()
    return OutcomeRewardModel(model, tokenizer, meta, folder)


class LabelSummary(BaseModel):
    """What :func:`label_run` wrote."""

    run_dir: str
    path: str = Field(description="The labels file.")
    labelled: int
    predicted_success: int
    errors_skipped: int
    threshold: float


def label_run(
    store_or_path: RunStore | str | Path,
    orm: OutcomeRewardModel | str | Path,
    threshold: float = 0.5,
    batch_size: int | None = None,
) -> LabelSummary:
    """Score every non-error episode of a run and (re)write its ``orm_labels.jsonl`` atomically."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    model = orm if isinstance(orm, OutcomeRewardModel) else load_orm(orm)
    if isinstance(store_or_path, RunStore):
        run_dir, eps = store_or_path.run_dir, list(store_or_path.episodes())
    else:
        run_dir = Path(store_or_path)
        with RunStore(run_dir, readonly=True) as store:
            eps = list(store.episodes())
    scored = [ep for ep in eps if ep.outcome != "error"]
    probs = model.score(scored, batch_size)
    labels = [
        ORMLabel(
            episode_id=ep.episode_id,
            task_id=ep.task.task_id,
            p_success=min(max(p, 0.0), 1.0),
            success=p >= threshold,
            threshold=threshold,
            orm=str(model.path.resolve()),
        )
        for ep, p in zip(scored, probs, strict=True)
    ]
    target = write_orm_labels(run_dir, labels)
    return LabelSummary(
        run_dir=str(run_dir),
        path=str(target),
        labelled=len(labels),
        predicted_success=sum(lab.success for lab in labels),
        errors_skipped=len(eps) - len(scored),
        threshold=threshold,
    )
