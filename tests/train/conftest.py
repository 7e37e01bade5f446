"""Fixtures for the trainer tests: what a training run did to the model's parameters."""

from __future__ import annotations

from typing import Any

import pytest
from _train_helpers import ParamChange


@pytest.fixture
def param_changes(monkeypatch: pytest.MonkeyPatch) -> list[ParamChange]:
    """One :class:`ParamChange` per ``Trainer.train()`` run during the test (SFT, DPO, ...).

    TRL's own trainer tests check that training moved *every* trainable parameter:
    a frozen layer, a detached head or a LoRA module that gets no gradient passes a
    falling-loss check but not this one. Check with ``every_param_moved``.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    changes: list[ParamChange] = []
    original = transformers.Trainer.train

    def train(self: Any, *args: Any, **kwargs: Any) -> Any:
        model = self.model
        assert model is not None
        before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        result = original(self, *args, **kwargs)
        after = dict(model.named_parameters())
        unchanged = [n for n, p in before.items() if torch.allclose(p, after[n].detach())]
        changes.append(ParamChange(trainable=sorted(before), unchanged=unchanged))
        return result

    monkeypatch.setattr(transformers.Trainer, "train", train)
    return changes
