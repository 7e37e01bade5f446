"""``palaestra report``: one self-contained HTML file, a Markdown summary and JSON for runs.

The report is built once as data (:class:`Report`: every run's
:class:`~palaestra.eval._metrics.RunMetrics` and the paired comparisons of
each later run against its baseline), then rendered as tables (:class:`Section`)
that the HTML page, the Markdown file and the terminal summary share, so the
three always show the same numbers. ``report.json`` is the :class:`Report`
itself. Plots are PNGs embedded as base64 ``data:`` URIs and the CSS is
inline, so the HTML opens anywhere with no network and no other files.

Several runs are compared side by side; each run is paired with its
baseline, the first earlier run of the same suite (else the first sharing
tasks), for deltas and a significance verdict (:mod:`._compare`). With
``curve=True`` the runs are iterations of one training loop, in order, and
the report adds curves over them. A run of kind ``evolve`` (one directory per loop, not built yet) is
reported like any other run, with a note that its curves need ``--curve``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from palaestra.eval import _plots
from palaestra.eval._compare import Comparison, MetricDelta, compare_runs
from palaestra.eval._metrics import Estimate, GroupMetrics, Price, RunMetrics, compute_metrics
from palaestra.eval._safety import (
    SafetyCell,
    SafetyDelta,
    SafetyMetrics,
    compare_safety,
    safety_metrics,
)
from palaestra.trajectory import Episode, RunStore


class Report(BaseModel):
    """Everything a report shows, JSON-serialisable (written as ``report.json``)."""

    generated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    labels: list[str]
    runs: list[RunMetrics]
    comparisons: list[Comparison] = Field(
        default_factory=list[Comparison],
        description="Each later run against its baseline (see _baseline).",
    )
    curve: bool = False
    alpha: float = 0.05
    notes: list[str] = Field(default_factory=list[str])
    safety: list[SafetyMetrics | None] = Field(
        default_factory=list[SafetyMetrics | None],
        description="Per run: safe-v1 / refusal-v1 measures (None: no safety episodes).",
    )
    safety_comparisons: list[tuple[str, str, dict[str, SafetyDelta]]] = Field(
        default_factory=list[tuple[str, str, dict[str, SafetyDelta]]],
        description="(baseline, run, paired safety differences) for runs with safety episodes.",
    )


class Section(BaseModel):
    """One table of the report, rendered the same way in HTML, Markdown and the terminal."""

    key: str
    title: str
    intro: str = ""
    headers: list[str]
    rows: list[list[str]]
    figures: list[str] = Field(
        default_factory=list[str], description="Keys of the figures shown after it."
    )


class ReportFiles(BaseModel):
    html: Path
    markdown: Path
    json_path: Path
    report: Report


# ---- building ---------------------------------------------------------------------------


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    names = [p.resolve().name or str(p) for p in run_dirs]
    return [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]


def build_report(
    run_dirs: Sequence[str | Path],
    *,
    curve: bool = False,
    prices: Mapping[str, Price] | None = None,
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: str = "palaestra",
) -> tuple[Report, list[list[Episode]]]:
    """Compute the report of ``run_dirs`` (read-only); also returns each run's episodes."""
    if not run_dirs:
        raise ValueError("give at least one run directory")
    dirs = [Path(d) for d in run_dirs]
    labels = _labels(dirs)
    runs: list[RunMetrics] = []
    episodes: list[list[Episode]] = []
    notes: list[str] = []
    for d in dirs:
        with RunStore(d, readonly=True) as store:
            run, eps = store.run(), list(store.episodes())
        episodes.append(eps)
        runs.append(
            compute_metrics(
                eps,
                run=run,
                run_dir=d,
                prices=prices,
                confidence=confidence,
                n_boot=n_boot,
                seed=seed,
            )
        )
        if not eps:
            notes.append(f"{d} holds no episodes yet.")
    if not curve and any(r.kind == "evolve" for r in runs):
        notes.append(
            "Evolve runs: curves over iterations need one run directory per iteration, "
            "given in order with --curve."
        )
    if curve and len(runs) < 2:
        notes.append("--curve needs two or more runs (one per iteration); no curve drawn.")
    safety = [
        safety_metrics(eps, confidence=confidence, n_boot=n_boot, seed=seed) for eps in episodes
    ]
    comparisons: list[Comparison] = []
    safety_comparisons: list[tuple[str, str, dict[str, SafetyDelta]]] = []
    for i in range(1, len(runs)):
        base = _baseline(runs, episodes, i)
        if base is None:
            notes.append(f"{labels[i]} shares no tasks with an earlier run: it is a baseline.")
            continue
        if safety[i] is not None and safety[base] is not None:
            deltas = compare_safety(
                episodes[base],
                episodes[i],
                alpha=alpha,
                confidence=confidence,
                n_boot=n_boot,
                seed=seed,
            )
            safety_comparisons.append((labels[base], labels[i], deltas))
        comparisons.extend(
            compare_runs(
                episodes[base],
                episodes[i],
                a_name=labels[base],
                b_name=labels[i],
                alpha=alpha,
                confidence=confidence,
                n_boot=n_boot,
                seed=seed,
            )
        )
    return Report(
        labels=labels,
        runs=runs,
        comparisons=comparisons,
        curve=curve and len(runs) > 1,
        alpha=alpha,
        notes=notes,
        safety=safety,
        safety_comparisons=safety_comparisons,
    ), episodes


def _baseline(
    runs: Sequence[RunMetrics], episodes: Sequence[Sequence[Episode]], i: int
) -> int | None:
    """The run that run ``i`` is compared with: the first earlier run of the same suite,
    else the first earlier run sharing a task (so expert-vs-random reports over two
    suites compare held-in with held-in and held-out with held-out)."""
    tasks = {ep.task.task_id for ep in episodes[i]}
    sharing = [j for j in range(i) if tasks & {ep.task.task_id for ep in episodes[j]}]
    same_suite = [j for j in sharing if runs[i].suite and runs[j].suite == runs[i].suite]
    return (same_suite or sharing or [None])[0]


# ---- formatting -------------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def rate(est: Estimate) -> str:
    """``62.5% [40.0–80.0]``: the value and its bootstrap (else Wilson) interval."""
    if est.value is None:
        return "-"
    iv = est.interval()
    return pct(est.value) + (f" [{100 * iv[0]:.1f}–{100 * iv[1]:.1f}]" if iv else "")


def num(est: Estimate, digits: int = 2) -> str:
    if est.value is None:
        return "-"
    return f"{est.value:.{digits}f}" + (f" ± {est.se:.{digits}f}" if est.se else "")


def _pass_hat_max(g: GroupMetrics) -> str:
    if not g.pass_hat_k:
        return "-"
    k = max(g.pass_hat_k)
    return f"{pct(g.pass_hat_k[k].value)} (k={k})"


def _outcomes(g: GroupMetrics) -> str:
    c = g.counts
    return f"{c.success} / {c.failure} / {c.limit} / {c.error}"


def _p(value: float) -> str:
    return f"p={value:.2g}" if value >= 0.001 else "p<0.001"


# ---- sections ------------------------------------------------------------------------------


def _rows(
    report: Report,
    table: Callable[[RunMetrics], Mapping[str, GroupMetrics]],
    row: Callable[[GroupMetrics], list[str]],
    order: Callable[[list[str]], list[str]] = sorted,
) -> list[list[str]]:
    out: list[list[str]] = []
    for label, run in zip(report.labels, report.runs, strict=True):
        groups = table(run)
        for name in order(list(groups)):
            out.append([label, name, *row(groups[name])])
    return out


def _quality(g: GroupMetrics) -> list[str]:
    return [
        str(g.n_tasks),
        str(g.counts.scored),
        rate(g.success),
        _pass_hat_max(g),
        rate(g.progress),
        num(g.score),
        num(g.steps, 1),
        _outcomes(g),
    ]


_QUALITY = [
    "tasks",
    "scored",
    "success [CI]",
    "pass^k",
    "progress [CI]",
    "score ± SE",
    "steps ± SE",
    "succ / fail / limit / error",
]


def sections(report: Report) -> list[Section]:
    """The report's tables, in reading order."""
    conf = f"{report.runs[0].confidence:.0%}" if report.runs else "95%"
    out = [
        Section(
            key="overall",
            title="Overall",
            intro=(
                f"Success and progress rates over scored episodes, with {conf} task-level "
                "bootstrap intervals in brackets (Wilson intervals where every task scored "
                "alike). Errors are infrastructure failures: excluded from every "
                "rate and counted in the last column; limits count as not-success. pass^k is the "
                "chance that all k epochs of a task succeed (tau-bench)."
            ),
            headers=["run", "scope", *_QUALITY],
            rows=[
                [label, "all", *_quality(r.overall)]
                for label, r in zip(report.labels, report.runs, strict=True)
            ],
        ),
        *([_comparison_section(report, detail=False)] if report.comparisons else []),
        Section(
            key="groups",
            title="Held-in, held-out and perturbed",
            intro="Per suite group (per split for plain rollouts).",
            headers=["run", "group", *_QUALITY],
            rows=_rows(report, lambda r: r.by_group, _quality, _plots.order_groups),
            figures=["groups"],
        ),
        Section(
            key="envs",
            title="By environment",
            headers=["run", "env", *_QUALITY],
            rows=_rows(report, lambda r: r.by_env, _quality),
            figures=["envs"],
        ),
        *([_comparison_section(report, detail=True)] if report.comparisons else []),
        Section(
            key="difficulty",
            title="By difficulty",
            headers=["run", "difficulty", *_QUALITY],
            rows=_rows(report, lambda r: r.by_difficulty, _quality, _difficulty_order),
        ),
        _pass_k_section(report),
        _taxonomy_section(report),
    ]
    tools = _tools_section(report)
    if tools.rows:
        out.append(tools)
    injection = _injection_section(report)
    if injection.rows:
        out.append(injection)
    out.extend(safety_sections(report))
    out.append(_usage_section(report))
    if report.curve:
        out.append(_curve_section(report))
    out.append(
        Section(
            key="runs",
            title="Runs",
            headers=["run", "kind", "model", "agent", "suite", "episodes", "tasks", "directory"],
            rows=[
                [
                    label,
                    r.kind,
                    r.model_id,
                    r.agent,
                    r.suite or "-",
                    str(r.overall.counts.episodes),
                    str(r.overall.n_tasks),
                    r.run_dir or "-",
                ]
                for label, r in zip(report.labels, report.runs, strict=True)
            ],
        )
    )
    return out


def _difficulty_order(names: list[str]) -> list[str]:
    rank = {"easy": 0, "medium": 1, "hard": 2}
    return sorted(names, key=lambda n: (rank.get(n, 3), n))


def _pass_k_section(report: Report) -> Section:
    max_k = max((len(r.overall.pass_at_k) for r in report.runs), default=0)
    ks = list(range(1, max_k + 1))
    rows: list[list[str]] = []
    for label, r in zip(report.labels, report.runs, strict=True):
        g = r.overall
        rows.append(
            [label, "pass@k", *(pct(g.pass_at_k[k].value) if k in g.pass_at_k else "-" for k in ks)]
        )
        rows.append(
            [
                label,
                "pass^k",
                *(pct(g.pass_hat_k[k].value) if k in g.pass_hat_k else "-" for k in ks),
            ]
        )
    return Section(
        key="passk",
        title="pass@k and pass^k over epochs",
        intro=(
            "pass@k: at least one of k epochs succeeds (Chen et al. 2021); pass^k: all k succeed "
            "(tau-bench). Unbiased estimators over each task's scored epochs, averaged over tasks."
        ),
        headers=["run", "metric", *(f"k={k}" for k in ks)],
        rows=rows,
        figures=["passk"],
    )


def _taxonomy_section(report: Report) -> Section:
    def row(g: GroupMetrics) -> list[str]:
        c = g.counts
        limits = ", ".join(f"{k} {v}" for k, v in c.limit_reasons.items())
        errors = ", ".join(f"{k} ×{v}" for k, v in c.error_types.items()) or "-"
        return [
            str(c.episodes),
            str(c.success),
            str(c.failure),
            f"{c.limit} ({limits})" if c.limit else "0",
            f"{c.error} ({errors})" if c.error else "0",
            f"{pct(g.invalid_action_rate.value)} / {c.episodes_with_invalid}",
            f"{pct(g.format_error_rate.value)} / {c.episodes_with_format_error}",
            f"{pct(g.loop_rate.value)} / {c.episodes_with_loop}",
        ]

    return Section(
        key="taxonomy",
        title="Failure taxonomy",
        intro=(
            "Outcome counts with limit reasons and error types; per-step rates of invalid "
            "actions, format errors and repeated actions (loops) / the number of scored "
            "episodes with at least one."
        ),
        headers=[
            "run",
            "env",
            "episodes",
            "success",
            "failure",
            "limit (reasons)",
            "error (types)",
            "invalid / eps",
            "format / eps",
            "loop / eps",
        ],
        rows=_rows(report, lambda r: {**r.by_env, "all": r.overall}, row, _all_last),
        figures=["taxonomy", "steps"],
    )


def _all_last(names: list[str]) -> list[str]:
    rest = sorted(n for n in names if n != "all")
    return [*rest, "all"] if "all" in names and len(rest) > 1 else rest or names


def _tools_section(report: Report) -> Section:
    def row(g: GroupMetrics) -> list[str]:
        t = g.tools
        if t is None:
            return []
        return [
            str(t.episodes),
            num(t.calls, 2),
            "-" if t.optimal is None else f"{t.optimal:.2f}",
            num(t.excess, 2) if t.excess else "-",
            rate(t.overuse_rate) if t.overuse_rate else "-",
        ]

    rows = [r for r in _rows(report, lambda r: r.by_env, row) if len(r) > 2]
    return Section(
        key="tools",
        title="Tool use (SMART overuse)",
        intro="Tool calls per episode; excess = max(0, calls − optimal), overuse = share of episodes calling more than the expert's plan.",
        headers=["run", "env", "episodes", "calls ± SE", "optimal", "excess ± SE", "overuse [CI]"],
        rows=rows,
    )


def _injection_section(report: Report) -> Section:
    rows: list[list[str]] = []
    for label, run in zip(report.labels, report.runs, strict=True):
        scopes = {**run.injection_by_env, **({"all": run.injection} if run.injection else {})}
        for name in _all_last(list(scopes)):
            m = scopes[name]
            rows.append(
                [
                    label,
                    name,
                    f"{m.planted_episodes} / {m.attacked_episodes}",
                    rate(m.utility),
                    rate(m.utility_under_attack),
                    rate(m.attack_success),
                ]
            )
    return Section(
        key="injection",
        title="Prompt injection (AgentDojo)",
        intro="Runs with inject_instruction episodes (injection-v1): utility = success of the "
        "clean twins of the attacked tasks, utility under attack = success with the "
        "instruction planted, attack success = share of attacked episodes that carried out "
        "the attacker's action (an instruction never read counts as a failed attack).",
        headers=[
            "run",
            "env",
            "planted / attacked",
            "utility [CI]",
            "under attack [CI]",
            "attack success [CI]",
        ],
        rows=rows,
    )


def _safety_row(label: str, scope: str, c: SafetyCell) -> list[str]:
    return [
        label,
        scope,
        str(c.episodes),
        str(c.unjudged),
        rate(c.safe),
        rate(c.helpful),
        rate(c.safe_and_helpful),
    ]


def safety_sections(report: Report) -> list[Section]:
    """Safety beside success (safe-v1, refusal-v1): empty when no run has safety episodes."""
    rows: list[list[str]] = []
    refusal: list[list[str]] = []
    for label, m in zip(report.labels, report.safety, strict=False):
        if m is None:
            continue
        rows.append(_safety_row(label, "all", m.overall))
        for scope, cell in (("risky tasks", m.risky), ("benign tasks", m.benign)):
            if cell is not None:
                rows.append(_safety_row(label, scope, cell))
        for prefix, cells in (
            ("env", m.by_env),
            ("category", m.by_category),
            ("failure mode", m.by_failure_mode),
        ):
            rows += [_safety_row(label, f"{prefix}: {k}", c) for k, c in cells.items()]
        if m.refusal is not None:
            r = m.refusal
            refusal.append(
                [
                    label,
                    str(r.harmful),
                    rate(r.refused_harmful) if r.refused_harmful else "-",
                    str(r.benign),
                    rate(r.over_refusal) if r.over_refusal else "-",
                    str(r.unjudged),
                ]
            )
    if not rows:
        return []
    out = [
        Section(
            key="safety",
            title="Safety (Agent-SafetyBench categories)",
            intro="safe = the risk was not realised; helpful = the legitimate request was "
            "done (refusing everything is safe and not helpful); both judged by the "
            "environment's rules. Unjudged episodes ended before any judged step: counted "
            "safe and not helpful. Task-level bootstrap intervals in brackets.",
            headers=[
                "run",
                "scope",
                "episodes",
                "unjudged",
                "safe [CI]",
                "helpful [CI]",
                "safe & helpful [CI]",
            ],
            rows=rows,
        )
    ]
    if refusal:
        out.append(
            Section(
                key="refusal",
                title="Refusal (refusal-v1)",
                intro="Refusal of harmful requests (higher is safer) and over-refusal of "
                "benign look-alikes (lower is more useful), by the rule-based detector.",
                headers=[
                    "run",
                    "harmful",
                    "refused [CI]",
                    "benign",
                    "over-refused [CI]",
                    "unjudged",
                ],
                rows=refusal,
            )
        )
    pairs = [
        [
            f"{b} vs {a}",
            d.metric,
            pct(d.a),
            pct(d.b),
            f"{d.delta:+.0%}",
            f"[{d.ci[0]:+.0%}, {d.ci[1]:+.0%}]" if d.ci else "-",
            _p(d.p_value),
            "yes" if d.significant else "no",
        ]
        for a, b, deltas in report.safety_comparisons
        for d in deltas.values()
    ]
    if pairs:
        out.append(
            Section(
                key="safety-compare",
                title="Safety: paired differences",
                intro="Each run against its baseline on the safety tasks both played; exact "
                f"sign test over tasks (McNemar with one epoch), significant at {report.alpha}.",
                headers=["runs", "measure", "baseline", "run", "delta", "CI", "p", "significant"],
                rows=pairs,
            )
        )
    return out


def _usage_section(report: Report) -> Section:
    def row(g: GroupMetrics) -> list[str]:
        u = g.usage
        if u.cost_usd is not None:
            cost = f"${u.cost_usd:.4f}"
        else:
            cost = f"no price for {', '.join(u.unpriced_models)}" if u.unpriced_models else "-"
        return [
            f"{u.prompt_tokens:,}",
            f"{u.completion_tokens:,}",
            f"{u.mean_prompt_tokens:.0f} / {u.mean_completion_tokens:.0f}",
            f"{u.wall_seconds:.1f}",
            f"{u.mean_wall_seconds:.2f}",
            cost,
        ]

    return Section(
        key="usage",
        title="Tokens, time and cost",
        intro="Over all episodes, errors included (a failed episode still cost).",
        headers=[
            "run",
            "env",
            "tokens in",
            "tokens out",
            "in / out per episode",
            "wall s",
            "wall s / episode",
            "cost",
        ],
        rows=_rows(report, lambda r: {**r.by_env, "all": r.overall}, row, _all_last),
        figures=["tokens"],
    )


def _delta_cells(d: MetricDelta | None, as_pct: bool) -> list[str]:
    if d is None:
        return ["-"] * 5

    def fmt(v: float) -> str:
        return pct(v) if as_pct else f"{v:.3f}"

    sign = "+" if d.delta >= 0 else "−"
    delta = f"{sign}{fmt(abs(d.delta))}"
    ci = f"[{fmt(d.ci[0])}, {fmt(d.ci[1])}]" if d.ci else "-"
    verdict = f"yes ({_p(d.p_value)})" if d.significant else f"no ({_p(d.p_value)})"
    detail = f"{d.test}" + (f", {d.wins}↑ {d.losses}↓" if d.wins is not None else "")
    return [f"{fmt(d.a)} → {fmt(d.b)}", delta, ci, verdict, detail]


def _comparison_section(report: Report, *, detail: bool) -> Section:
    """Overall verdicts (``detail=False``) or the same per environment and group."""
    rows: list[list[str]] = []
    for c in report.comparisons:
        if (c.scope != "overall") is not detail:
            continue
        for metric, as_pct in (("success", True), ("progress", True), ("score", False)):
            d: MetricDelta | None = getattr(c, metric)
            cells = _delta_cells(d, as_pct)
            rows.append([f"{c.b} vs {c.a}", c.scope, metric, f"{c.n_tasks} / {c.n_pairs}", *cells])
    if detail:
        return Section(
            key="compare_detail",
            title="Comparisons by environment and group",
            intro="As above, within each environment and suite group.",
            headers=_COMPARE_HEADERS,
            rows=rows,
        )
    return Section(
        key="compare",
        title="Comparisons",
        intro=(
            "Each run against the first earlier run of the same suite (else the first sharing "
            f"tasks), paired by task and epoch (pairs with an error on either side are dropped). "
            f"Significant at α = {report.alpha}: success by the exact McNemar test (one epoch) "
            "or exact sign test over tasks (several epochs); progress and score by a paired "
            "task-level bootstrap. ↑/↓: tasks where the later run did better/worse."
        ),
        headers=_COMPARE_HEADERS,
        rows=rows,
    )


_COMPARE_HEADERS = [
    "runs",
    "scope",
    "metric",
    "tasks / pairs",
    "baseline → run",
    "delta",
    "CI",
    "significant",
    "test",
]


def _curve_section(report: Report) -> Section:
    groups = _plots.order_groups(sorted({g for r in report.runs for g in r.by_group}))
    rows = [
        [
            str(i),
            label,
            rate(r.overall.success),
            rate(r.overall.progress),
            *(pct(r.by_group[g].success.value) if g in r.by_group else "-" for g in groups),
        ]
        for i, (label, r) in enumerate(zip(report.labels, report.runs, strict=True))
    ]
    return Section(
        key="curve",
        title="Over iterations",
        intro="The runs in the order given, as iterations of one loop.",
        headers=[
            "iteration",
            "run",
            "success [CI]",
            "progress [CI]",
            *(f"success {g}" for g in groups),
        ],
        rows=rows,
        figures=["curve"],
    )


# ---- figures ---------------------------------------------------------------------------------


def figures(report: Report, episodes: Sequence[Sequence[Episode]]) -> dict[str, tuple[str, bytes]]:
    """Figure key -> (caption, PNG). Figures with nothing to draw are left out."""
    runs, labels = report.runs, report.labels
    made: dict[str, tuple[str, bytes | None]] = {
        "groups": (
            "Success and progress by suite group",
            _plots.success_progress(runs, labels, "by_group", "group"),
        ),
        "envs": (
            "Success and progress by environment",
            _plots.success_progress(runs, labels, "by_env", "environment"),
        ),
        "passk": ("pass@k and pass^k", _plots.pass_k(runs, labels)),
        "taxonomy": ("Failure taxonomy", _plots.outcomes(runs, labels)),
        "steps": ("Steps per episode", _plots.steps_histogram(episodes, labels)),
        "tokens": ("Tokens per episode", _plots.tokens(runs, labels)),
    }
    if report.curve:
        made["curve"] = ("Over iterations", _plots.curve(runs, labels))
    return {k: (cap, png) for k, (cap, png) in made.items() if png is not None}
