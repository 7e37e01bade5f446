"""Outcome reward model (ORM): a classifier on the base model that predicts an episode's success.

Follows WebRL (Qi et al., "WebRL: Training LLM Web Agents via Self-Evolving
Online Curriculum Reinforcement Learning", 2024): tasks proposed by the
curriculum have no programmatic checker, so an outcome-supervised reward model
trained on episodes whose outcome is known judges, from the instruction, the
agent's actions and the final state, whether the task was completed; its
binary judgement labels the new rollouts. Here :func:`train_orm` fits it on
run stores (label: ``outcome == "success"``; ``error`` episodes are
infrastructure failures and are never labels), :func:`load_orm` gives an
:class:`OutcomeRewardModel` whose ``score`` is P(success), and
:func:`label_run` writes its labels beside a run, where ``build_sft(...,
reward="orm")`` reads them.

Deviations, and why:

- WebRL's ORM is a generative LLM asked for YES/NO (its judgement compares the
  two tokens' probabilities). We put a one-logit head on the same checkpoint
  (``AutoModelForSequenceClassification``, last-token pooling) and train it
  with binary cross-entropy in a plain ``transformers.Trainer``: the same
  input and a binary answer, without depending on the model having learned to
  answer questions (our ``tiny`` models have not), and with a probability that
  can be calibrated and measured (Brier). TRL's ``RewardTrainer`` is not used:
  it trains on chosen/rejected pairs, and outcome labels are pointwise.
- The input is the whole trajectory as text (instruction, then each action and
  observation), not only the final page. When it is longer than
  ``max_length`` tokens the instruction is kept at the front (up to
  ``head_tokens``) and the *last* tokens of the trajectory fill the rest: the
  end state matters most.
- Classes are balanced by per-example weights (or subsampling), and the
  validation split is by task — an episode's task never appears on both sides —
  so the reported accuracy is on tasks the ORM did not train on.
- Labels live in a sidecar file ``orm_labels.jsonl`` in the run folder, written
  atomically, because the run store is append-only and has no place for
  labels added after the fact.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from palaestra._config import load_config as load_config_file
from palaestra.train._common import (
    METADATA_FILE,
    count_trainable,
    on_cuda,
    resolve_model_path,
    trainer_args,
)
from palaestra.train._config import TrainRunConfig
from palaestra.trajectory import Episode, RunStore

#: The sidecar file of ORM labels in a run folder (one :class:`ORMLabel` per line).
ORM_LABELS_FILE = "orm_labels.jsonl"

Balance = Literal["reweight", "subsample", "none"]


class ORMConfig(TrainRunConfig):
    """Training an outcome reward model: the trainer settings plus input, split and balance."""

    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate.")
    max_length: int = Field(
        default=1024, ge=16, description="Tokens per trajectory (instruction + the last tokens)."
    )
    head_tokens: int = Field(
        default=128, ge=0, description="Instruction tokens always kept at the front."
    )
    include_thoughts: bool = Field(
        default=False, description="Render the agent's thoughts too (else actions only)."
    )
    val_fraction: float = Field(
        default=0.2, gt=0, lt=1, description="Share of tasks held out for validation."
    )
    balance: Balance = Field(
        default="reweight",
        description="reweight (class weights in the loss), subsample (drop majority-class "
        "episodes) or none.",
    )
    threshold: float = Field(
        default=0.5, gt=0, lt=1, description="P(success) at or above which a label is success."
    )
    eval_batch_size: int = Field(default=16, ge=1, description="Episodes per scoring batch.")

    @model_validator(mode="after")
    def _head_fits(self) -> ORMConfig:
        if self.head_tokens > self.max_length // 2:
            raise ValueError(
                f"head_tokens ({self.head_tokens}) must be at most half of max_length "
                f"({self.max_length}); lower head_tokens or raise max_length"
            )
        return self


def load_orm_config(path: str | Path | None = None, **overrides: Any) -> ORMConfig:
    """An :class:`ORMConfig` from an optional YAML file and overrides (``None`` = not given)."""
    return load_config_file(ORMConfig, path, "train orm", overrides)


class ORMMetrics(BaseModel):
    """How well P(success) predicts the outcome on a set of episodes."""

    n: int = Field(description="Episodes scored.")
    positives: int = Field(description="Episodes that succeeded.")
    threshold: float = Field(description="P(success) >= threshold counts as predicted success.")
    accuracy: float
    accuracy_ci: tuple[float, float] | None = Field(description="95% Wilson interval.")
    majority_baseline: float = Field(description="Accuracy of always answering the larger class.")
    balanced_accuracy: float = Field(description="Mean of recall on successes and on failures.")
    precision: float | None = Field(description="Of predicted successes, real ones (None: none).")
    recall: float | None = Field(description="Of real successes, predicted ones (None: none).")
    auroc: float | None = Field(description="Ranking quality; None when one class is missing.")
    brier: float = Field(description="Mean squared error of P(success) (calibration; 0 is best).")


def orm_metrics(probs: Sequence[float], labels: Sequence[bool], threshold: float) -> ORMMetrics:
    """Accuracy, precision/recall, AUROC (ties count half) and Brier score of ``probs``."""
    from palaestra.eval._stats import wilson

    if len(probs) != len(labels) or not probs:
        raise ValueError(f"need as many labels as scores, and some: {len(probs)} vs {len(labels)}")
    pred = [p >= threshold for p in probs]
    n, pos = len(labels), sum(labels)
    tp = sum(p and y for p, y in zip(pred, labels, strict=True))
    tn = sum(not p and not y for p, y in zip(pred, labels, strict=True))
    predicted = sum(pred)
    correct = tp + tn
    recalls = [tp / pos] if pos else []
    recalls += [tn / (n - pos)] if n - pos else []
    pos_scores = [p for p, y in zip(probs, labels, strict=True) if y]
    neg_scores = [p for p, y in zip(probs, labels, strict=True) if not y]
    auroc = None
    if pos_scores and neg_scores:
        wins = sum((a > b) + 0.5 * (a == b) for a in pos_scores for b in neg_scores)
        auroc = wins / (len(pos_scores) * len(neg_scores))
    return ORMMetrics(
        n=n,
        positives=pos,
        threshold=threshold,
        accuracy=correct / n,
        accuracy_ci=wilson(correct, n),
        majority_baseline=max(pos, n - pos) / n,
        balanced_accuracy=sum(recalls) / len(recalls),
        precision=tp / predicted if predicted else None,
        recall=tp / pos if pos else None,
        auroc=auroc,
        brier=sum((p - y) ** 2 for p, y in zip(probs, labels, strict=True)) / n,
    )


class ORMMeta(BaseModel):
    """``palaestra.json`` of an ORM output folder (the SFT/DPO layout, with validation metrics)."""

    kind: Literal["orm"] = "orm"
    base_model: str = Field(description="The model id as given (tiny, gemma-270m, hf/...).")
    base_path: str = Field(description="The base checkpoint folder the weights came from.")
    method: Literal["lora", "full"] = Field(description="Adapter (plus the head) or full weights.")
    sources: list[str] = Field(default_factory=list[str], description="Run folders trained on.")
    counts: dict[str, int] = Field(default_factory=dict[str, int], description="Episodes/tasks.")
    config: dict[str, Any] = Field(description="The ORMConfig.")
    metrics: dict[str, float] = Field(default_factory=dict[str, float], description="Trainer's.")
    log_history: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]])
    train_fit: ORMMetrics = Field(description="Metrics on the training episodes.")
    validation: ORMMetrics = Field(description="Metrics on the held-out tasks' episodes.")
    trainable_params: int = Field(description="Parameters updated by training.")
    wall_seconds: float = Field(description="Training and evaluation time.")


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


# ---- input: trajectories as text ---------------------------------------------------------


@dataclass
class _Example:
    task_id: str
    head: str
    tail: str
    label: bool


def render_episode(ep: Episode, *, include_thoughts: bool = False) -> tuple[str, str]:
    """The ORM's input as ``(head, tail)``: the instruction, then the trajectory to its end state.

    Never the outcome, reward or ``info``: only what the agent saw and did.
    """
    head = f"Instruction: {ep.task.instruction}\n"
    first = next((m.content for m in ep.messages if m.role == "user"), "")
    lines = [f"Start: {first}"] if first else []
    for s in ep.steps:
        if include_thoughts and s.thought:
            lines.append(f"Thought: {s.thought}")
        action = s.action if s.action is not None else f"(unparsed) {s.raw_output.strip()}"
        lines.append(f"Action: {action}")
        lines.append(f"Observation: {s.observation}")
    return head, "\n".join(lines)


def encode(tokenizer: Any, head: str, tail: str, max_length: int, head_tokens: int) -> list[int]:
    """Token ids: at most ``head_tokens`` of ``head``, then the last tokens of ``tail``."""
    h = tokenizer(head, add_special_tokens=True)["input_ids"][:head_tokens]
    t = tokenizer(tail, add_special_tokens=False)["input_ids"]
    room = max_length - len(h)
    if len(t) > room:
        gap = tokenizer("...\n", add_special_tokens=False)["input_ids"]
        t = gap + t[len(t) - room + len(gap) :]
    return list(h) + list(t)


def _examples(
    episodes: Iterable[Episode], include_thoughts: bool, counts: dict[str, int]
) -> list[_Example]:
    out: list[_Example] = []
    for ep in episodes:
        counts["episodes"] += 1
        if ep.outcome == "error":
            counts["errors_skipped"] += 1
            continue
        head, tail = render_episode(ep, include_thoughts=include_thoughts)
        out.append(_Example(ep.task.task_id, head, tail, ep.outcome == "success"))
    return out


def _collect(data: Any, config: ORMConfig) -> tuple[list[_Example], list[str], dict[str, int]]:
    """Examples from run folders, episodes, or a dataset with ``text``/``label``/``task_id``."""
    counts: dict[str, int] = defaultdict(int)
    counts["episodes"] = counts["errors_skipped"] = 0
    if isinstance(data, str | Path):
        data = [data]
    if hasattr(data, "column_names"):  # a datasets.Dataset of rendered rows
        missing = {"text", "label", "task_id"} - set(data.column_names)
        if missing:
            raise ValueError(
                f"ORM dataset lacks column(s) {sorted(missing)}; it has {data.column_names}"
            )
        rows = [_Example(str(r["task_id"]), "", str(r["text"]), bool(r["label"])) for r in data]
        counts["episodes"] = len(rows)
        return rows, ["dataset"], dict(counts)
    items = list(data)
    if items and all(isinstance(x, Episode) for x in items):
        return _examples(items, config.include_thoughts, counts), ["episodes"], dict(counts)
    examples: list[_Example] = []
    sources: list[str] = []
    for d in items:
        if not isinstance(d, str | Path):
            raise TypeError(f"train_orm takes run folders, Episodes or a Dataset, got {type(d)}")
        with RunStore(d, readonly=True) as store:
            examples += _examples(store.episodes(), config.include_thoughts, counts)
        sources.append(str(d))
    return examples, sources, dict(counts)


def split_by_task(
    examples: Sequence[_Example], val_fraction: float, seed: int
) -> tuple[list[_Example], list[_Example]]:
    """Hold out whole tasks, stratified by which outcomes a task has (all-success, mixed, none)."""
    by_task: dict[str, list[_Example]] = defaultdict(list)
    for ex in examples:
        by_task[ex.task_id].append(ex)
    if len(by_task) < 2:
        raise ValueError(
            f"the ORM needs episodes of at least 2 tasks to hold some out; got {len(by_task)}"
        )
    strata: dict[tuple[bool, bool], list[str]] = defaultdict(list)
    for task_id in sorted(by_task):
        labels = {ex.label for ex in by_task[task_id]}
        strata[(True in labels, False in labels)].append(task_id)
    rng = random.Random(f"palaestra-orm-split:{seed}")
    val_tasks: set[str] = set()
    for key in sorted(strata):
        ids = strata[key]
        rng.shuffle(ids)
        val_tasks.update(ids[: round(len(ids) * val_fraction)])
    if not val_tasks:  # tiny strata all rounded to zero
        val_tasks.add(rng.choice(sorted(by_task)))
    if len(val_tasks) == len(by_task):
        val_tasks.discard(sorted(val_tasks)[0])
    train = [ex for t, exs in by_task.items() if t not in val_tasks for ex in exs]
    val = [ex for t, exs in by_task.items() if t in val_tasks for ex in exs]
    return train, val


def _balance(train: list[_Example], how: Balance, seed: int) -> tuple[list[_Example], list[float]]:
    pos = sum(ex.label for ex in train)
    neg = len(train) - pos
    if pos == 0 or neg == 0:
        kind = "failures" if pos == 0 else "successes"
        raise ValueError(
            f"the ORM's training split has only {kind} ({len(train)} episodes): it needs both; add "
            "runs with other outcomes (e.g. an expert and a random agent on the same tasks)"
        )
    if how == "subsample":
        rng = random.Random(f"palaestra-orm-subsample:{seed}")
        keep = min(pos, neg)
        pos_ex = [ex for ex in train if ex.label]
        neg_ex = [ex for ex in train if not ex.label]
        picked = rng.sample(pos_ex, keep) + rng.sample(neg_ex, keep)
        return picked, [1.0] * len(picked)
    if how == "reweight":  # mean weight 1, each class half of the total
        w = {True: len(train) / (2 * pos), False: len(train) / (2 * neg)}
        return train, [w[ex.label] for ex in train]
    return train, [1.0] * len(train)


# ---- model ------------------------------------------------------------------------------


def _load_classifier(path: Path, tokenizer_path: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    dtype = torch.bfloat16 if on_cuda() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
    # Last-token pooling finds the last non-pad token; without a pad id it refuses batches.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _pad(batch: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def _predict(model: Any, pad_id: int, encoded: Sequence[list[int]], batch_size: int) -> list[float]:
    """P(success) per sequence, batched by similar length (less padding), in input order."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    probs = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in _pad([encoded[i] for i in idx], pad_id).items()}
        logits = model(**batch).logits[:, 0].float()
        for i, p in zip(idx, torch.sigmoid(logits).tolist(), strict=True):
            probs[i] = float(p)
    if was_training:
        model.train()
    return probs


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
        batch = _pad([r["input_ids"] for r in rows], pad_id)
        batch["labels"] = torch.tensor([r["label"] for r in rows], dtype=torch.float32)
        batch["weights"] = torch.tensor([r["weight"] for r in rows], dtype=torch.float32)
        return batch

    return collate


# ---- train / load / label ---------------------------------------------------------------


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
    examples, sources, counts = _collect(episodes_or_dataset, cfg)
    train, val = split_by_task(examples, cfg.val_fraction, cfg.seed)
    balanced, weights = _balance(train, cfg.balance, cfg.seed)

    base_path = resolve_model_path(model_id)
    model, tokenizer = _load_classifier(base_path, base_path)
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

    def enc(exs: Sequence[_Example]) -> list[list[int]]:
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
        _predict(trainer.model, pad_id, enc(train), cfg.eval_batch_size),
        [e.label for e in train],
        cfg.threshold,
    )
    validation = orm_metrics(
        _predict(trainer.model, pad_id, enc(val), cfg.eval_batch_size),
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


def read_orm_meta(path: str | Path) -> ORMMeta:
    """The :class:`ORMMeta` of an ORM folder, with a clear error for other folders."""
    f = Path(path) / METADATA_FILE
    if not f.is_file():
        raise FileNotFoundError(
            f"{path} is not an ORM folder (no {METADATA_FILE}); train one with `palaestra train orm`"
        )
    raw = json.loads(f.read_text())
    if raw.get("kind") != "orm":
        raise ValueError(f"{path} holds a {raw.get('kind')!r} model, not an ORM (kind 'orm')")
    return ORMMeta.model_validate(raw)


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
        return _predict(
            self.model, int(self.tokenizer.pad_token_id), encoded, batch_size or cfg.eval_batch_size
        )


def load_orm(path: str | Path) -> OutcomeRewardModel:
    """Load an ORM folder written by :func:`train_orm` (LoRA adapters are merged for speed)."""
    folder = Path(path)
    meta = read_orm_meta(folder)
    if meta.method == "full":
        model, tokenizer = _load_classifier(folder, folder)
    else:
        base = Path(meta.base_path)
        if not (base / "config.json").is_file():  # moved cache: rebuild from the id
            base = resolve_model_path(meta.base_model)
        from peft import PeftModel

        model, tokenizer = _load_classifier(base, folder)
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
    target = run_dir / ORM_LABELS_FILE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        for lab in labels:
            f.write(lab.model_dump_json() + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(target)
    return LabelSummary(
        run_dir=str(run_dir),
        path=str(target),
        labelled=len(labels),
        predicted_success=sum(lab.success for lab in labels),
        errors_skipped=len(eps) - len(scored),
        threshold=threshold,
    )


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
