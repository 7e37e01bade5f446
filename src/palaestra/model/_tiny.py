"""``tiny``: a few-million-parameter Llama with a tokenizer trained on Palaestra's own environments.

For tests and the CPU quickstart, a model must exist without downloads and
train in seconds. ``get_model("tiny")`` builds one locally:

- a byte-level BPE tokenizer trained with ``tokenizers`` on text the
  built-in environment families produce (task instructions, first
  observations, expert trajectories, the feedback on a malformed action) plus
  the agent prompt files, so environment words are mostly single tokens
  with their leading space (" cabinet", " 1"; GPT-2's pre-tokenizer, digits
  not split one by one: that made every numbered name a token longer). Held-out tasks are
  left out of the corpus: their vocabulary is meant to be unseen. A family
  that fails to import is skipped, and ToyEnv's text is always included;
- a randomly initialised ``LlamaForCausalLM`` (hidden 256, 4 layers, 4 heads,
  MLP 688, tied embeddings; ~3.7M parameters with the 2048-token
  vocabulary), seeded, so the same seed
  gives the same weights;
- the ChatML template with generation markers from :mod:`._templates`.

The result is saved as an ordinary Hugging Face folder under the user cache
(``$PALAESTRA_CACHE`` or ``~/.cache/palaestra``), named by a hash of the
preset, seed and corpus text, written atomically. It loads as ``hf/<dir>``
as well; :func:`tiny_path` returns the folder for trainers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig as HFGenerationConfig
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from palaestra.env import Split
from palaestra.model._hf import HFModel, build_atomically
from palaestra.model._hf import cache_dir as user_cache_dir
from palaestra.model._templates import CHATML_TEMPLATE

log = logging.getLogger("palaestra.model")

#: Bump when the build recipe changes in a way the hash below cannot see.
BUILD_VERSION = 2

PAD, EOT, IM_START, IM_END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, EOT, IM_START, IM_END]

#: Size presets selectable as ``get_model("tiny/<name>")``.
PRESETS: dict[str, dict[str, int]] = {
    "": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 688,
        "vocab_size": 2048,
    },
    # Faster still, for tests of the machinery around a model.
    "micro": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 172,
        "vocab_size": 1024,
    },
}

# Words of the chat format and of agent replies, whatever the prompts say.
_FORMAT_TEXT = (
    "system user assistant tool\n"
    "Thought: Action: Observation: Answer: Reflection: Plan:\n"
    "0 1 2 3 4 5 6 7 8 9 . , : ; ? ! ( ) [ ] { } < > = + - * / ' \" _\n"
)
_TASKS_PER_SPLIT = 12
# Held-out tasks use vocabulary meant to be unseen, so the tokenizer never sees them.
_SPLITS: tuple[Split, ...] = ("train", "test")


def _episode_text(env_id: str) -> list[str]:
    """Text of one family: descriptions, tasks, expert episodes, a malformed-action reply."""
    from palaestra.env import Observation, make, run_episode, tasks
    from palaestra.env._core import Environment

    texts: list[str] = []

    def recording_expert(env: Environment, obs: Observation) -> str:
        action = env.expert()
        texts.extend([obs.text, action, " ".join(env.available_actions())])
        return action

    env = make(env_id)
    try:
        base = env.unwrapped
        texts += [base.description, base.action_help]
        for split in _SPLITS:
            suite = tasks(env_id, split=split, n=_TASKS_PER_SPLIT)
            for i, task in enumerate(suite):
                texts.append(task.instruction)
                if i == 0:
                    env.reset(task)
                    texts.append(env.step("xyzzy").text)
                run_episode(env, task, recording_expert, max_steps=200)
                if env.last_observation is not None:
                    texts.append(env.last_observation.text)
    finally:
        env.close()
    return texts


def _prompt_files() -> list[str]:
    from importlib.resources import files

    try:
        folder = files("palaestra.agent").joinpath("prompts")
        return [
            f.read_text()
            for f in sorted(folder.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".txt")
        ]
    except Exception as e:  # the agent package may be mid-change; the model still builds
        log.debug("tiny corpus: no agent prompts (%s)", e)
        return []


def build_corpus() -> list[str]:
    """The tokenizer's training text (deterministic for a given Palaestra version)."""
    from palaestra.env import ToyEnv, run_episode
    from palaestra.env._builtin import BUILTIN_FAMILIES
    from palaestra.env._core import Environment, Observation

    # The format words are repeated so that BPE (min. frequency 2) merges them.
    texts = [_FORMAT_TEXT] * 4 + _prompt_files()
    # An explicit list: installed plugins must never change the built-in model.
    for env_id in sorted(BUILTIN_FAMILIES):
        try:
            texts += _episode_text(env_id)
        except Exception as e:  # a family that does not import (yet) must not block the model
            log.warning("tiny corpus: skipping %s (%s: %s)", env_id, type(e).__name__, e)
    toy = ToyEnv()
    toy_texts = [toy.description, toy.action_help]

    def recording(env: Environment, obs: Observation) -> str:
        toy_texts.append(obs.text)
        return env.expert()

    for split in _SPLITS:
        for seed in range(_TASKS_PER_SPLIT):
            task = toy.make_task(seed, split, ("easy", "medium", "hard")[seed % 3])
            run_episode(toy, task, recording)
    texts += toy_texts
    return [t for t in texts if t]


def _train_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        eos_token=IM_END,
        unk_token=None,
        bos_token=None,
        model_max_length=4096,
        chat_template=CHATML_TEMPLATE,
    )


def _build(folder: Path, preset: dict[str, int], seed: int, corpus: list[str]) -> None:
    tokenizer = _train_tokenizer(corpus, preset["vocab_size"])
    ids = {t: int(tokenizer.get_vocab()[t]) for t in SPECIAL_TOKENS}
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset["hidden_size"],
        intermediate_size=preset["intermediate_size"],
        num_hidden_layers=preset["num_hidden_layers"],
        num_attention_heads=preset["num_attention_heads"],
        num_key_value_heads=preset["num_attention_heads"],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=ids[PAD],
        eos_token_id=ids[IM_END],
        bos_token_id=None,
    )
    # Forked so building a model never moves the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = HFGenerationConfig(
        eos_token_id=[ids[IM_END], ids[EOT]], pad_token_id=ids[PAD], do_sample=False
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def tiny_path(name: str = "", *, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Build (once) and return the folder of the tiny model ``name`` (a preset) with ``seed``."""
    if name not in PRESETS:
        raise ValueError(
            f"unknown tiny preset {name!r}; presets: {[p for p in PRESETS if p]} or ''"
        )
    preset = PRESETS[name]
    corpus = build_corpus()
    key: dict[str, Any] = {
        "version": BUILD_VERSION,
        "preset": preset,
        "seed": seed,
        "corpus": hashlib.sha256("\x00".join(corpus).encode()).hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir).expanduser() if cache_dir is not None else user_cache_dir()
    folder = root / f"tiny{'-' + name if name else ''}-{digest}"
    if (folder / "config.json").is_file():
        return folder
    started = time.perf_counter()
    with build_atomically(folder) as tmp:
        _build(tmp, preset, seed, corpus)
    log.info("built tiny model %s in %.1fs", folder, time.perf_counter() - started)
    return folder


def tiny_model(
    name: str = "", *, seed: int = 0, cache_dir: str | Path | None = None, **kw: Any
) -> HFModel:
    """``get_model("tiny")``; ``get_model("tiny/micro")`` for the smaller preset. ``kw`` go to HFModel."""
    folder = tiny_path(name, seed=seed, cache_dir=cache_dir)
    return HFModel.from_pretrained(folder, id="tiny" + (f"/{name}" if name else ""), **kw)
