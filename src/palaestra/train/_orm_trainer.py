"""Outcome reward model (ORM), part 2: the weighted-BCE trainer and :func:`train_orm`.

Deviation from WebRL (Qi et al., 2024), and why: WebRL's ORM is a generative
LLM asked for YES/NO (its judgement compares the two tokens' probabilities).
We put a one-logit head on the same checkpoint
(``AutoModelForSequenceClassification``, last-token pooling) and train it with
binary cross-entropy in a plain ``transformers.Trainer``: the same input and a
binary answer, without depending on the model having learned to answer
questions (our ``tiny`` models have not), and with a probability that can be
calibrated and measured (Brier). TRL's ``RewardTrainer`` is not used: it
trains on chosen/rejected pairs, and outcome labels are pointwise. See
``_orm_data.py`` for the inputs, split and balance.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from palaestra.eval import orm_metrics
from palaestra.train._common import (
    METADATA_FILE,
    count_trainable,
    on_cuda,
    resolve_model_path,
    trainer_args,
)
from palaestra.train._orm_data import (
    ORMConfig,
    ORMExample,
    ORMMeta,
    balance,
    collect_examples,
    encode,
    split_by_task,
)
from palaestra.train._orm_infer import load_classifier, pad, predict


def _trainer_class() -> type[Any]:
    from transformers import Trainer

    class WeightedBCETrainer(Trainer):
        """Binary cross-entropy on the one logit, weighted per example (class balance)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Our loss is a per-batch mean: let the Trainer divide by accumulation steps.
            self.model_accepts_loss_kwargs = False

        def compute_loss(  # pyright: ignore[reportIncompatibleMethodOverride]
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            labels = inputs.pop("labels")
            weights = inputs.pop("weights")
            outputs = model(**inputs)
            logits = outputs.logits[:, 0].float()
            per = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, labels, reduction="none"
            )
            loss = (per * weights).sum() / weights.sum()
            return (loss, outputs) if return_outputs else loss

    return WeightedBCETrainer


class _Rows(torch.utils.data.Dataset[dict[str, Any]]):
    def __init__(self, encoded: list[list[int]], labels: list[bool], weights: list[float]) -> None:
        self.rows = [
            {"input_ids": e, "label": float(y), "weight": w}
            for e, y, w in zip(encoded, labels, weights, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _collator(pad_id: int) -> Any:
    def collate(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad([r["input_ids"] for r in rows], pad_id)
        batch["labels"] = torch.tensor([r["label"] for r in rows], dtype=torch.float32)
        batch["weights"] = torch.tensor([r["weight"] for r in rows], dtype=torch.float32)
        return batch

    return collate


def train_orm(
    model_id: str | Path,
    episodes_or_dataset: Any,
    config: ORMConfig | None = None,
    out_dir: str | Path = "orm-out",
) -> ORMMeta:
    """Train an ORM on ``model_id`` (tiny, gemma-270m, hf/<dir>) and write it to ``out_dir``.

    ``episodes_or_dataset``: run folders (one or a list), a list of
    :class:`Episode`, or a ``datasets.Dataset`` with ``text``, ``label`` and
    ``task_id`` columns. The output folder holds the adapter (with the
    classification head) or the full model, the tokenizer and ``palaestra.json``
    (:class:`ORMMeta`, with validation metrics on held-out tasks).
    """
    cfg = config or ORMConfig()
    started = time.perf_counter()
    out = Path(out_dir)
    examples, sources, counts = collect_examples(episodes_or_dataset, cfg)
    train, val = split_by_task(examples, cfg.val_fraction, cfg.seed)
    balanced, weights = balance(train, cfg.balance, cfg.seed)

    base_path = resolve_model_path(model_id)
    model, tokenizer = load_classifier(base_path, base_path)
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        # SEQ_CLS makes PEFT train and save the new head ("score") in full beside the adapter.
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="SEQ_CLS",
        )
        model = get_peft_model(model, lora)

    def enc(exs: Sequence[ORMExample]) -> list[list[int]]:
        return [encode(tokenizer, e.head, e.tail, cfg.max_length, cfg.head_tokens) for e in exs]

    from transformers import TrainingArguments

    args = trainer_args(cfg, out)
    del args["max_length"]  # TRL's; truncation is ours (see encode)
    trainer = _trainer_class()(
        model=model,
        args=TrainingArguments(**args, remove_unused_columns=False),
        train_dataset=_Rows(enc(balanced), [e.label for e in balanced], weights),
        data_collator=_collator(tokenizer.pad_token_id),
    )
    result = trainer.train()

    pad_id = int(tokenizer.pad_token_id)
    train_fit = orm_metrics(
        predict(trainer.model, pad_id, enc(train), cfg.eval_batch_size),
        [e.label for e in train],
        cfg.threshold,
    )
    validation = orm_metrics(
        predict(trainer.model, pad_id, enc(val), cfg.eval_batch_size),
        [e.label for e in val],
        cfg.threshold,
    )
    out.mkdir(parents=True, exist_ok=True)
    saved = trainer.model
    if on_cuda() and cfg.method == "full":
        saved = saved.to(torch.float32)  # a CPU user of the folder should not get bf16
    saved.save_pretrained(out)
    tokenizer.save_pretrained(out)
    counts.update(
        train_episodes=len(train),
        train_rows=len(balanced),
        train_tasks=len({e.task_id for e in train}),
        train_successes=sum(e.label for e in train),
        val_episodes=len(val),
        val_tasks=len({e.task_id for e in val}),
        val_successes=sum(e.label for e in val),
    )
    meta = ORMMeta(
        base_model=str(model_id),
        base_path=str(base_path.resolve()),
        method=cfg.method,
        sources=sources,
        counts=counts,
        config=cfg.model_dump(mode="json"),
        metrics={k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)},
        log_history=list(trainer.state.log_history),
        train_fit=train_fit,
        validation=validation,
        trainable_params=count_trainable(trainer.model),
        wall_seconds=time.perf_counter() - started,
    )
    (out / METADATA_FILE).write_text(meta.model_dump_json(indent=2))
    return meta
