"""``palaestra runs``: list, summarise and export run directories."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from palaestra.cli._common import console, fail, import_hint
from palaestra.trajectory import DB_NAME, RunStore, StoreError, export_rows_jsonl

#: Shown where nothing was scored (every episode of the group ended in error).
NOT_SCORED = "–"

app = typer.Typer(help="List, summarise and export runs.", no_args_is_help=True)


def _open(run_dir: Path) -> RunStore:
    try:
        return RunStore(run_dir, readonly=True)
    except StoreError as e:
        fail(str(e))


@app.command("list")
def list_runs(
    root: Path = typer.Argument(Path("runs"), help="Directory to search for runs."),
) -> None:
    """List the runs under ROOT."""
    table = Table(title=f"Runs under {root}")
    for col in ("run", "kind", "model", "agent", "episodes", "success", "errors", "created"):
        table.add_column(col)
    found = sorted(p.parent for p in root.rglob(DB_NAME)) if root.is_dir() else []
    for run_dir in found:
        try:
            with RunStore(run_dir, readonly=True) as store:
                run, s = store.run(), store.summary()
        except StoreError as e:
            table.add_row(escape(str(run_dir)), f"[red]{escape(str(e))}[/]", *[""] * 6)
            continue
        scored = s["scored"] or 0
        # Errors are never scored: a run of errors only has no success rate, not 0%.
        rate = f"{s['outcomes'].get('success', 0) / scored:.0%}" if scored else NOT_SCORED
        table.add_row(
            escape(str(run_dir)),
            escape(run.kind) if run else "?",
            escape(run.model_id) if run else "?",
            escape(run.agent) if run else "?",
            str(s["episodes"]),
            rate,
            str(s["outcomes"].get("error", 0)),
            run.created_at.strftime("%Y-%m-%d %H:%M") if run else "",
        )
    console.print(table)
    if not found:
        console.print(f"No runs under {root}.")


@app.command("show")
def show(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Summarise a run: outcomes, success, progress, steps and tokens per environment."""
    with _open(run_dir) as store:
        run = store.run()
        outcomes: dict[tuple[str, str], list[str]] = defaultdict(list)
        # per group, for non-error episodes: (score, progress, steps, tokens)
        scored: dict[tuple[str, str], list[tuple[float, float, float, float]]] = defaultdict(list)
        for ep in store.episodes():
            key = (ep.task.env_id, ep.task.split)
            outcomes[key].append(ep.outcome)
            if ep.outcome != "error":
                tokens = ep.prompt_tokens + ep.completion_tokens
                scored[key].append((ep.score, ep.progress, ep.n_steps, tokens))
    if run:
        console.print(
            escape(f"{run.run_id} {run.kind} · model {run.model_id} · agent {run.agent}"),
            highlight=False,
        )
    table = Table(title=escape(str(run_dir)))
    cols = ("env", "split", "n", "success", "fail", "limit", "error", "score", "progress",
            "steps", "tokens")  # fmt: skip
    for col in cols:
        left = col in ("env", "split")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for key, outs in sorted(outcomes.items()):
        counts = {o: outs.count(o) for o in ("success", "failure", "limit", "error")}
        rows = scored[key]
        # A group of errors only has nothing scored: its means are unknown, not 0.
        means = [sum(col) / len(rows) for col in zip(*rows, strict=True)] if rows else None
        cells = (
            [f"{means[0]:.2f}", f"{means[1]:.2f}", f"{means[2]:.1f}", f"{means[3]:.0f}"]
            if means
            else [NOT_SCORED] * 4
        )
        table.add_row(
            *map(escape, key),
            str(len(outs)),
            f"{counts['success'] / len(rows):.0%}" if rows else NOT_SCORED,
            str(counts["failure"]),
            str(counts["limit"]),
            f"[red]{counts['error']}[/]" if counts["error"] else "0",
            *cells,
        )
    console.print(table)


#: Default output name of each export format, inside the run directory.
_EXPORT_NAMES = {
    "jsonl": "rows.jsonl",
    "parquet": "rows.parquet",
    "hf": "hf",
    "episodes": "episodes.jsonl",
}


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    fmt: str = typer.Option(
        "jsonl", "--format", "-f", help="jsonl, parquet, hf (one row schema) or episodes."
    ),
    out: Path | None = typer.Option(None, help="Output path (default: inside the run dir)."),
) -> None:
    """Export a run's episodes: one flat row each as JSONL, Parquet or a datasets folder.

    The three row formats share one schema (docs/rollouts.md); --format episodes
    writes the full nested Episode JSON, every step included.
    """
    if fmt not in _EXPORT_NAMES:
        fail(f"--format must be one of {', '.join(_EXPORT_NAMES)}; got {fmt!r}")
    target = out or run_dir / _EXPORT_NAMES[fmt]
    with _open(run_dir) as store:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if fmt == "episodes":
                n = store.export_jsonl(target)
            elif fmt == "jsonl":
                n = export_rows_jsonl(store.episodes(), target)
            else:
                from palaestra.trajectory import export_hf, export_parquet

                n = (export_parquet if fmt == "parquet" else export_hf)(store.episodes(), target)
        except ImportError as e:
            fail(import_hint(e, f"--format {fmt}"))
        except OSError as e:
            fail(f"cannot write {target}: {e.strerror or e}")
    console.print(f"Wrote {n} episode(s) to {escape(str(target))}")
