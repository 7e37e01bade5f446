"""Pretraining ``tiny`` on Palaestra's own environment text: a base that can already copy.

Every real agent starts from a pretrained language model; a model trained from
scratch on a few hundred demonstrations cannot copy the object and receptacle
names an observation mentions into its actions (measured, docs/evolve.md). This
recipe gives ``tiny`` that ability the way a real LM gets it — next-token
prediction on a large corpus, loss on every token — with a corpus Palaestra can
generate offline in seconds (``palaestra.data.pretrain_corpus``: data about
environments, built above this layer; this module trains on the text it is given):

- episodes of the built-in families (train split only; held-out vocabulary and
  test seeds are never seen), rendered through the model's chat template exactly
  as an agent would see them (system prompt, observations, actions);
- played by the expert, by a *noisy expert* (a random valid action with
  probability ``noise`` per step, then the expert recovers: so mistakes, the
  environment's feedback and corrections all appear) and by a uniform random
  policy (feedback lines on invalid actions);
- over each family's difficulties and, for ``house-v1``, its view params
  (``contents_visible``, ``target_hint``) and a small-vocabulary variant
  (``objects``). Predicting an observation ("On the countertop 1, you see a
  mug 1") from the room view is the lookup an agent needs;
- optionally interleaved with synthetic copy-and-lookup documents
  (``PretrainConfig.synthetic``, ``palaestra.data.synthetic_doc``).

The text is tokenized, concatenated with end-of-text separators and cut into
fixed-length blocks (run_clm-style), and trained with ``transformers.Trainer``
(cosine schedule, fp32 on CPU). The output is an ordinary Hugging Face folder
with the tokenizer it was trained with and ``pretrain_card.json`` (the recipe,
the corpus, tokens seen, steps, the loss curve, wall time).

Deviation from a real LM's pretraining: the corpus is narrow (the environments'
own language) and contains expert actions, so the result is partly an agent
already; agent SFT on top then teaches the format and the expert's choices.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

log = logging.getLogger("palaestra.model")

#: Bump when the recipe changes in a way the config below cannot see.
PRETRAIN_VERSION = 1
CARD_FILE = "pretrain_card.json"
PretrainPolicy = Literal["expert", "noisy", "random"]


class PretrainConfig(BaseModel):
    """The pretraining recipe (everything that decides the weights)."""

    preset: str = Field(default="", description="tiny size preset ('' or 'micro').")
    init_from: str | None = Field(
        default=None,
        description="Continue from this model folder (its weights and tokenizer) instead of a "
        "freshly initialised tiny: a curriculum of pretraining stages.",
    )
    seed: int = Field(default=0, description="Seeds the initial weights, corpus and data order.")
    episodes: int = Field(default=6000, gt=0, description="Episodes generated for the corpus.")
    family_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "house-v1": 0.6,
            "shop-v1": 0.1,
            "toolqa-v1": 0.1,
            "maze-v1": 0.1,
            "code-v1": 0.1,
        },
        description="Share of episodes per family (built-in families, train split).",
    )
    policy_weights: dict[PretrainPolicy, float] = Field(
        default_factory=lambda: {"expert": 0.45, "noisy": 0.45, "random": 0.1},
        description="Share of episodes per policy.",
    )
    noise: float = Field(
        default=0.2, ge=0, le=1, description="Noisy expert: chance of a random action per step."
    )
    prompts: dict[Literal["act", "compact", "full"], float] = Field(
        default_factory=lambda: {"act": 0.7, "compact": 0.2, "full": 0.1},
        description="Share of episodes per agent prompt style.",
    )
    max_episode_steps: int = Field(default=30, gt=0, description="Steps kept per episode.")
    synthetic: float = Field(
        default=0.0,
        ge=0,
        le=0.99,
        description="Share of corpus documents that are synthetic copy and lookup text in "
        "house-v1's sentence shapes (facts then queries, a room view then where to go, an "
        "action and its echo, a list repeated), with names drawn at random from the train "
        "vocabulary: where only copying predicts the next word.",
    )
    seq_len: int = Field(default=512, gt=16, description="Tokens per training block.")
    batch_size: int = Field(default=16, gt=0, description="Blocks per optimizer step.")
    max_steps: int = Field(default=400, gt=0, description="Optimizer steps.")
    learning_rate: float = Field(default=1e-3, gt=0, description="Peak learning rate (cosine).")
    warmup_ratio: float = Field(
        default=0.05, ge=0, lt=1, description="Share of the steps that warm the learning rate up."
    )
    logging_steps: int = Field(
        default=10, gt=0, description="Steps between logged losses (the card's loss curve)."
    )

    def fingerprint(self) -> str:
        key = {"version": PRETRAIN_VERSION, **self.model_dump(mode="json")}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


class PretrainCard(BaseModel):
    """``pretrain_card.json``: how a pretrained ``tiny`` was made and what it saw."""

    version: int = PRETRAIN_VERSION
    fingerprint: str
    config: PretrainConfig
    tokenizer_from: str = Field(description="The tiny build folder whose tokenizer was used.")
    corpus_episodes: dict[str, int]
    corpus_tokens: int
    blocks: int
    tokens_seen: int
    steps: int
    final_loss: float | None
    loss_curve: list[tuple[int, float]]
    wall_seconds: float
    steps_per_second: float
    tokens_per_second: float


#: One corpus document: its kind (a family id, ``"synthetic"``) and either chat messages
#: (rendered with the model's chat template) or plain text.
Document = tuple[str, list[dict[str, str]] | str]


def pretrain_on_documents(
    config: PretrainConfig,
    out: str | Path,
    documents: Iterable[Document],
    *,
    base: str | Path,
    progress: bool = True,
) -> Path:
    """Train the model folder ``base`` on ``documents``; write it and its card to ``out``.

    ``base`` is a tiny build (``palaestra.data.pretrain_tiny`` passes it, and
    the corpus) or, with ``config.init_from``, the folder to continue from.
    Each document is tokenized, followed by the end-of-text token, and the
    stream is cut into ``config.seq_len`` blocks.
    """
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    from palaestra.model._hf import build_atomically
    from palaestra.model._tiny import EOT

    started = time.perf_counter()
    base = Path(base)
    if not (base / "config.json").is_file():
        what = "init_from" if config.init_from is not None else "base"
        raise ValueError(f"{what}: {base} is not a model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(base)
    eot = int(tokenizer.convert_tokens_to_ids(EOT))
    counts: dict[str, int] = {}
    ids: list[int] = []
    for kind, doc in documents:
        counts[kind] = counts.get(kind, 0) + 1
        text = doc if isinstance(doc, str) else tokenizer.apply_chat_template(doc, tokenize=False)
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [eot]
    n_blocks = len(ids) // config.seq_len
    if n_blocks < config.batch_size:
        raise ValueError(
            f"the corpus gives {n_blocks} blocks of {config.seq_len} tokens, fewer than one "
            f"batch ({config.batch_size}); raise episodes"
        )
    blocks = [ids[i * config.seq_len : (i + 1) * config.seq_len] for i in range(n_blocks)]
    data = Dataset.from_dict({"input_ids": blocks, "labels": blocks})
    log.info(
        "pretrain corpus: %d episodes %s, %d tokens, %d blocks",
        sum(counts.values()),
        counts,
        len(ids),
        n_blocks,
    )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    curve: list[tuple[int, float]] = []

    class _Curve(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                curve.append((int(state.global_step), float(logs["loss"])))

    out = Path(out)
    with build_atomically(out) as tmp:
        args = TrainingArguments(
            output_dir=str(tmp / "_trainer"),
            per_device_train_batch_size=config.batch_size,
            max_steps=config.max_steps,
            learning_rate=config.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio (transformers 5)
            weight_decay=0.0,
            logging_steps=config.logging_steps,
            save_strategy="no",
            report_to=[],
            seed=config.seed,
            data_seed=config.seed,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            disable_tqdm=not progress,
            dataloader_drop_last=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=data,
            data_collator=default_data_collator,
            callbacks=[_Curve()],
        )
        t0 = time.perf_counter()
        trainer.train()
        train_seconds = time.perf_counter() - t0
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        steps = int(trainer.state.global_step)
        card = PretrainCard(
            fingerprint=config.fingerprint(),
            config=config,
            tokenizer_from=base.name,
            corpus_episodes=counts,
            corpus_tokens=len(ids),
            blocks=n_blocks,
            tokens_seen=steps * config.batch_size * config.seq_len,
            steps=steps,
            final_loss=curve[-1][1] if curve else None,
            loss_curve=curve,
            wall_seconds=round(time.perf_counter() - started, 1),
            steps_per_second=round(steps / train_seconds, 3),
            tokens_per_second=round(steps * config.batch_size * config.seq_len / train_seconds),
        )
        (tmp / CARD_FILE).write_text(card.model_dump_json(indent=2))
    return out


def load_pretrain_card(folder: str | Path) -> PretrainCard:
    """The ``pretrain_card.json`` of a pretrained tiny folder."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {CARD_FILE}: not a pretrained tiny folder")
    return PretrainCard.model_validate_json(path.read_text())


# The name before 0.1's move of the corpus to palaestra.data (which has its own load_card).
load_card = load_pretrain_card
