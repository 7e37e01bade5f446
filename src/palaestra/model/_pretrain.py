"""Pretraining ``tiny`` on Palaestra's own environment text: a base that can already copy.

Every real agent starts from a pretrained language model; a model trained from
scratch on a few hundred demonstrations cannot copy the object and receptacle
names an observation mentions into its actions (measured, docs/evolve.md). This
recipe gives ``tiny`` that ability the way a real LM gets it — next-token
prediction on a large corpus, loss on every token — with a corpus Palaestra can
generate offline in seconds:

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
  mug 1") from the room view is the lookup an agent needs.

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
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

from palaestra.env import Difficulty, Environment, make
from palaestra.model._hf import build_atomically

log = logging.getLogger("palaestra.model")

#: Bump when the recipe changes in a way the config below cannot see.
PRETRAIN_VERSION = 1
CARD_FILE = "pretrain_card.json"
Policy = Literal["expert", "noisy", "random"]


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
    policy_weights: dict[Policy, float] = Field(
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
    batch_size: int = Field(default=16, gt=0)
    max_steps: int = Field(default=400, gt=0, description="Optimizer steps.")
    learning_rate: float = Field(default=1e-3, gt=0)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    logging_steps: int = Field(default=10, gt=0)

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


def _house_params(rng: random.Random) -> dict[str, JsonValue]:
    params: dict[str, JsonValue] = {}
    if rng.random() < 0.6:
        params["contents_visible"] = True
    if rng.random() < 0.4:
        params["target_hint"] = True
    if rng.random() < 0.4:
        params["objects"] = 12
    if rng.random() < 0.5:
        params["task_type"] = "pick"
    return params


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    keys = [k for k, w in weights.items() if w > 0]
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _episode_messages(
    env: Environment, task: Any, policy: Policy, prompt: str, config: PretrainConfig, seed: str
) -> list[dict[str, str]]:
    from palaestra.agent import ReactAgent
    from palaestra.agent._react import format_error_feedback

    rng = random.Random(seed)
    first = env.reset(task)
    system = ReactAgent(prompt=prompt).system_prompt(env, task)  # type: ignore[arg-type]
    messages = [{"role": "system", "content": system}, {"role": "user", "content": first.text}]
    for _ in range(config.max_episode_steps):
        actions = env.available_actions()
        if policy == "random" or (policy == "noisy" and rng.random() < config.noise):
            if policy == "random" and rng.random() < 0.05:
                reply, action = "I am not sure.", None  # a malformed reply and its feedback
            else:
                action = rng.choice(actions) if actions else "look"
                reply = f"Action: {action}"
        else:
            action = env.expert()
            reply = f"Action: {action}"
        if prompt != "act" and action is not None:
            reply = f"Thought: I will {action}.\n{reply}"
        messages.append({"role": "assistant", "content": reply})
        if action is None:
            messages.append({"role": "user", "content": format_error_feedback(prompt, "no Action")})
            continue
        obs = env.step(action)
        messages.append({"role": "user", "content": obs.text})
        if obs.done:
            break
    return messages


def synthetic_doc(rng: random.Random) -> str:
    """One synthetic document: lines where the next name can only be copied from context.

    Copying (induction) forms late from natural text (after billions of tokens in
    real LMs); text whose names are random makes copying the only way to lower the
    loss, so the circuit forms in hundreds of steps. The shapes are house-v1's own.
    """
    from palaestra.env.families._house_world import TRAIN

    objects = [k.name for k in TRAIN.objects.values()]
    recs = TRAIN.receptacles

    def obj() -> str:
        return f"{rng.choice(objects)} {rng.randint(1, 3)}"

    def rec() -> tuple[str, str]:
        kind = rng.choice(list(recs))
        return f"{kind} {rng.randint(1, 3)}", recs[kind].prep

    lines: list[str] = []
    kind = rng.randrange(4)
    for _ in range(rng.randint(2, 4)):
        if kind == 0:  # facts, then queries that repeat them
            facts = [(obj(), *rec()) for _ in range(rng.randint(3, 7))]
            lines += [f"The {o} is {p} the {r}." for o, r, p in facts]
            for o, r, p in rng.sample(facts, min(3, len(facts))):
                lines.append(f"Where is the {o}? The {o} is {p} the {r}. Action: go to {r}")
        elif kind == 1:  # a room view, then where to go for one of its objects
            view: list[tuple[str, str, list[str]]] = []
            for _ in range(rng.randint(3, 6)):
                r, p = rec()
                view.append((r, p, [obj() for _ in range(rng.randint(1, 3))]))
            lines.append(
                " ".join(
                    f"{p.capitalize()} the {r}, you see {', '.join('a ' + o for o in os)}."
                    for r, p, os in view
                )
            )
            for r, _, os in rng.sample(view, min(2, len(view))):
                o = rng.choice(os)
                lines.append(f"Your task is to: find the {o}. Action: go to {r}")
                lines.append(f"Action: take {o} from {r}")
        elif kind == 2:  # an action and the observation that echoes it
            o, (r, _), (r2, p2) = obj(), rec(), rec()
            lines.append(f"Action: take {o} from {r}\nYou pick up the {o} from the {r}.")
            lines.append(f"Action: go to {r2}\nYou arrive at {r2}.")
            lines.append(f"Action: put {o} {p2} {r2}\nYou put the {o} {p2} the {r2}.")
        else:  # a list, repeated
            items = ", ".join(f"a {obj()}" for _ in range(rng.randint(4, 10)))
            lines.append(f"You see {items}. Again: you see {items}.")
    return "\n".join(lines)


def corpus(config: PretrainConfig) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The corpus as (family, chat messages) pairs, deterministic for a config."""
    rng = random.Random(f"pretrain:{config.seed}")
    envs: dict[str, Environment] = {}
    difficulties: tuple[Difficulty, ...] = ("easy", "medium", "hard")
    try:
        for i in range(config.episodes):
            family = _pick(rng, config.family_weights)
            env = envs.get(family) or envs.setdefault(family, make(family))
            params = _house_params(rng) if family == "house-v1" else {}
            difficulty = rng.choices(difficulties, weights=[0.5, 0.3, 0.2])[0]
            # Seeds far from the ones demos and curricula draw (0, 1, 2...): a different
            # sample of the same train distribution.
            task = env.unwrapped.make_task(1_000_000 + i, "train", difficulty, **params)  # type: ignore[attr-defined]
            policy: Policy = _pick(rng, config.policy_weights)
            prompt = _pick(rng, config.prompts)
            seed = f"{config.seed}:{i}"
            yield family, _episode_messages(env, task, policy, prompt, config, seed)
    finally:
        for env in envs.values():
            env.close()


def pretrain_tiny(config: PretrainConfig, out: str | Path, *, progress: bool = True) -> Path:
    """Run the recipe; write the model, its tokenizer and ``pretrain_card.json`` to ``out``."""
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

    from palaestra.model._tiny import EOT, tiny_path

    started = time.perf_counter()
    if config.init_from is not None:
        base = Path(config.init_from)
        if not (base / "config.json").is_file():
            raise ValueError(f"init_from: {base} is not a model folder (no config.json)")
    else:
        base = tiny_path(config.preset, seed=config.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    eot = int(tokenizer.convert_tokens_to_ids(EOT))
    counts: dict[str, int] = {}
    ids: list[int] = []
    synth_rng = random.Random(f"synthetic:{config.seed}")
    for family, messages in corpus(config):
        counts[family] = counts.get(family, 0) + 1
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [eot]
        # Interleaved, so copying is learnt together with the environments' language.
        while synth_rng.random() < config.synthetic:
            counts["synthetic"] = counts.get("synthetic", 0) + 1
            ids += tokenizer(synthetic_doc(synth_rng), add_special_tokens=False)["input_ids"]
            ids.append(eot)
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


def load_card(folder: str | Path) -> PretrainCard:
    """The ``pretrain_card.json`` of a pretrained tiny folder."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no {CARD_FILE}: not a pretrained tiny folder")
    return PretrainCard.model_validate_json(path.read_text())
