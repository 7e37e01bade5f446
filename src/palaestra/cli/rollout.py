"""``palaestra rollout``: run an agent on a task split into a resumable run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from palaestra.cli._common import console, fail, import_hint, spec_or_fail


def rollout_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-run to resume)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML file of settings."),
    model: str | None = typer.Option(
        None, help="Model id: hf/PATH, openai/NAME, gemma-270m, tiny."
    ),
    base_url: str | None = typer.Option(None, help="Server URL for openai/ models."),
    env: str | None = typer.Option(None, help="Environment id, e.g. house-v1."),
    env_url: str | None = typer.Option(None, help="Use this env server instead of in-process."),
    split: str | None = typer.Option(None, help="train, test or heldout (default: train)."),
    n: int | None = typer.Option(None, help="Number of tasks (default: 10)."),
    start: int | None = typer.Option(None, help="First task seed (default: 0)."),
    difficulty: str | None = typer.Option(None, help="easy, medium or hard (default: all)."),
    attempts: int | None = typer.Option(None, help="Attempts per task (default: 1)."),
    agent: str | None = typer.Option(None, help="react, reflexion, expert or random."),
    concurrency: int | None = typer.Option(None, help="Episodes in flight (default: 8)."),
    max_steps: int | None = typer.Option(None, help="Agent turns per episode (default: 30)."),
    max_tokens: int | None = typer.Option(None, help="Token budget per episode."),
    max_seconds: float | None = typer.Option(None, help="Wall-time budget per episode."),
    temperature: float | None = typer.Option(None, help="Sampling temperature (default: 0)."),
    max_new_tokens: int | None = typer.Option(None, help="Tokens per reply (default: 128)."),
    seed: int | None = typer.Option(None, help="Sampling seed (default: 0)."),
    backend: str | None = typer.Option(None, help="local or ray (default: local)."),
    ray_address: str | None = typer.Option(
        None, help="Ray cluster to join ('auto' on a cluster node) (default: a local instance)."
    ),
    ray_workers: int | None = typer.Option(None, help="Ray worker actors (default: 2)."),
) -> None:
    """Roll out an agent on a task split into a run directory; re-run to resume.

    Every finished episode is stored at once, so a re-run of the same command
    runs only what is missing.

    Settings come from flags, else from --config, else the defaults.
    """
    from palaestra.rollout import load_config, rollout
    from palaestra.trajectory import RunStore

    try:
        cfg = load_config(
            config,
            model=model,
            base_url=base_url,
            env=env,
            env_url=env_url,
            split=split,
            n=n,
            start=start,
            difficulty=difficulty,
            attempts=attempts,
            agent=agent,
            concurrency=concurrency,
            max_steps=max_steps,
            max_tokens=max_tokens,
            max_seconds=max_seconds,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=seed,
            backend=backend,
            ray_address=ray_address,
            ray_workers=ray_workers,
        )
        # An env server runs the environment's code; in-process, its extra must be installed.
        spec_or_fail(cfg.env, load=cfg.env_url is None)
        stats = rollout(cfg, out, console=console)
    except typer.Exit:  # a RuntimeError too: fail() above already said what was wrong
        raise
    except ImportError as e:
        fail(import_hint(e, "palaestra rollout"))
    except (ValueError, KeyError, RuntimeError) as e:
        fail(str(e.args[0]) if isinstance(e, KeyError) else str(e))
    with RunStore(out, readonly=True) as store:
        summary = store.summary()
        errors = summary["outcomes"].get("error", 0)
        first = next(iter(store.episodes(outcome="error")), None) if errors else None
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(summary["outcomes"].items()))
    console.print(
        f"{stats.done} new episode(s), {stats.skipped} already done; run now holds "
        f"{summary['episodes']} ({outcomes}). Mean batch {stats.mean_batch:.1f}. → {out}"
    )
    if errors:
        # Errors are infrastructure failures, never scores: a run holding any is not a
        # result to build on, and scripts must see it in the exit status.
        err = first.error if first else None
        cause = f" The first: {err.type}: {err.message}." if err else ""
        fail(
            f"{errors} of {summary['episodes']} episode(s) ended in error (not scored).{cause}\n"
            f"See `palaestra runs show {out}`; re-run the same command to retry them.",
            code=1,
        )
