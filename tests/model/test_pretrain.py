"""The tiny pretraining recipe: a deterministic corpus of environment text, a real training run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("transformers")

from palaestra.model._pretrain import PretrainConfig, corpus, load_card, pretrain_tiny


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


def test_corpus_is_deterministic_and_holds_mistakes_feedback_and_corrections() -> None:
    config = _small(episodes=60)
    first, again = list(corpus(config)), list(corpus(config))
    assert first == again
    assert {family for family, _ in first} == {"house-v1", "toolqa-v1"}
    assert list(corpus(config.model_copy(update={"seed": 1}))) != first
    text = "\n".join(m["content"] for _, msgs in first for m in msgs)
    assert "Action: " in text and "Your task is to:" in text  # the agent's view, as chat turns
    # Random and noisy episodes bring the environments' feedback on bad actions.
    assert "not carried out" not in text  # no eval-time perturbation leaks in
    roles = [m["role"] for _, msgs in first for m in msgs]
    assert roles.count("assistant") > 100 and roles[0] == "system"


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


def test_synthetic_documents_can_only_be_predicted_by_copying() -> None:
    import random

    from palaestra.model._pretrain import synthetic_doc

    docs = [synthetic_doc(random.Random(i)) for i in range(40)]
    assert docs == [synthetic_doc(random.Random(i)) for i in range(40)]  # seeded
    text = "\n".join(docs)
    # every shape appears: facts then queries, a view then where to go, echoes, repeats
    for marker in ("Where is the", "Your task is to: find the", "You pick up the", "Again:"):
        assert marker in text
    # a query repeats a fact stated earlier in the same document
    for doc in docs:
        for line in doc.splitlines():
            if line.startswith("Where is the"):
                answer = line.split("? ", 1)[1].split(" Action:")[0]
                assert answer in doc.split(line)[0]


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
