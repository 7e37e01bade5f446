"""Teacher-forced action accuracy: which turns are scored, and what counts as right."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("transformers")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from palaestra.data import tiny_path
from palaestra.eval import teacher_forced_accuracy

CONV = [
    {"role": "system", "content": "You act."},
    {"role": "user", "content": "You see a cabinet 1."},
    {"role": "assistant", "content": "Action: go to cabinet 2", "train": False},
    {"role": "user", "content": "You arrive at cabinet 2."},
    {"role": "assistant", "content": "Action: go to cabinet 1"},
]


class _Oracle(torch.nn.Module):
    """Predicts the true next token of the one sequence it was built for (or a fixed wrong one)."""

    def __init__(self, ids: list[int], wrong_at: int | None = None) -> None:
        super().__init__()
        self.ids, self.wrong_at = ids, wrong_at
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        n, width = input_ids.shape
        logits = torch.zeros(n, width, 4096)
        for p in range(width - 1):
            nxt = self.ids[p + 1] if p + 1 < len(self.ids) else 0
            if p + 1 == self.wrong_at:
                nxt = (nxt + 1) % 4096
            logits[:, p, nxt] = 1.0
        return type("Out", (), {"logits": logits})()


def test_only_trainable_turns_are_scored_and_every_token_must_match() -> None:
    tok = AutoTokenizer.from_pretrained(tiny_path("micro"))
    ids = tok.apply_chat_template(CONV, tokenize=True, return_dict=True)["input_ids"]
    perfect = teacher_forced_accuracy(_Oracle(list(ids)), tok, [CONV])
    assert perfect.turns == 1 and perfect.turn_accuracy == 1.0 and perfect.token_accuracy == 1.0
    # one wrong token in the scored turn (its end-of-turn token) makes the turn wrong
    wrong = teacher_forced_accuracy(_Oracle(list(ids), wrong_at=len(ids) - 2), tok, [CONV])
    assert wrong.turns_right == 0 and wrong.tokens_right == wrong.tokens - 1
    # a wrong token in the train: false turn is context, not scored
    masked_at = len(tok.apply_chat_template(CONV[:2], tokenize=True, return_dict=True)["input_ids"])
    ctx = teacher_forced_accuracy(_Oracle(list(ids), wrong_at=masked_at + 4), tok, [CONV])
    assert ctx.turn_accuracy == 1.0


def test_a_random_model_is_near_chance_and_errors_are_clear() -> None:
    folder = tiny_path("micro")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    result = teacher_forced_accuracy(model, tok, [CONV, CONV[:3] + CONV[3:]])
    assert result.turns == 2 and result.turn_accuracy == 0.0 and result.token_accuracy < 0.2
    with pytest.raises(ValueError, match="no scored assistant turn"):
        teacher_forced_accuracy(model, tok, [CONV[:4]])
