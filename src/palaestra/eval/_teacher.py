"""Teacher-forced action accuracy: does a model predict the expert's next reply, given the history?

A cheap probe of what a policy has learnt, without sampling episodes: every
trainable assistant turn of a conversation (the expert's, or a correction in
refinement data) counts as right when the model's argmax, fed the true prefix,
reproduces every one of its tokens, end-of-turn included. On expert episodes
of *unseen* tasks it measures the rule (copying the right names from the
observation), not memorised episodes; chance is near zero.

Turns are found with the chat template's generation markers
(``return_assistant_tokens_mask``), the same spans training puts loss on, so a
``train: false`` turn in the history is context, never scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from palaestra.model import mask_spans


class TeacherForced(BaseModel):
    """Per-turn exact match and per-token accuracy over the scored assistant turns."""

    turns: int
    turns_right: int
    tokens: int
    tokens_right: int

    @property
    def turn_accuracy(self) -> float:
        return self.turns_right / self.turns if self.turns else 0.0

    @property
    def token_accuracy(self) -> float:
        return self.tokens_right / self.tokens if self.tokens else 0.0


def teacher_forced_accuracy(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Mapping[str, Any]]],
    *,
    batch_size: int = 8,
    max_length: int = 2048,
) -> TeacherForced:
    """Score ``conversations`` (chat messages; ``train: false`` turns are context only).

    ``model`` is a causal LM (``transformers``), ``tokenizer`` its tokenizer with a chat
    template that has generation markers. Conversations longer than ``max_length`` tokens
    are cut there; a turn that does not fit is not scored.
    """
    import torch

    encoded: list[tuple[list[int], list[int]]] = []
    for conv in conversations:
        out = tokenizer.apply_chat_template(
            [dict(m) for m in conv],
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids = list(out["input_ids"])[:max_length]
        mask = list(out["assistant_masks"])[:max_length]
        if len(out["input_ids"]) > max_length and mask and mask[-1]:
            # the last turn was cut: drop it from scoring
            cut = mask_spans(mask)[-1]
            mask[cut[0] : cut[1]] = [0] * (cut[1] - cut[0])
        if not any(mask):
            raise ValueError(
                "no scored assistant turn in a conversation: the chat template has no "
                "{% generation %} markers, or every assistant turn says train: false"
            )
        encoded.append((ids, mask))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    result = TeacherForced(turns=0, turns_right=0, tokens=0, tokens_right=0)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for b in range(0, len(encoded), batch_size):
            chunk = encoded[b : b + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])
            attention = torch.tensor(
                [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]
            )
            with torch.no_grad():
                logits = model(
                    input_ids=input_ids.to(device), attention_mask=attention.to(device)
                ).logits
            predicted = logits.argmax(-1).cpu()
            for row, (ids, mask) in enumerate(chunk):
                for start, end in mask_spans(mask):
                    # position p predicts token p + 1; the first turn token is predicted at start-1
                    hits = [int(predicted[row, p - 1]) == ids[p] for p in range(start, end)]
                    result.turns += 1
                    result.turns_right += all(hits)
                    result.tokens += len(hits)
                    result.tokens_right += sum(hits)
    finally:
        model.train(was_training)
    return result
