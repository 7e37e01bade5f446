"""The tiny pretraining recipe: a real training run on the environments' text.

The corpus itself (deterministic, mistakes and corrections, synthetic copying
documents) is ``palaestra.data``'s: tests/data/test_corpus.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from palaestra.data import pretrain_tiny
from palaestra.model import PretrainConfig
from palaestra.model import load_pretrain_card as load_card


def _small(**kw: object) -> PretrainConfig:
    base: dict[str, object] = {
        "preset": "micro",
        "episodes": 40,
        "max_steps": 12,
        "batch_size": 4,
        "seq_len": 64,
        "learning_rate": 5e-3,
        "logging_steps": 3,
        "family_weights": {"house-v1": 0.5, "toolqa-v1": 0.5},
    }
    base.update(kw)
    return PretrainConfig.model_validate(base)


@pytest.mark.train
def test_pretraining_lowers_the_loss_and_writes_a_card(tmp_path: Path) -> None:
    config = _small()
    folder = pretrain_tiny(config, tmp_path / "pt", progress=False)
    card = load_card(folder)
    assert card.fingerprint == config.fingerprint() and card.steps == 12
    assert card.tokens_seen == 12 * 4 * 64
    assert sum(card.corpus_episodes.values()) == 40
    losses = [loss for _, loss in card.loss_curve]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.5, losses
    from palaestra.model import get_model

    model = get_model(f"hf/{folder}")  # an ordinary HF folder: loads like any checkpoint
    try:
        assert model.count_tokens(" cabinet 1") > 0
    finally:
        model.close()
    with pytest.raises(FileNotFoundError, match=r"pretrain_card\.json"):
        load_card(tmp_path)


def test_a_corpus_too_small_for_one_batch_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"fewer than one batch.*raise episodes"):
        pretrain_tiny(_small(episodes=1, seq_len=4096), tmp_path / "x", progress=False)


@pytest.mark.train
def test_a_stage_continues_from_a_folder(tmp_path: Path) -> None:
    first = pretrain_tiny(_small(), tmp_path / "a", progress=False)
    second = pretrain_tiny(
        _small(init_from=str(first), max_steps=3, logging_steps=3), tmp_path / "b", progress=False
    )
    a, b = load_card(first), load_card(second)
    assert b.tokenizer_from == first.name and b.fingerprint != a.fingerprint
    assert b.loss_curve[0][1] < a.loss_curve[0][1] - 0.5  # it starts where the first ended
    with pytest.raises(ValueError, match="init_from"):
        pretrain_tiny(_small(init_from=str(tmp_path)), tmp_path / "c", progress=False)


def test_documents_are_chat_messages_or_plain_text(tmp_path: Path) -> None:
    from palaestra.data import tiny_path
    from palaestra.model import pretrain_on_documents

    chat = [{"role": "user", "content": "go to cabinet 1"}, {"role": "assistant", "content": "ok"}]
    docs = [("house-v1", chat), ("synthetic", "The mug 1 is in the cabinet 1.")] * 20
    config = _small(max_steps=2, logging_steps=1, seq_len=32)
    folder = pretrain_on_documents(
        config, tmp_path / "d", docs, base=tiny_path("micro"), progress=False
    )
    card = load_card(folder)
    assert card.corpus_episodes == {"house-v1": 20, "synthetic": 20} and card.steps == 2
    with pytest.raises(ValueError, match=r"base: .* is not a model folder"):
        pretrain_on_documents(config, tmp_path / "e", docs, base=tmp_path, progress=False)
