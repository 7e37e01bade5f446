"""The tiny model's corpora: the tokenizer's text and the pretraining episodes, from the envs."""

from __future__ import annotations

import random
from itertools import islice

from palaestra.data import pretrain_corpus, pretrain_documents, synthetic_doc, tiny_corpus
from palaestra.env import ToyEnv, make, tasks
from palaestra.model import PretrainConfig


def _small(**kw: object) -> PretrainConfig:
    base: dict[str, object] = {
        "preset": "micro",
        "episodes": 40,
        "family_weights": {"house-v1": 0.5, "toolqa-v1": 0.5},
    }
    base.update(kw)
    return PretrainConfig.model_validate(base)


def test_tiny_corpus_excludes_heldout_and_includes_toy_env() -> None:
    text = "\n".join(tiny_corpus())
    assert "Stop on the number" in text and "You are at 0." in text
    assert "Stop on the number -" not in text  # ToyEnv's held-out targets are negative
    shop = make("shop-v1")
    try:
        heldout = tasks("shop-v1", "heldout", n=3)
        assert all(shop.reset(t).text not in text for t in heldout)
    finally:
        shop.close()
    assert ToyEnv.description in text
    assert "Action:" in text  # the agent prompt files and the format words


def test_corpus_is_deterministic_and_holds_mistakes_feedback_and_corrections() -> None:
    config = _small(episodes=60)
    first, again = list(pretrain_corpus(config)), list(pretrain_corpus(config))
    assert first == again
    assert {family for family, _ in first} == {"house-v1", "toolqa-v1"}
    assert list(pretrain_corpus(config.model_copy(update={"seed": 1}))) != first
    text = "\n".join(m["content"] for _, msgs in first for m in msgs)
    assert "Action: " in text and "Your task is to:" in text  # the agent's view, as chat turns
    # Random and noisy episodes bring the environments' feedback on bad actions.
    assert "not carried out" not in text  # no eval-time perturbation leaks in
    roles = [m["role"] for _, msgs in first for m in msgs]
    assert roles.count("assistant") > 100 and roles[0] == "system"


def test_synthetic_documents_can_only_be_predicted_by_copying() -> None:
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


def test_pretrain_documents_interleave_synthetic_text_after_episodes() -> None:
    config = _small(episodes=20, synthetic=0.5)
    docs = list(pretrain_documents(config))
    assert docs == list(pretrain_documents(config))  # deterministic
    kinds = [kind for kind, _ in docs]
    assert kinds[0] != "synthetic" and kinds.count("synthetic") > 3
    assert [d for d in docs if d[0] != "synthetic"] == list(pretrain_corpus(config))
    assert all(isinstance(doc, str) for kind, doc in docs if kind == "synthetic")
    plain = list(islice(pretrain_documents(_small(episodes=5)), 10))
    assert all(kind != "synthetic" for kind, _ in plain)  # synthetic=0: episodes only
