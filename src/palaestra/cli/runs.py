"""``palaestra runs``: list, summarise and export run directories."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import typer
from rich.table import Table

from palaestra.cli._common import console, fail
from palaestra.trajectory import DB_NAME, RunStore, StoreError

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
            table.add_row(str(run_dir), f"[red]{e}[/]", "", "", "", "", "", "")
            continue
        scored = s["scored"] or 0
        rate = s["outcomes"].get("success", 0) / scored if scored else 0.0
        table.add_row(
            str(run_dir),
            run.kind if run else "?",
            run.model_id if run else "?",
            run.agent if run else "?",
            str(s["episodes"]),
            f"{rate:.0%}",
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
            f"[bold]{run.run_id}[/] {run.kind} · model {run.model_id} · agent {run.agent}"
        )
    table = Table(title=str(run_dir))
    cols = ("env", "split", "n", "success", "fail", "limit", "error", "score", "progress",
            "steps", "tokens")  # fmt: skip
    for col in cols:
        left = col in ("env", "split")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for key, outs in sorted(outcomes.items()):
        counts = {o: outs.count(o) for o in ("success", "failure", "limit", "error")}
        rows = scored[key]
        means = [sum(col) / len(rows) for col in zip(*rows, strict=True)] if rows else [0.0] * 4
        table.add_row(
            *key,
            str(len(outs)),
            f"{counts['success'] / len(rows):.0%}" if rows else "-",
            str(counts["failure"]),
            str(counts["limit"]),
            str(counts["error"]),
            f"{means[0]:.2f}",
            f"{means[1]:.2f}",
            f"{means[2]:.1f}",
            f"{means[3]:.0f}",
        )
    console.print(table)


@app.command("export")
def export(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl, parquet or hf."),
    out: Path | None = typer.Option(None, help="Output path (default: inside the run dir)."),
) -> None:
    """Export a run's episodes as JSONL, Parquet, or a Hugging Face datasets folder."""
    if fmt not in ("jsonl", "parquet", "hf"):
        fail(f"--format must be jsonl, parquet or hf; got {fmt!r}")
    target = (
        out or run_dir / {"jsonl": "episodes.jsonl", "parquet": "episodes.parquet", "hf": "hf"}[fmt]
    )
    with _open(run_dir) as store:
        if fmt == "jsonl":
            n = store.export_jsonl(target)
        else:
            from palaestra.trajectory import export_hf, export_parquet

            n = (export_parquet if fmt == "parquet" else export_hf)(store.episodes(), target)
    console.print(f"Wrote {n} episode(s) to {target}")
