"""``rollout(config, out_dir)``: a whole resumable rollout run, as ``palaestra rollout`` runs it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from palaestra._config import config_changes, refuse_changes
from palaestra.env import tasks
from palaestra.model import Model
from palaestra.rollout._build import (  # re-exported from their old place for one release
    build_agent,
    build_engine,
    env_factory,
    make_engine,
    rollout_parts,
)
from palaestra.rollout._config import RESUMABLE_ROLLOUT, RolloutConfig
from palaestra.rollout._driver import (  # re-exported from their old place for one release
    git_hash,
    open_run,
    package_versions,
    run_with_progress,
)
from palaestra.rollout._engine import RolloutStats
from palaestra.trajectory import RunStore

#: Fields that may change when a run is resumed (old name of ``RESUMABLE_ROLLOUT``).
RESUMABLE_CHANGES = RESUMABLE_ROLLOUT


def check_resume(store: RunStore, config: RolloutConfig) -> None:
    """Refuse to resume a run directory with a config that changes what episodes mean."""
    run = store.run()
    if run is None:
        return
    old = RolloutConfig.model_validate(run.config)
    refuse_changes(store.run_dir, "a run", config_changes(old, config, RESUMABLE_ROLLOUT))


def rollout(
    config: RolloutConfig,
    out_dir: str | Path,
    *,
    model: Model | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> RolloutStats:
    """Run (or resume) the rollout described by ``config`` into ``out_dir``.

    ``model`` overrides ``config.model`` (for tests and notebooks that hold a model already).
    """
    with open_run(
        config,
        out_dir,
        kind="rollout",
        parts=rollout_parts(config),
        check_resume=lambda store: check_resume(store, config),
        model=model,
    ) as run:
        suite = tasks(config.env, config.split, config.n, config.difficulty, start=config.start)
        return run.execute(suite, console=console, progress=progress)


__all__ = [
    "RESUMABLE_CHANGES",
    "build_agent",
    "build_engine",
    "check_resume",
    "env_factory",
    "git_hash",
    "make_engine",
    "open_run",
    "package_versions",
    "rollout",
    "rollout_parts",
    "run_with_progress",
]
