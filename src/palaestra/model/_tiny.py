"""``tiny``: a few-million-parameter Llama with a tokenizer trained on given text.

For tests and the CPU quickstart, a model must exist without downloads and
train in seconds. :func:`build_tiny` builds one locally from a corpus of text:

- a byte-level BPE tokenizer trained with ``tokenizers`` on the corpus, so its
  words are mostly single tokens with their leading space (" cabinet", " 1";
  GPT-2's pre-tokenizer, digits not split one by one: that made every numbered
  name a token longer). Which text that is — the built-in environments' tasks,
  expert episodes and feedback, and the agent prompts — is data about
  environments, built above this layer (``palaestra.data.tiny_corpus``; the
  ``tiny`` model id and ``palaestra.data.tiny_path`` pass it);
- a randomly initialised ``LlamaForCausalLM`` (hidden 256, 4 layers, 4 heads,
  MLP 688, tied embeddings; ~3.7M parameters with the 2048-token
  vocabulary), seeded, so the same seed
  gives the same weights;
- the ChatML template with generation markers from :mod:`._templates`.

The result is saved as an ordinary Hugging Face folder under the user cache
(``$PALAESTRA_CACHE`` or ``~/.cache/palaestra``), named by a hash of the
preset, seed and corpus text, written atomically. It loads as ``hf/<dir>``
as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig as HFGenerationConfig
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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


def build_tiny(
    corpus: Sequence[str], name: str = "", *, seed: int = 0, cache_dir: str | Path | None = None
) -> Path:
    """Build (once) and return the folder of tiny preset ``name``: ``corpus`` trains its tokenizer.

    The folder is named by a hash of the preset, seed and corpus, so the same
    text gives the same cached model and new text a new one.
    ``palaestra.data.tiny_path`` passes Palaestra's own corpus.
    """
    if name not in PRESETS:
        raise ValueError(
            f"unknown tiny preset {name!r}; presets: {[p for p in PRESETS if p]} or ''"
        )
    preset = PRESETS[name]
    corpus = list(corpus)
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


def load_tiny(folder: Path, name: str = "", **kw: Any) -> HFModel:
    """The tiny model in ``folder`` as an :class:`HFModel` with id ``tiny[/name]``."""
    return HFModel.from_pretrained(folder, id="tiny" + (f"/{name}" if name else ""), **kw)
