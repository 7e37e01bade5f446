"""Outcome reward model (ORM), part 1: its config, its folder's metadata and its inputs.

Follows WebRL (Qi et al., "WebRL: Training LLM Web Agents via Self-Evolving
Online Curriculum Reinforcement Learning", 2024): tasks proposed by the
curriculum have no programmatic checker, so an outcome-supervised reward model
trained on episodes whose outcome is known judges, from the instruction, the
agent's actions and the final state, whether the task was completed; its
binary judgement labels the new rollouts. The ORM is three modules:

- this one: :class:`ORMConfig`, :class:`ORMMeta` (``palaestra.json`` of an ORM
  folder), and the training examples — episodes rendered as text
  (:func:`render_episode`), truncated (:func:`encode`), split by task
  (:func:`split_by_task`) and class-balanced (:func:`balance`);
- ``_orm_trainer.py``: the classifier and :func:`train_orm`;
- ``_orm_infer.py``: :func:`load_orm`, scoring, and :func:`label_run`, which
  writes ``orm_labels.jsonl`` (:mod:`palaestra.trajectory`'s label schema).

Label: ``outcome == "success"``; ``error`` episodes are infrastructure failures
and are never labels. Deviations from WebRL in the input, and why:

- The input is the whole trajectory as text (instruction, then each action and
  observation), not only the final page. When it is longer than
  ``max_length`` tokens the instruction is kept at the front (up to
  ``head_tokens``) and the *last* tokens of the trajectory fill the rest: the
  end state matters most.
- Classes are balanced by per-example weights (or subsampling), and the
  validation split is by task — an episode's task never appears on both sides —
  so the reported accuracy is on tasks the ORM did not train on.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from palaestra._config import load_config as load_config_file
from palaestra.eval import ORMMetrics
from palaestra.train._common import METADATA_FILE
from palaestra.train._config import TrainRunConfig
from palaestra.trajectory import Episode, RunStore

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


# ---- input: trajectories as text ---------------------------------------------------------


@dataclass
class ORMExample:
    """One training example: the rendered episode and its label."""

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
) -> list[ORMExample]:
    out: list[ORMExample] = []
    for ep in episodes:
        counts["episodes"] += 1
        if ep.outcome == "error":
            counts["errors_skipped"] += 1
            continue
        head, tail = render_episode(ep, include_thoughts=include_thoughts)
        out.append(ORMExample(ep.task.task_id, head, tail, ep.outcome == "success"))
    return out


def collect_examples(
    data: Any, config: ORMConfig
) -> tuple[list[ORMExample], list[str], dict[str, int]]:
    """Examples, their sources and counts from run folders, episodes, or a dataset.

    A dataset has ``text``, ``label`` and ``task_id`` columns (the text is the tail).
    """
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
        rows = [ORMExample(str(r["task_id"]), "", str(r["text"]), bool(r["label"])) for r in data]
        counts["episodes"] = len(rows)
        return rows, ["dataset"], dict(counts)
    items = list(data)
    if items and all(isinstance(x, Episode) for x in items):
        return _examples(items, config.include_thoughts, counts), ["episodes"], dict(counts)
    examples: list[ORMExample] = []
    sources: list[str] = []
    for d in items:
        if not isinstance(d, str | Path):
            raise TypeError(f"train_orm takes run folders, Episodes or a Dataset, got {type(d)}")
        with RunStore(d, readonly=True) as store:
            examples += _examples(store.episodes(), config.include_thoughts, counts)
        sources.append(str(d))
    return examples, sources, dict(counts)


def split_by_task(
    examples: Sequence[ORMExample], val_fraction: float, seed: int
) -> tuple[list[ORMExample], list[ORMExample]]:
    """Hold out whole tasks, stratified by which outcomes a task has (all-success, mixed, none)."""
    by_task: dict[str, list[ORMExample]] = defaultdict(list)
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


def balance(
    train: list[ORMExample], how: Balance, seed: int
) -> tuple[list[ORMExample], list[float]]:
    """The training rows and their loss weights: ``reweight``, ``subsample`` or ``none``."""
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
