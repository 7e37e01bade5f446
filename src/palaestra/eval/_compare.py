"""Paired comparison of two runs on the same suite: is run ``b`` better than run ``a``?

Episodes are paired by ``task_id`` and epoch (``Episode.attempt``); a pair
counts only when neither side errored (errors are infrastructure, not the
agent). Success is tested with the exact McNemar test when each task ran one
epoch, and with the exact sign test on per-task success rates when it ran
several (epochs of a task are correlated, so tasks, not episodes, are the
independent units). Progress and score use a paired task-level bootstrap.
Each difference says whether it is significant at ``alpha``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from palaestra.eval._metrics import group_of
from palaestra.eval._stats import binomial_two_sided, paired_bootstrap
from palaestra.trajectory import Episode


class MetricDelta(BaseModel):
    """``b - a`` for one metric over paired tasks, with its test."""

    metric: str
    a: float
    b: float
    delta: float
    ci: tuple[float, float] | None = None
    p_value: float
    test: Literal["mcnemar-exact", "sign-exact", "paired-bootstrap"]
    significant: bool
    wins: int | None = Field(default=None, description="Tasks where b beat a (discordant).")
    losses: int | None = Field(default=None, description="Tasks where a beat b (discordant).")


class Comparison(BaseModel):
    """Run ``b`` against run ``a`` on the tasks both ran."""

    a: str
    b: str
    scope: str = "overall"
    n_tasks: int = Field(description="Tasks with at least one usable pair.")
    n_pairs: int = Field(description="(task, epoch) pairs where neither episode errored.")
    unpaired: int = Field(description="Episodes without a usable partner (missing or error).")
    alpha: float
    success: MetricDelta | None = None
    progress: MetricDelta | None = None
    score: MetricDelta | None = None


def _success(ep: Episode) -> float:
    return float(ep.success)


def _progress(ep: Episode) -> float:
    return ep.progress


def _score(ep: Episode) -> float:
    return ep.score


def _env(ep: Episode) -> str:
    return ep.task.env_id


_METRICS: tuple[tuple[str, Callable[[Episode], float]], ...] = (
    ("success", _success),
    ("progress", _progress),
    ("score", _score),
)


def compare(
    a: Iterable[Episode],
    b: Iterable[Episode],
    *,
    a_name: str = "a",
    b_name: str = "b",
    scope: str = "overall",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: str = "palaestra",
) -> Comparison:
    """Paired comparison of two runs on the same suite (see the module docstring)."""
    a_eps = {ep.episode_id: ep for ep in a}
    b_eps = {ep.episode_id: ep for ep in b}
    pairs: dict[str, list[tuple[Episode, Episode]]] = defaultdict(list)
    for eid, ea in a_eps.items():
        eb = b_eps.get(eid)
        if eb is not None and ea.outcome != "error" and eb.outcome != "error":
            pairs[ea.task.task_id].append((ea, eb))
    n_pairs = sum(len(p) for p in pairs.values())
    out = Comparison(
        a=a_name,
        b=b_name,
        scope=scope,
        n_tasks=len(pairs),
        n_pairs=n_pairs,
        unpaired=len(a_eps) + len(b_eps) - 2 * n_pairs,
        alpha=alpha,
    )
    if not pairs:
        return out
    task_ids = sorted(pairs)
    counts = [float(len(pairs[t])) for t in task_ids]
    key = f"palaestra.eval/compare/{seed}/{scope}"
    deltas: dict[str, MetricDelta] = {}
    for metric, value in _METRICS:
        sa = [sum(value(x) for x, _ in pairs[t]) for t in task_ids]
        sb = [sum(value(y) for _, y in pairs[t]) for t in task_ids]
        diffs = [y - x for x, y in zip(sa, sb, strict=True)]
        delta, ci, p_boot = paired_bootstrap(diffs, counts, n_boot, f"{key}/{metric}", confidence)
        ma, mb = sum(sa) / n_pairs, sum(sb) / n_pairs
        if metric != "success":
            deltas[metric] = MetricDelta(
                metric=metric,
                a=ma,
                b=mb,
                delta=delta,
                ci=ci,
                p_value=p_boot,
                test="paired-bootstrap",
                significant=p_boot < alpha,
            )
            continue
        # A task is a win for b when its success rate over the paired epochs is higher.
        wins = sum(dt > 0 for dt in diffs)
        losses = sum(dt < 0 for dt in diffs)
        p = binomial_two_sided(wins, losses)
        one_epoch = all(c == 1 for c in counts)
        deltas[metric] = MetricDelta(
            metric=metric,
            a=ma,
            b=mb,
            delta=delta,
            ci=ci,
            p_value=p,
            test="mcnemar-exact" if one_epoch else "sign-exact",
            significant=p < alpha,
            wins=wins,
            losses=losses,
        )
    return out.model_copy(update=deltas)


def compare_runs(
    a: Sequence[Episode],
    b: Sequence[Episode],
    *,
    a_name: str = "a",
    b_name: str = "b",
    **kwargs: Any,
) -> list[Comparison]:
    """:func:`compare` overall, then per environment and per group, on the shared episodes."""
    out = [compare(a, b, a_name=a_name, b_name=b_name, **kwargs)]
    keys: tuple[tuple[str, Callable[[Episode], str]], ...] = (("env", _env), ("group", group_of))
    for prefix, key in keys:
        for value in sorted({key(ep) for ep in a} & {key(ep) for ep in b}):
            out.append(
                compare(
                    [ep for ep in a if key(ep) == value],
                    [ep for ep in b if key(ep) == value],
                    a_name=a_name,
                    b_name=b_name,
                    scope=f"{prefix}:{value}",
                    **kwargs,
                )
            )
    return out
