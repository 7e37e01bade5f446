"""Helpers shared by the trainer tests (imported as a top-level module, like tests/sandbox's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ParamChange:
    """The trainable parameters of one ``Trainer.train()`` call, and those it left as they were."""

    trainable: list[str]
    unchanged: list[str]


def every_param_moved(changes: list[ParamChange]) -> None:
    """Exactly one training run happened and it moved every trainable parameter."""
    assert len(changes) == 1, f"{len(changes)} training runs"
    (change,) = changes
    assert change.trainable, "no trainable parameters"
    assert change.unchanged == [], f"training left these unchanged: {change.unchanged}"
