"""``palaestra train orm`` and ``palaestra orm label|show``: an outcome reward model (WebRL's ORM).

``train orm`` fits a success classifier on run folders and prints its
validation metrics on held-out tasks; ``orm label`` writes the ORM's labels
beside runs (``orm_labels.jsonl``), which ``build_sft(reward="orm")`` uses as
the success signal on tasks without a checker.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from palaestra.cli._common import console, fail, import_hint
from palaestra.cli._options import CONFIG_OPTION, MODEL_DECLS, config_flags
from palaestra.train import ORMConfig

orm_app = typer.Typer(
    help="Outcome reward model: label runs with predicted success.", no_args_is_help=True
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def metrics_table(meta: Any) -> Table:
    """Train-fit and validation metrics of an ORM side by side."""
    table = Table(title="ORM: P(success) vs outcome")
    table.add_column("metric")
    table.add_column("train", justify="right")
    table.add_column("validation (held-out tasks)", justify="right")
    fit, val = meta.train_fit, meta.validation
    rows: list[tuple[str, str, str]] = [
        ("episodes (successes)", f"{fit.n} ({fit.positives})", f"{val.n} ({val.positives})"),
        ("accuracy", _fmt(fit.accuracy), _fmt(val.accuracy)),
        (
            "accuracy 95% CI",
            "-"
            if fit.accuracy_ci is None
            else f"{fit.accuracy_ci[0]:.2f}-{fit.accuracy_ci[1]:.2f}",
            "-"
            if val.accuracy_ci is None
            else f"{val.accuracy_ci[0]:.2f}-{val.accuracy_ci[1]:.2f}",
        ),
        ("majority baseline", _fmt(fit.majority_baseline), _fmt(val.majority_baseline)),
        ("balanced accuracy", _fmt(fit.balanced_accuracy), _fmt(val.balanced_accuracy)),
        ("precision", _fmt(fit.precision), _fmt(val.precision)),
        ("recall", _fmt(fit.recall), _fmt(val.recall)),
        ("AUROC", _fmt(fit.auroc), _fmt(val.auroc)),
        ("Brier", _fmt(fit.brier), _fmt(val.brier)),
    ]
    for row in rows:
        table.add_row(*row)
    return table


@config_flags(ORMConfig, decls={"learning_rate": ("--learning-rate", "--lr")})
def orm_train_cmd(
    overrides: dict[str, Any],
    model: str = typer.Option(
        ..., *MODEL_DECLS, help="Base model: tiny, gemma-270m, hf/DIR or a checkpoint folder."
    ),
    runs: list[Path] = typer.Option(
        ..., "--runs", "-r", help="Run folders to learn from (repeat)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder of the ORM."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Train an outcome reward model: predict success from a trajectory (WebRL's ORM).

    Settings come from flags, else from --config, else the defaults.
    """
    from palaestra.trajectory import StoreError

    try:
        from palaestra.train import load_orm_config, train_orm
    except ImportError as e:
        fail(import_hint(e, "palaestra train orm"))
    try:
        cfg = load_orm_config(config, **overrides)
        meta = train_orm(model, runs, cfg, out)
    except (ValueError, FileNotFoundError, ImportError, StoreError) as e:
        fail(str(e))
    console.print(metrics_table(meta))
    console.print(f"ORM trained in {meta.wall_seconds:.0f}s → {out}")


@orm_app.command("label")
def label_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders to label."),
    orm: Path = typer.Option(..., "--orm", help="ORM folder (palaestra train orm)."),
    threshold: float = typer.Option(0.5, help="P(success) at or above which a label is success."),
    batch_size: int | None = typer.Option(None, help="Episodes per scoring batch."),
) -> None:
    """Write the ORM's success labels beside each run (orm_labels.jsonl)."""
    from palaestra.trajectory import StoreError

    try:
        from palaestra.train import label_run, load_orm
    except ImportError as e:
        fail(import_hint(e, "palaestra orm label"))

    try:
        model = load_orm(orm)
        for run_dir in run_dirs:
            s = label_run(run_dir, model, threshold=threshold, batch_size=batch_size)
            console.print(
                f"{run_dir}: {s.labelled} episodes labelled, {s.predicted_success} predicted "
                f"success ({s.errors_skipped} errors skipped) → {s.path}",
                highlight=False,
            )
    except (ValueError, FileNotFoundError, ImportError, StoreError) as e:
        fail(str(e))


@orm_app.command("show")
def show_cmd(orm: Path = typer.Argument(..., help="ORM folder.")) -> None:
    """Print an ORM's training sources, counts and metrics."""
    try:
        from palaestra.train import read_orm_meta
    except ImportError as e:
        fail(import_hint(e, "palaestra orm show"))

    try:
        meta = read_orm_meta(orm)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    console.print(f"base {meta.base_model} ({meta.method}); sources: {', '.join(meta.sources)}")
    console.print(", ".join(f"{k} {v}" for k, v in meta.counts.items()), highlight=False)
    console.print(metrics_table(meta))
