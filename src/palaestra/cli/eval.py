"""``palaestra eval``: run an agent on an evaluation suite into a resumable run directory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from palaestra.cli._common import console, fail, import_hint


def eval_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-run to resume)."),
    suite: str | None = typer.Option(
        None, help="Suite id (heldin-v1, heldout-v1, perturbed-v1, family-shop-v1, ...) or a .yaml."
    ),
    model: str | None = typer.Option(
        None, help="Model id: hf/PATH, openai/NAME, gemma-270m, tiny."
    ),
    agent: str | None = typer.Option(
        None, help="react, reflexion, expert or random (default: react)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", "-k", help="Episodes per task (pass@k, pass^k) (default: 1)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of settings."),
    base_url: str | None = typer.Option(None, help="Server URL for openai/ models."),
    concurrency: int | None = typer.Option(None, help="Episodes in flight (default: 8)."),
    max_steps: int | None = typer.Option(None, help="Agent turns per episode (default: 100)."),
    max_tokens: int | None = typer.Option(None, help="Token budget per episode."),
    max_seconds: float | None = typer.Option(None, help="Wall-time budget per episode."),
    max_retries: int | None = typer.Option(None, help="Retries after an error (default: 2)."),
    temperature: float | None = typer.Option(None, help="Sampling temperature (default: 0)."),
    max_new_tokens: int | None = typer.Option(None, help="Tokens per reply (default: 128)."),
    seed: int | None = typer.Option(None, help="Sampling seed (default: 0)."),
) -> None:
    """Evaluate an agent on a suite (every task for k epochs); re-run to resume.

    Every finished episode is stored at once, so a re-run of the same command
    runs only what is missing.

    Settings come from flags, else from --config, else the defaults.
    """
    from palaestra.eval._run import evaluate, load_eval_config

    try:
        cfg = load_eval_config(
            config,
            suite=suite,
            model=model,
            agent=agent,
            epochs=epochs,
            base_url=base_url,
            concurrency=concurrency,
            max_steps=max_steps,
            max_tokens=max_tokens,
            max_seconds=max_seconds,
            max_retries=max_retries,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
        )
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
    from palaestra.eval._metrics import run_metrics

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
