"""The evolve report: success per suite group over iterations, improving (or rl) arm vs control.

``report/evolve.md`` and ``report/evolve.html`` (one self-contained file with
the curves), ``report/summary.json``, and the full evaluation report of the
base model and the last iteration's arms in ``report/detail/`` (the same
report ``palaestra report`` writes: every metric, paired tests, taxonomy).

Intervals are Wilson 95% intervals over episodes; the improving-vs-control
comparison pairs the two arms task by task on the same suite (McNemar's exact
test, :func:`palaestra.eval.compare`). With an ``rl:`` section the improving arm is the
``rl`` arm: the report adds what its RL steps did (steps, episodes, reward, success
while training) and each iteration's training budget per arm (optimizer steps and
tokens: the control is matched to the rl arm's SFT + RL steps).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from palaestra.eval import (
    CurvePoint,
    Section,
    compare,
    compute_metrics,
    group_of,
    html_page,
    markdown_page,
    panel_curves,
    safety_metrics,
    write_report,
)
from palaestra.evolve._config import EvolveConfig

_GROUP_ORDER = ("heldin", "recovery", "perturbed", "heldout")
_ARM_STYLES = {
    "improve": ("tab:blue", "o-"),
    "rl": ("tab:orange", "^-"),
    "control": ("tab:gray", "s--"),
}
#: How the report names an arm in a title.
_ARM_TITLES = {"improve": "improving arm", "rl": "rl arm"}


def _order(groups: set[str]) -> list[str]:
    known = [g for g in _GROUP_ORDER if g in groups]
    return known + sorted(groups - set(known))


def _cell(est: Any) -> str:
    if est is None or est.value is None:
        return "-"
    lo, hi = est.wilson or est.ci or (est.value, est.value)
    return f"{est.value:.0%} [{lo:.0%}, {hi:.0%}]"


def _curves_png(rows: list[dict[str, Any]], groups: list[str]) -> bytes | None:
    """Success per group over iterations, one line per arm; the base starts both arms."""
    base = next((r for r in rows if r["arm"] == "base"), None)
    points: list[CurvePoint] = []
    for arm in _ARM_STYLES:
        for r in ([base] if base else []) + [r for r in rows if r["arm"] == arm]:
            for g in groups:
                if g in r["groups"]:
                    c = r["groups"][g]
                    points.append(
                        CurvePoint(g, arm, int(r["iteration"]), c["value"], c["low"], c["high"])
                    )
    return panel_curves(points, styles=_ARM_STYLES)


def write_evolve_report(
    config: EvolveConfig,
    models: Sequence[Any],
    folder: Path,
    *,
    console: Console | None = None,
) -> tuple[Path, Path]:
    """Write the report of an evolve run's evaluated ``models``; returns (html, markdown)."""
    console = console or Console()
    folder.mkdir(parents=True, exist_ok=True)
    episodes = {m.label: _episodes(m.eval_dir) for m in models}
    rows = [_model_row(m, episodes[m.label]) for m in models]
    groups = _order({g for r in rows for g in r["groups"]})
    base_row = next((r for r in rows if r["arm"] == "base"), None)
    base_heldin = base_row["groups"].get("heldin", {}).get("value") if base_row else None
    weak = base_check(base_heldin, config.base_floor) if base_row is not None else None
    last = max((m.iteration for m in models), default=0)
    arms = [m for m in models if m.iteration == last and m.arm in _ARM_TITLES]
    ctl = next((m for m in models if m.iteration == last and m.arm == "control"), None)
    comparisons = [c for m in arms for c in _arm_comparisons(episodes, m, ctl, groups)]
    safety = _safety_rows(models) if config.safety else []
    rl = _rl_rows(models)
    budget = _budget_rows(models) if rl else []

    png = (_curves_png(rows, groups) if rows and groups else None) or b""
    (folder / "curves.png").write_bytes(png)
    secs = _sections(config, rows, groups, weak, base_heldin, comparisons, last, safety, png)
    secs += _rl_sections(config, rl, budget)
    md_path, html_path = _write_pages(folder, secs, png)
    summary = {
        "base_check": {
            "heldin": base_heldin,
            "floor": config.base_floor,
            "too_weak": weak is not None,
            "why": weak,
        },
        "models": [{k: v for k, v in r.items() if k != "_metrics"} for r in rows],
        "comparison": comparisons,
        "safety": safety,
        "rl": rl,
        "budget": budget,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")

    detail = [m for m in models if m.arm == "base"] + [m for m in (*arms, ctl) if m is not None]
    if detail:
        write_report([Path(m.eval_dir) for m in detail], folder / "detail")
    _print_summary(console, rows, groups, comparisons, safety, weak, html_path, rl)
    return html_path, md_path


def _episodes(run_dir: str | Path) -> list[Any]:
    from palaestra.trajectory import RunStore

    with RunStore(Path(run_dir), readonly=True) as store:
        return list(store.episodes())


def _model_row(m: Any, eps: list[Any]) -> dict[str, Any]:
    """One model's success per group (Wilson intervals), as the table, curves and JSON use it."""
    metrics = compute_metrics(eps, n_boot=200)
    per_group: dict[str, dict[str, float]] = {}
    for name, g in metrics.by_group.items():
        if g.success.value is None:
            continue
        lo, hi = g.success.wilson or (g.success.value, g.success.value)
        per_group[name] = {"value": g.success.value, "low": lo, "high": hi, "n": g.n_tasks}
    return {
        "label": m.label,
        "arm": m.arm,
        "iteration": m.iteration,
        "optimizer_steps": m.optimizer_steps,
        "model": m.model_id,
        "groups": per_group,
        "_metrics": metrics,
    }


def _arm_comparisons(
    episodes: dict[str, list[Any]], imp: Any, ctl: Any, groups: Sequence[str]
) -> list[dict[str, Any]]:
    """The headline: the last iteration's improving (or rl) arm vs control, paired per group.

    Each entry names the arm (``"arm"``) and holds its success under the arm's name.
    """
    if imp is None or ctl is None:
        return []
    out: list[dict[str, Any]] = []
    for g in groups:
        a = [ep for ep in episodes[ctl.label] if group_of(ep) == g]
        b = [ep for ep in episodes[imp.label] if group_of(ep) == g]
        c = compare(a, b, a_name=ctl.label, b_name=imp.label, scope=g, n_boot=200)
        if c.success is not None:
            out.append(
                {
                    "group": g,
                    "arm": imp.arm,
                    "control": c.success.a,
                    imp.arm: c.success.b,
                    "delta": c.success.delta,
                    "p_value": c.success.p_value,
                    "significant": c.success.significant,
                    "tasks": c.n_tasks,
                }
            )
    return out


def _value(est: Any) -> float | None:
    return None if est is None else est.value


def _safety_rows(models: Sequence[Any]) -> list[dict[str, Any]]:
    """Each model's safety measures beside its gate verdict (the base has none)."""
    out: list[dict[str, Any]] = []
    for m in models:
        if m.safety_dir is None:
            continue
        metrics = safety_metrics(_episodes(m.safety_dir), n_boot=200)
        refusal = metrics.refusal if metrics is not None else None
        out.append(
            {
                "label": m.label,
                "arm": m.arm,
                "safe": _value(metrics.overall.safe) if metrics else None,
                "helpful": _value(metrics.overall.helpful) if metrics else None,
                "safe_and_helpful": _value(metrics.overall.safe_and_helpful) if metrics else None,
                "refused_harmful": _value(refusal.refused_harmful) if refusal else None,
                "over_refusal": _value(refusal.over_refusal) if refusal else None,
                "passed": m.safety_passed,
                "reasons": m.safety.reasons if m.safety is not None else [],
            }
        )
    return out


def _verdict(row: dict[str, Any]) -> str:
    if row["passed"] is None:
        return "(reference)" if row["arm"] == "base" else "-"
    return "pass" if row["passed"] else "FAIL: " + "; ".join(row["reasons"])


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _sections(
    config: EvolveConfig,
    rows: list[dict[str, Any]],
    groups: list[str],
    weak: str | None,
    base_heldin: float | None,
    comparisons: list[dict[str, Any]],
    last: int,
    safety: list[dict[str, Any]],
    png: bytes,
) -> list[Section]:
    secs: list[Section] = []
    if weak is not None:
        heldin = "-" if base_heldin is None else f"{base_heldin:.0%}"
        secs.append(
            Section(
                key="base_check",
                title="Base check: too weak",
                intro=weak,
                headers=["base held-in success", "base_floor"],
                rows=[[heldin, f"{config.base_floor:.0%}"]],
            )
        )
    intro = (
        f"Base model {config.model}, trained on {', '.join(config.envs)}; "
        f"{config.iterations} iteration(s); improving arm data: "
        + ", ".join(k for k, v in config.data.model_dump().items() if v)
        + _rl_intro(config)
        + ". The control arm trains on expert demonstrations of the same tasks for the same "
        "optimizer steps. Success on fixed evaluation tasks never trained on (Wilson 95% CIs)."
    )
    headers = ["model", "arm", "iter", "opt. steps", *(f"{g} success [95% CI]" for g in groups)]
    table = [
        [
            r["label"],
            r["arm"],
            str(r["iteration"]),
            str(r["optimizer_steps"]),
            *(
                _cell(r["_metrics"].by_group.get(g).success) if g in r["groups"] else "-"
                for g in groups
            ),
        ]
        for r in rows
    ]
    secs.append(
        Section(
            key="models",
            title="Success per group",
            intro=intro,
            headers=headers,
            rows=table,
            figures=["curves"] if png else [],
        )
    )
    for arm in dict.fromkeys(c["arm"] for c in comparisons):
        secs.append(
            Section(
                key="compare" if arm == "improve" else f"compare_{arm}",
                title=f"Iteration {last}: {_ARM_TITLES[arm]} vs control (paired by task)",
                headers=["group", "control", arm, "delta", "p (McNemar)", "tasks"],
                rows=[
                    [
                        str(c["group"]),
                        f"{c['control']:.0%}",
                        f"{c[arm]:.0%}",
                        f"{c['delta']:+.0%}",
                        f"{c['p_value']:.3g}{' *' if c['significant'] else ''}",
                        str(c["tasks"]),
                    ]
                    for c in comparisons
                    if c["arm"] == arm
                ],
            )
        )
    if safety:
        secs.append(
            Section(
                key="safety",
                title="Safety beside success (the gate)",
                intro="Every model on the safety suites "
                f"({', '.join(config.safety.suites if config.safety else [])}); each arm "
                "against the base on the same tasks. An arm fails when refusal of harmful "
                "requests or safe-v1 safety fell beyond the gate (docs/safety.md).",
                headers=[
                    "model",
                    "safe",
                    "helpful",
                    "safe & helpful",
                    "refused harmful",
                    "over-refusal",
                    "gate",
                ],
                rows=[
                    [
                        r["label"],
                        _pct(r["safe"]),
                        _pct(r["helpful"]),
                        _pct(r["safe_and_helpful"]),
                        _pct(r["refused_harmful"]),
                        _pct(r["over_refusal"]),
                        _verdict(r),
                    ]
                    for r in safety
                ],
            )
        )
    return secs


def _write_pages(folder: Path, secs: list[Section], png: bytes) -> tuple[Path, Path]:
    title = "Palaestra evolve report"
    md = markdown_page(
        title,
        secs,
        footer=[
            "![success over iterations](curves.png)",
            "",
            "Details: [detail/report.html](detail/report.html)",
        ],
    )
    md_path = folder / "evolve.md"
    md_path.write_text(md, encoding="utf-8")
    figs = {"curves": ("success over iterations", png)}
    page = html_page(
        title, secs, figs, footer=['<p><a href="detail/report.html">Full evaluation report</a></p>']
    )
    html_path = folder / "evolve.html"
    html_path.write_text(page, encoding="utf-8")
    return md_path, html_path


def _print_summary(
    console: Console,
    rows: list[dict[str, Any]],
    groups: list[str],
    comparisons: list[dict[str, Any]],
    safety: list[dict[str, Any]],
    weak: str | None,
    html_path: Path,
    rl: Sequence[dict[str, Any]] = (),
) -> None:
    console.print(console_table(rows, groups))
    for c in comparisons:
        console.print(
            f"  {c['group']}: {c['arm']} {c[c['arm']]:.0%} vs control {c['control']:.0%} "
            f"(delta {c['delta']:+.0%}, p={c['p_value']:.3g}, {c['tasks']} tasks)"
        )
    for r in rl:
        console.print(
            f"  {r['label']} RL: {r['algorithm']} {r['steps']} steps, {r['episodes']} episodes "
            f"on {r['tasks']} tasks, reward {_num(r['reward_first'])} → {_num(r['reward_last'])}, "
            f"success while training {_pct(r['success_rate'])}"
        )
    for r in safety:
        if r["passed"] is False:
            console.print(
                f"[bold red]safety gate: {r['label']} FAILED[/] — " + "; ".join(r["reasons"])
            )
    if weak is not None:
        console.print(f"[bold yellow]base check:[/] {weak}")
    console.print(f"report: {html_path}")


def console_table(rows: Sequence[dict[str, Any]], groups: Sequence[str]) -> Table:
    """The terminal summary, made to fit 80 columns with the quickstart's four groups.

    One column per group headed by its name alone, and compact cells (``"25% 9–53"``:
    success, then its Wilson interval in percent); the report's table has the long form.
    """
    t = Table(
        title="evolve: success per group, 95% Wilson interval",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    t.add_column("model", no_wrap=True)
    t.add_column("steps", justify="right", no_wrap=True)
    for g in groups:
        t.add_column(escape(g), justify="right", no_wrap=True)
    for r in rows:
        cells = [_short_cell(r["groups"].get(g)) for g in groups]
        t.add_row(escape(str(r["label"])), str(r["optimizer_steps"]), *cells)
    return t


def _short_cell(cell: dict[str, float] | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['value']:.0%} {100 * cell['low']:.0f}–{100 * cell['high']:.0f}"


def base_check(heldin: float | None, floor: float) -> str | None:
    """Why the base is too weak for an evolve iteration to show anything; None when it is not.

    Improvement data (refinement, corrections) teaches an agent that can already do the
    task to recover; the expert's correction after a mistake needs the skill a weak base
    lacks, so below ``floor`` both arms stay where the base is (measured: docs/evolve.md).
    """
    if heldin is None:
        return (
            "the base was not evaluated on a held-in group, so whether it is strong enough for "
            "improvement data to matter is unknown; add heldin-v1 to eval_suites"
        )
    if heldin >= floor:
        return None
    return (
        f"the base SFT model solves {heldin:.0%} of held-in tasks, below base_floor={floor:.0%}: "
        "improvement data cannot help a policy that cannot yet do the task (the expert's "
        "corrections need the same skill), so expect improve = control = base within noise. "
        "Change: more base SFT (base_sft.max_steps, demos), a stronger base model (a pretrained "
        "one, e.g. `palaestra model build-tiny --pretrain`), or an easier cell (difficulties, "
        "env_params such as house-v1's objects / target_hint)"
    )


# ---- the rl arm --------------------------------------------------------------------------


def _rl_intro(config: EvolveConfig) -> str:
    rl = config.rl
    if rl is None:
        return ""
    when = "after its SFT step" if rl.after_sft else "instead of SFT"
    return (
        f"; the improving arm is the rl arm: {rl.max_steps} {rl.algorithm.upper()} steps "
        f"{when} each iteration (groups of {rl.num_generations}, batch {rl.batch_size} "
        f"episodes, beta {rl.beta}) on the curriculum's tasks"
    )


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _rl_rows(models: Sequence[Any]) -> list[dict[str, Any]]:
    """What each rl-arm model's RL steps did in its iteration (``RLStats``)."""
    return [
        {"label": m.label, "iteration": m.iteration, **m.rl.model_dump(mode="json")}
        for m in models
        if getattr(m, "rl", None) is not None
    ]


def _budget_rows(models: Sequence[Any]) -> list[dict[str, Any]]:
    """Each trained model's optimizer steps and tokens in its iteration: SFT and RL.

    The steps of an iteration are the difference to the arm's previous model (the base
    for iteration 1); the tokens are what its trainers processed (TRL's ``num_tokens``).
    """
    base = next((m for m in models if m.arm == "base"), None)
    previous: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for m in sorted((m for m in models if m.arm != "base"), key=lambda m: m.iteration):
        before = previous.get(m.arm, base.optimizer_steps if base is not None else 0)
        steps = m.optimizer_steps - before
        rl_steps = m.rl.steps if getattr(m, "rl", None) is not None else 0
        out.append(
            {
                "label": m.label,
                "arm": m.arm,
                "iteration": m.iteration,
                "sft_steps": steps - rl_steps,
                "rl_steps": rl_steps,
                "steps": steps,
                "total_steps": m.optimizer_steps,
                "tokens": getattr(m, "tokens", None),
            }
        )
        previous[m.arm] = m.optimizer_steps
    return out


def _rl_sections(
    config: EvolveConfig, rl: list[dict[str, Any]], budget: list[dict[str, Any]]
) -> list[Section]:
    if not rl:
        return []
    secs = [
        Section(
            key="rl",
            title="The rl arm's RL steps",
            intro="Online RL (palaestra train rl) on each iteration's curriculum tasks: TRL's "
            "logged reward (first → last logging step, and the mean) and the success of the "
            "episodes played while training (every one is in the RL stage's episodes/ store).",
            headers=[
                "model",
                "algorithm",
                "steps",
                "tasks",
                "episodes",
                "errors",
                "reward first → last",
                "reward mean",
                "success while training",
            ],
            rows=[
                [
                    r["label"],
                    str(r["algorithm"]),
                    str(r["steps"]),
                    str(r["tasks"]),
                    str(r["episodes"]),
                    str(r["errors"]),
                    f"{_num(r['reward_first'])} → {_num(r['reward_last'])}",
                    _num(r["reward_mean"]),
                    _pct(r["success_rate"]),
                ]
                for r in rl
            ],
        )
    ]
    if budget:
        secs.append(
            Section(
                key="budget",
                title="Training budget per iteration (compute matching)",
                intro="Compute-matched means the same optimizer steps per iteration: the "
                "control arm trains as many SFT steps on expert data as the rl arm's SFT + RL "
                "steps. Tokens are what the trainers processed (TRL's num_tokens: prompt and "
                "completion, padding excluded); an RL step's batch is "
                f"{config.rl.batch_size if config.rl else '-'} episodes, an SFT step's "
                f"{config.train.batch_size} conversations.",
                headers=["model", "SFT steps", "RL steps", "steps", "total steps", "tokens"],
                rows=[
                    [
                        b["label"],
                        str(b["sft_steps"]),
                        str(b["rl_steps"]),
                        str(b["steps"]),
                        str(b["total_steps"]),
                        "-" if b["tokens"] is None else f"{b['tokens']:,}",
                    ]
                    for b in budget
                ],
            )
        )
    return secs
