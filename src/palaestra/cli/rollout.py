"""``palaestra rollout``: run an agent on a task split into a resumable run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from palaestra.cli._common import console, fail, import_hint, spec_or_fail
from palaestra.cli._options import CONFIG_OPTION, MODEL_DECLS, config_flags
from palaestra.rollout import RolloutConfig

#: Flags that are not ``--`` plus the field's name.
DECLS = {"model": MODEL_DECLS, "epochs": ("--epochs", "-k")}


@config_flags(RolloutConfig, decls=DECLS)
def rollout_cmd(
    overrides: dict[str, Any],
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-run to resume)."),
    config: Path | None = CONFIG_OPTION,
) -> None:
    """Roll out an agent on a task split into a run directory; re-run to resume.

    Every finished episode is stored at once, so a re-run of the same command
    runs only what is missing.

    Settings come from flags, else from --config, else the defaults.
    """
    from palaestra.rollout import load_config, rollout
    from palaestra.trajectory import RunStore

    try:
        cfg = load_config(config, **overrides)
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
