"""``palaestra eval``: run an agent on an evaluation suite into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from palaestra.cli._common import console, fail, import_hint
from palaestra.cli._options import CONFIG_OPTION, MODEL_DECLS, config_flags
from palaestra.eval import EvalConfig

#: Flags that are not ``--`` plus the field's name.
DECLS = {"model": MODEL_DECLS, "epochs": ("--epochs", "-k")}


@config_flags(EvalConfig, decls=DECLS)
def eval_cmd(
    overrides: dict[str, Any],
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-run to resume)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Evaluate an agent on a suite (every task for k epochs); re-run to resume.

    Every finished episode is stored at once, so a re-run of the same command
    runs only what is missing. Suites: heldin-v1, heldout-v1, perturbed-v1,
    recovery-v1, family-<env>-v1, ... or a suite .yaml file.

    Settings come from flags, else from --config, else the defaults.
    """
    from palaestra.eval import evaluate, load_eval_config

    try:
        cfg = load_eval_config(config, **overrides)
        from palaestra.agent import get_agent

        if cfg.epochs > 1 and cfg.temperature == 0 and get_agent(cfg.agent).needs_model:
            console.print(
                "[yellow]note:[/] at temperature 0 the epochs repeat one greedy decoding; "
                "pass --temperature for independent samples (pass@k, pass^k)."
            )
        stats = evaluate(cfg, out, console=console)
    except ImportError as e:
        fail(import_hint(e, "palaestra eval"))
    except (ValueError, KeyError, RuntimeError) as e:
        fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    console.print(summary_table(out))
    console.print(
        f"{stats.done} new episode(s), {stats.skipped} already done. "
        f"Full report: palaestra report {out}"
    )


def summary_table(run_dir: Path) -> Table:
    """Success per suite group (errors excluded, counted apart), with a 95% interval."""
    from palaestra.eval import run_metrics

    m = run_metrics(run_dir, n_boot=1000)
    ks = sorted({k for g in m.by_group.values() for k in g.pass_hat_k if k > 1})
    table = Table(title=escape(f"{m.suite or 'eval'} · {m.agent} · {m.model_id}"))
    cols = ["group", "tasks", "episodes", "success", "95% CI", "progress"]
    cols += [f"pass^{k}" for k in ks[-1:]]
    cols += ["limit", "error"]
    for col in cols:
        table.add_column(col, justify="left" if col == "group" else "right")
    rows = [*m.by_group.values(), m.overall]
    for g in rows:
        c = g.counts
        # The report's interval: the task bootstrap, or Wilson's where the bootstrap
        # collapses to a point (every task 0% or 100%), in the report's format.
        ci = g.success.interval() if g.success.value is not None else None
        cells = [
            escape(g.name),
            str(g.n_tasks),
            str(c.episodes),
            _pct(g.success.value),
            f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else "-",
            _pct(g.progress.value),
        ]
        cells += [_pct(g.pass_hat_k[k].value if k in g.pass_hat_k else None) for k in ks[-1:]]
        cells += [str(c.limit), f"[red]{c.error}[/]" if c.error else "0"]
        table.add_row(*cells, style="bold" if g is m.overall else None)
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"
