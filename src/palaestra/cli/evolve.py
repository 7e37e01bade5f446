"""``palaestra evolve``: the self-improvement loop from a YAML config, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from palaestra.cli._common import console, fail, import_hint


def evolve_cmd(
    config: Path | None = typer.Argument(
        None, help="YAML config (see configs/quickstart.yaml); flags override it."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-run to resume)."),
    model: str | None = typer.Option(None, help="Base model id (tiny, gemma-270m, hf/PATH)."),
    env: list[str] = typer.Option(
        None, "--env", "-e", help="Training environment (repeat for several)."
    ),
    iterations: int | None = typer.Option(None, help="Improvement iterations after the base."),
    control: bool | None = typer.Option(
        None, "--control/--no-control", help="Train the expert-only control arm (default: on)."
    ),
    concurrency: int | None = typer.Option(None, help="Episodes in flight (default: 16)."),
    seed: int | None = typer.Option(None, help="Seed (default: 0)."),
) -> None:
    """Base SFT on expert demonstrations, then iterations of rollout → data → train → eval.

    Every stage is stored in OUT as it finishes; re-run the same command to resume
    after a crash or Ctrl-C (a changed setting is refused, except --iterations and
    --concurrency). The report lands in OUT/report/evolve.html.
    """
    try:
        from palaestra.evolve import evolve, load_evolve_config
        from palaestra.evolve._config import check_evolve_config
    except ImportError as e:
        fail(import_hint(e, "palaestra evolve"))
    try:
        cfg = load_evolve_config(
            config,
            model=model,
            envs=env or None,
            iterations=iterations,
            control=control,
            concurrency=concurrency,
            seed=seed,
        )
        # Everything a stage needs is checked before the first one runs (and writes to OUT).
        check_evolve_config(cfg)
        result = evolve(cfg, out, console=console)
    except ImportError as e:
        fail(import_hint(e, "palaestra evolve"))
    except (ValueError, KeyError, FileNotFoundError) as e:
        fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    console.print(f"Report: {result.report_html}")
