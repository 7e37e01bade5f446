"""How well an outcome reward model's P(success) predicts outcomes: pure Python, no torch.

Accuracy with a Wilson interval and the majority-class baseline beside it (an
ORM no better than always answering the larger class has learnt nothing),
balanced accuracy, precision and recall, AUROC (ranking; ties count half) and
the Brier score (calibration). The ORM itself is ``palaestra.train``'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from palaestra.eval._stats import wilson


class ORMMetrics(BaseModel):
    """How well P(success) predicts the outcome on a set of episodes."""

    n: int = Field(description="Episodes scored.")
    positives: int = Field(description="Episodes that succeeded.")
    threshold: float = Field(description="P(success) >= threshold counts as predicted success.")
    accuracy: float
    accuracy_ci: tuple[float, float] | None = Field(description="95% Wilson interval.")
    majority_baseline: float = Field(description="Accuracy of always answering the larger class.")
    balanced_accuracy: float = Field(description="Mean of recall on successes and on failures.")
    precision: float | None = Field(description="Of predicted successes, real ones (None: none).")
    recall: float | None = Field(description="Of real successes, predicted ones (None: none).")
    auroc: float | None = Field(description="Ranking quality; None when one class is missing.")
    brier: float = Field(description="Mean squared error of P(success) (calibration; 0 is best).")


def orm_metrics(probs: Sequence[float], labels: Sequence[bool], threshold: float) -> ORMMetrics:
    """Accuracy, precision/recall, AUROC (ties count half) and Brier score of ``probs``."""
    if len(probs) != len(labels) or not probs:
        raise ValueError(f"need as many labels as scores, and some: {len(probs)} vs {len(labels)}")
    pred = [p >= threshold for p in probs]
    n, pos = len(labels), sum(labels)
    tp = sum(p and y for p, y in zip(pred, labels, strict=True))
    tn = sum(not p and not y for p, y in zip(pred, labels, strict=True))
    predicted = sum(pred)
    correct = tp + tn
    recalls = [tp / pos] if pos else []
    recalls += [tn / (n - pos)] if n - pos else []
    pos_scores = [p for p, y in zip(probs, labels, strict=True) if y]
    neg_scores = [p for p, y in zip(probs, labels, strict=True) if not y]
    auroc = None
    if pos_scores and neg_scores:
        wins = sum((a > b) + 0.5 * (a == b) for a in pos_scores for b in neg_scores)
        auroc = wins / (len(pos_scores) * len(neg_scores))
    return ORMMetrics(
        n=n,
        positives=pos,
        threshold=threshold,
        accuracy=correct / n,
        accuracy_ci=wilson(correct, n),
        majority_baseline=max(pos, n - pos) / n,
        balanced_accuracy=sum(recalls) / len(recalls),
        precision=tp / predicted if predicted else None,
        recall=tp / pos if pos else None,
        auroc=auroc,
        brier=sum((p - y) ** 2 for p, y in zip(probs, labels, strict=True)) / n,
    )
