"""The report's figures, drawn with matplotlib's Agg backend and returned as PNG bytes.

Each function takes computed metrics (and, for distributions, the episodes)
and returns one PNG, or None when there is nothing to draw. Error bars are
:meth:`~palaestra.eval._metrics.Estimate.interval`: the task-level bootstrap
interval, or Wilson's where the bootstrap is degenerate.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from palaestra.eval._metrics import Estimate, GroupMetrics, RunMetrics
from palaestra.trajectory import OUTCOMES, Episode

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

OUTCOME_COLORS = {
    "success": "#2e9e5b",
    "failure": "#d1495b",
    "limit": "#edae49",
    "error": "#8c8c8c",
}
RUN_COLORS = ("#3366aa", "#ee8833", "#44aa99", "#aa4499", "#888833", "#66ccee", "#cc6677")
#: Suite groups in reading order; other groups (families, splits) follow alphabetically.
GROUP_ORDER = ("heldin", "train", "test", "heldout", "perturbed")
#: Widest figure, in inches at 100 dpi: the report's column is ~1120 px (``_render``'s
#: ``main``), and a wider PNG is scaled down to fit, shrinking its text below legibility.
MAX_WIDTH = 11.0


def _figure(
    width: float,
    height: float,
    ncols: int = 1,
    ratios: Sequence[float] | None = None,
    nrows: int = 1,
) -> tuple[Figure, list[Axes]]:
    # A bare Figure renders with Agg and never touches pyplot's global backend
    # (a user's notebook keeps its own). Imported here so importing the eval
    # package does not pull matplotlib in.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, MAX_WIDTH), height), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, width_ratios=ratios)
    return fig, [ax for row in axes for ax in row]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # No "Software" metadata: the same data gives the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def order_groups(names: Sequence[str]) -> list[str]:
    known = [g for g in GROUP_ORDER if g in names]
    return known + sorted(n for n in names if n not in GROUP_ORDER)


def _bars(
    ax: Axes,
    labels: Sequence[str],
    cats: Sequence[str],
    tables: Sequence[dict[str, GroupMetrics]],
    metric: str,
    title: str,
) -> None:
    """Grouped bars: one cluster per category holding the runs that have it, with whiskers."""
    slots = max(1, max(sum(cat in t for t in tables) for cat in cats))
    width = 0.8 / slots
    for i, cat in enumerate(cats):
        present = [r for r, t in enumerate(tables) if cat in t]
        for j, r in enumerate(present):
            est: Estimate = getattr(tables[r][cat], metric)
            if est.value is None:
                continue
            x = i + width * (j - (len(present) - 1) / 2)
            iv = est.interval()
            # max(0, .): a percentile interval need not contain a ratio's point estimate.
            err = [[max(0.0, est.value - iv[0])], [max(0.0, iv[1] - est.value)]] if iv else None
            color = RUN_COLORS[r % len(RUN_COLORS)]
            ax.bar(x, est.value, width=width * 0.95, color=color, label=labels[r])
            if err is not None:
                ax.errorbar(x, est.value, yerr=err, fmt="none", ecolor="#222222", capsize=3, lw=1)
    ax.set_xticks(range(len(cats)), list(cats), rotation=20 if len(cats) > 4 else 0)
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def _run_legend(fig: Figure, labels: Sequence[str]) -> None:
    """One legend entry per run (in run order), below the panels."""
    from matplotlib.patches import Patch

    handles = [Patch(color=RUN_COLORS[r % len(RUN_COLORS)]) for r in range(len(labels))]
    fig.legend(
        handles, list(labels), fontsize=8, ncols=min(len(labels), 6), loc="outside lower center"
    )


def success_progress(
    runs: Sequence[RunMetrics], labels: Sequence[str], by: str, title: str
) -> bytes | None:
    """Success and progress rate per environment (``by="by_env"``) or group, runs side by side."""
    tables: list[dict[str, GroupMetrics]] = [getattr(r, by) for r in runs]
    names = sorted({k for t in tables for k in t})
    if not names:
        return None
    cats = order_groups(names) if by == "by_group" else names
    slots = max(sum(cat in t for t in tables) for cat in cats)
    fig, (ax1, ax2) = _figure(max(7.0, 0.9 * len(cats) * slots + 4), 3.4, ncols=2)
    _bars(ax1, labels, cats, tables, "success", f"Success rate by {title}")
    _bars(ax2, labels, cats, tables, "progress", f"Progress rate by {title}")
    if len(runs) > 1:
        _run_legend(fig, labels)
    return _png(fig)


def outcomes(runs: Sequence[RunMetrics], labels: Sequence[str]) -> bytes | None:
    """Failure taxonomy: outcome shares per run and environment, and step-level failure rates."""
    rows: list[tuple[str, GroupMetrics]] = []
    for label, run in zip(labels, runs, strict=True):
        for env, g in run.by_env.items():
            rows.append((f"{label} · {env}" if len(runs) > 1 else env, g))
        if len(run.by_env) > 1:
            rows.append((f"{label} · all" if len(runs) > 1 else "all", run.overall))
    if not rows:
        return None
    height = max(2.4, 0.34 * len(rows) + 1.3)
    fig, (ax1, ax2) = _figure(11, height, ncols=2, ratios=(2, 1))
    names = [name for name, _ in rows][::-1]
    groups = [g for _, g in rows][::-1]
    left = [0.0] * len(rows)
    for outcome in OUTCOMES:
        counts = [getattr(g.counts, outcome) for g in groups]
        shares = [
            c / g.counts.episodes if g.counts.episodes else 0.0
            for c, g in zip(counts, groups, strict=True)
        ]
        ax1.barh(names, shares, left=left, color=OUTCOME_COLORS[outcome], label=outcome)
        for y, (x0, s, c) in enumerate(zip(left, shares, counts, strict=True)):
            if s >= 0.08:
                ax1.text(x0 + s / 2, y, str(c), ha="center", va="center", fontsize=8, color="white")
        left = [a + b for a, b in zip(left, shares, strict=True)]
    ax1.set_xlim(0, 1)
    ax1.set_title("Outcomes (share of episodes; counts inside)")
    kinds = (
        ("invalid_action_rate", "invalid action", "#7b6fd0"),
        ("format_error_rate", "format error", "#d07bb0"),
        ("loop_rate", "repeated action", "#5fa8c9"),
    )
    h = 0.8 / len(kinds)
    for j, (attr, label, color) in enumerate(kinds):
        vals = [getattr(g, attr).value or 0.0 for g in groups]
        ax2.barh(
            [y - 0.4 + h * (j + 0.5) for y in range(len(groups))],
            vals,
            height=h * 0.95,
            color=color,
            label=label,
        )
    ax2.set_yticks(range(len(groups)), [""] * len(groups))
    ax2.set_ylim(ax1.get_ylim())
    ax2.set_xlim(0, 1)
    ax2.set_title("Per-step rates")
    ax2.grid(axis="x", alpha=0.3)
    fig.legend(fontsize=8, ncols=7, loc="outside lower center")
    return _png(fig)


def steps_histogram(episodes: Sequence[Sequence[Episode]], labels: Sequence[str]) -> bytes | None:
    """Steps per episode, stacked by outcome, one panel per run."""
    if not any(episodes):
        return None
    n = len(episodes)
    fig, axes = _figure(4.2 * n, 3.2, ncols=n)
    top = max((ep.n_steps for eps in episodes for ep in eps), default=1)
    # At most ~40 bins: a 100-step maze should not draw 100 bars per outcome.
    width = max(1, -(-(top + 1) // 40))
    bins = [x - 0.5 for x in range(0, top + width + 1, width)]
    for ax, eps, label in zip(axes, episodes, labels, strict=True):
        data = [[ep.n_steps for ep in eps if ep.outcome == o] for o in OUTCOMES]
        ax.hist(
            data,
            bins=bins,
            stacked=True,
            histtype="stepfilled",
            color=[OUTCOME_COLORS[o] for o in OUTCOMES],
            label=list(OUTCOMES),
        )
        ax.set_title(f"Steps per episode: {label}" if n > 1 else "Steps per episode")
        ax.set_xlabel("steps")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("episodes")
    # Below the panels: inside one, the legend sat on the bars it explains.
    handles = dict(zip(*reversed(axes[0].get_legend_handles_labels()), strict=True))
    names = [o for o in OUTCOMES if o in handles]
    fig.legend(
        [handles[o] for o in names], names, fontsize=8, ncols=len(names), loc="outside lower center"
    )
    return _png(fig)


def tokens(runs: Sequence[RunMetrics], labels: Sequence[str]) -> bytes | None:
    """Mean prompt and completion tokens per episode, per environment and run."""
    envs = sorted({e for r in runs for e in r.by_env})
    if not envs or not any(
        r.overall.usage.prompt_tokens + r.overall.usage.completion_tokens for r in runs
    ):
        return None  # agents without a model (expert, random) use no tokens
    bars = len(envs) * len(runs)
    # Side by side while each panel stays legible; beyond that, one above the other at the
    # report's full width (a side-by-side figure grew to 2100 px and was shown shrunk).
    stacked = bars > 8
    if stacked:
        fig, (ax1, ax2) = _figure(max(7.0, 0.45 * bars + 2), 5.6, nrows=2)
    else:
        fig, (ax1, ax2) = _figure(max(7.0, 1.2 * bars + 3), 3.0, ncols=2)
    width = 0.8 / len(runs)
    for r, (label, run) in enumerate(zip(labels, runs, strict=True)):
        xs = [i - 0.4 + width * (r + 0.5) for i in range(len(envs))]
        color = RUN_COLORS[r % len(RUN_COLORS)]
        usage = [run.by_env[e].usage if e in run.by_env else None for e in envs]
        ax1.bar(
            xs,
            [u.mean_prompt_tokens if u else 0 for u in usage],
            width * 0.95,
            color=color,
            label=label,
        )
        ax2.bar(
            xs, [u.mean_completion_tokens if u else 0 for u in usage], width * 0.95, color=color
        )
    slanted = len(envs) > (8 if stacked else 3)
    for ax, title in ((ax1, "Prompt tokens / episode"), (ax2, "Completion tokens / episode")):
        if slanted:
            ax.set_xticks(range(len(envs)), envs, rotation=25, ha="right", fontsize=8)
        else:
            ax.set_xticks(range(len(envs)), envs)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    if len(runs) > 1:
        _run_legend(fig, labels)
    return _png(fig)


def pass_k(runs: Sequence[RunMetrics], labels: Sequence[str]) -> bytes | None:
    """pass@k and pass^k against k, with bootstrap intervals; None with a single epoch."""
    if all(len(r.overall.pass_at_k) < 2 for r in runs):
        return None
    fig, (ax,) = _figure(6, 3.2)
    for r, (label, run) in enumerate(zip(labels, runs, strict=True)):
        color = RUN_COLORS[r % len(RUN_COLORS)]
        for table, style, name in (
            (run.overall.pass_at_k, "-o", "pass@k"),
            (run.overall.pass_hat_k, "--s", "pass^k"),
        ):
            ks = sorted(table)
            vals = [table[k].value or 0.0 for k in ks]
            ax.plot(
                ks, vals, style, color=color, label=f"{label} {name}" if len(runs) > 1 else name
            )
            ivs = [table[k].ci for k in ks]
            if all(iv is not None for iv in ivs):
                ax.fill_between(
                    ks,
                    [iv[0] for iv in ivs if iv],
                    [iv[1] for iv in ivs if iv],
                    color=color,
                    alpha=0.12,
                )
    ax.set_xlabel("k (epochs)")
    max_k = max(len(r.overall.pass_at_k) for r in runs)
    ax.set_xticks(range(1, max_k + 1))
    ax.set_ylim(0, 1.05)
    ax.set_title("pass@k (any of k succeeds) and pass^k (all k succeed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def curve(runs: Sequence[RunMetrics], labels: Sequence[str]) -> bytes | None:
    """Success and progress over iterations (the runs in order), overall and per group."""
    if len(runs) < 2:
        return None
    fig, (ax1, ax2) = _figure(10, 3.2, ncols=2)
    xs = list(range(len(runs)))
    groups = order_groups(sorted({g for r in runs for g in r.by_group}))
    for ax, metric in ((ax1, "success"), (ax2, "progress")):
        series: list[tuple[str, list[Estimate | None]]] = [
            ("overall", [getattr(r.overall, metric) for r in runs])
        ]
        if len(groups) > 1:
            series += [
                (g, [getattr(r.by_group[g], metric) if g in r.by_group else None for r in runs])
                for g in groups
            ]
        for s, (name, ests) in enumerate(series):
            color = "#222222" if s == 0 else RUN_COLORS[(s - 1) % len(RUN_COLORS)]
            pts = [
                (x, e.value, e.interval())
                for x, e in zip(xs, ests, strict=True)
                if e and e.value is not None
            ]
            px = [x for x, _, _ in pts]
            width = 2 if s == 0 else 1.2
            ax.plot(px, [v for _, v, _ in pts], "-o", color=color, label=name, lw=width)
            ivs = [iv for _, _, iv in pts]
            if pts and all(iv is not None for iv in ivs):
                ax.fill_between(
                    px,
                    [iv[0] for iv in ivs if iv],
                    [iv[1] for iv in ivs if iv],
                    color=color,
                    alpha=0.12,
                )
        ax.set_xticks(xs, list(labels), rotation=20 if len(xs) > 4 else 0)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{metric.capitalize()} over iterations")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    return _png(fig)


@dataclass(frozen=True)
class CurvePoint:
    """One point of :func:`panel_curves`: ``value`` in [0, 1] with its interval, at ``x``."""

    panel: str
    series: str
    x: int
    value: float
    low: float
    high: float


def panel_curves(
    points: Sequence[CurvePoint],
    *,
    styles: Mapping[str, tuple[str, str]] | None = None,
    xlabel: str = "iteration",
    ylabel: str = "success rate",
) -> bytes | None:
    """One panel per ``panel`` (in first-seen order), a line with error bars per series.

    ``styles`` maps a series to ``(color, matplotlib fmt)``; others take the run
    colors. A series needs two points in a panel to be drawn; None when no panel has any.
    """
    panels = list(dict.fromkeys(p.panel for p in points))
    series = list(dict.fromkeys(p.series for p in points))
    if not any(
        sum(p.panel == panel and p.series == s for p in points) >= 2
        for panel in panels
        for s in series
    ):
        return None
    fig, axes = _figure(3.2 * len(panels), 3.0, ncols=len(panels))
    xticks = sorted({p.x for p in points})
    for ax, panel in zip(axes, panels, strict=True):
        for i, s in enumerate(series):
            pts = sorted(
                (p for p in points if p.panel == panel and p.series == s), key=lambda p: p.x
            )
            if len(pts) < 2:
                continue
            color, fmt = (styles or {}).get(s, (RUN_COLORS[i % len(RUN_COLORS)], "o-"))
            ys = [p.value for p in pts]
            err = [[p.value - p.low for p in pts], [p.high - p.value for p in pts]]
            ax.errorbar([p.x for p in pts], ys, yerr=err, fmt=fmt, color=color, capsize=3, label=s)
        ax.set_title(panel)
        ax.set_xticks(xticks)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(loc="best", fontsize=8)
    return _png(fig)
