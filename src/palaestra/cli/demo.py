"""``palaestra demo``: the expert and a uniform-random agent on every registered environment.

This is what ``make quickstart`` runs until the learning loop lands: it shows
the span any learned agent sits in — the oracle at the top, chance at the
bottom — per environment and difficulty, and writes the table as JSON.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from palaestra.cli._common import console, fail, spec_or_fail
from palaestra.env import (
    DIFFICULTIES,
    SPLITS,
    EpisodeResult,
    expert_policy,
    make,
    random_policy,
    registry,
    run_episode,
    tasks,
)


def _summary(results: list[EpisodeResult]) -> dict[str, float]:
    return {
        "success": sum(r.success for r in results) / len(results),
        "progress": statistics.fmean(r.progress for r in results),
        "steps": statistics.fmean(r.steps for r in results),
    }


def demo(
    env_ids: list[str] = typer.Argument(
        None, help="Environment ids (default: the built-in families)."
    ),
    n: int = typer.Option(20, "--tasks", "-n", min=1, help="Tasks per environment and difficulty."),
    split: str = typer.Option("test", help="Task split: train, test or heldout."),
    seed: int = typer.Option(0, help="Seed of the random agent."),
    out: Path = typer.Option(
        Path("runs/quickstart"), help="Directory for summary.json (created if missing)."
    ),
) -> None:
    """Run the expert and a random agent on every environment and print a summary table."""
    if split not in SPLITS:
        fail(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    ids = env_ids or [i for i, s in registry().items() if s.source == "palaestra"]
    for env_id in ids:
        spec_or_fail(env_id)
    rows: list[dict[str, object]] = []
    t0 = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        job = bar.add_task("episodes", total=len(ids) * len(DIFFICULTIES) * n * 2)
        for env_id in ids:
            env = make(env_id)
            try:
                for difficulty in DIFFICULTIES:
                    suite = tasks(env_id, split, n, difficulty)
                    row: dict[str, object] = {"env": env_id, "difficulty": difficulty, "n": n}
                    for name, policy in (
                        ("expert", expert_policy),
                        ("random", random_policy(f"{seed}:{env_id}:{difficulty}")),
                    ):
                        bar.update(job, description=f"{env_id} {difficulty} {name}")
                        results: list[EpisodeResult] = []
                        for task in suite:
                            results.append(run_episode(env, task, policy))
                            bar.advance(job)
                        row[name] = _summary(results)
                    rows.append(row)
            finally:
                env.close()
    elapsed = time.perf_counter() - t0

    table = Table(title=f"Expert vs random agent — {split} split, {n} tasks per cell")
    for col in ("env", "difficulty", "expert success", "expert steps", "random success",
                "random progress", "random steps"):  # fmt: skip
        left = col in ("env", "difficulty")
        table.add_column(col, justify="left" if left else "right", no_wrap=left)
    for r in rows:
        e, x = r["expert"], r["random"]
        assert isinstance(e, dict) and isinstance(x, dict)
        table.add_row(
            str(r["env"]),
            str(r["difficulty"]),
            f"{e['success']:.0%}",
            f"{e['steps']:.1f}",
            f"{x['success']:.0%}",
            f"{x['progress']:.0%}",
            f"{x['steps']:.1f}",
        )
    console.print(table)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    payload = {"split": split, "tasks_per_cell": n, "seconds": elapsed, "rows": rows}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)  # atomic: a crash never leaves a half-written summary
    console.print(f"Wrote {path} ({elapsed:.1f} s).")
