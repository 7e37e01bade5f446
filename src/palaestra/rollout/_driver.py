"""``open_run``: the one driver of a run directory, for rollout, eval, evolve's stages and Ray.

A run directory is a :class:`~palaestra.trajectory.RunStore`. Opening one for
a run means, in this order: refuse to resume it with settings that change
what its episodes mean, build the model (not on Ray: each worker builds its
own), write the run header (``Run``: kind, model, agent, config, git commit,
package versions, host), and build the backend that runs the episodes — a
local :class:`RolloutEngine`, or a :class:`RayRolloutBackend` when
``settings.backend == "ray"``. Everything a kind of run adds (its
environments, an agent wrapper, episode metadata, its header config) comes in
as arguments, so both backends serve every kind of run.

    with open_run(config, out, kind="rollout", parts=rollout_parts(config)) as run:
        stats = run.execute(tasks, console=console)
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from palaestra.env import Task
from palaestra.model import Model
from palaestra.rollout._build import (
    EngineParts,
    build_engine,
    load_model,
    needs_model,
    reflexion_of,
)
from palaestra.rollout._config import RunSettings
from palaestra.rollout._engine import RolloutEngine, RolloutStats
from palaestra.trajectory import Episode, Run, RunStore

if TYPE_CHECKING:
    from palaestra.rollout._ray import RayRolloutBackend

_PACKAGES = ("palaestra", "torch", "transformers", "trl", "peft", "datasets", "pydantic")


def git_hash() -> str | None:
    """The checkout's commit, for run headers (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a run's results depend on, for run headers."""
    found: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def run_header(
    settings: RunSettings,
    run_id: str,
    kind: str,
    model: Model | None,
    config: dict[str, Any] | None = None,
) -> Run:
    """The ``Run`` header of a run of ``settings`` (``config`` defaults to their JSON dump)."""
    # On Ray the model lives only in the workers: the header names the configured id.
    model_id = model.id if model else settings.model if needs_model(settings) else None
    packages = package_versions()
    return Run(
        run_id=run_id,
        kind=kind,
        model_id=model_id or settings.agent,
        agent=settings.agent,
        config=config if config is not None else settings.model_dump(mode="json"),
        git_hash=git_hash(),
        packages=packages,
        palaestra_version=packages.get("palaestra", ""),
        host=platform.node(),
    )


@dataclass
class OpenRun:
    """A run directory opened for a run: its store, header, model and backend."""

    settings: RunSettings
    store: RunStore
    header: Run
    model: Model | None
    engine: RolloutEngine | RayRolloutBackend

    def execute(
        self, tasks: Sequence[Task], *, console: Console | None = None, progress: bool = True
    ) -> RolloutStats:
        """Run every (task, epoch) the store does not hold yet; returns the engine's stats."""
        return run_with_progress(
            self.engine, list(tasks), self.settings.epochs, console or Console(), progress
        )


@contextmanager
def open_run(
    settings: RunSettings,
    out_dir: str | Path,
    *,
    kind: str,
    parts: EngineParts,
    header_config: dict[str, Any] | None = None,
    check_resume: Callable[[RunStore], None] | None = None,
    model: Model | None = None,
) -> Generator[OpenRun]:
    """Open ``out_dir`` for a run of ``settings``; the store closes when the block ends.

    ``check_resume(store)`` raises when the stored header's settings differ in
    a way that changes what episodes mean. ``model`` overrides
    ``settings.model`` (tests and notebooks that hold a model already; not on
    Ray, whose workers build their own). ``header_config`` is what the header
    stores as ``Run.config`` (default: the settings).
    """
    out = Path(out_dir)
    store = RunStore(out)
    try:
        if check_resume is not None:
            check_resume(store)
        on_ray = settings.backend == "ray"
        if on_ray and model is not None:
            raise ValueError("the ray backend builds the model in each worker from config.model")
        if not needs_model(settings):
            model = None
        elif model is None:
            if not settings.model:
                raise ValueError(f"agent {settings.agent!r} needs --model")
            if not on_ray:
                model = load_model(settings)
        header = run_header(settings, out.name, kind, model, header_config)
        store.write_run(header)
        engine: RolloutEngine | RayRolloutBackend
        if on_ray:
            from palaestra.rollout._ray import RayRolloutBackend

            engine = RayRolloutBackend(settings, run_id=header.run_id, store=store, parts=parts)
        else:
            engine = build_engine(settings, model, parts, run_id=header.run_id, store=store)
            reflexion = reflexion_of(engine.agent)
            if reflexion is not None:
                reflexion.remember(store.episodes())
        yield OpenRun(settings, store, header, model, engine)
    finally:
        store.close()


def run_with_progress(
    engine: RolloutEngine | RayRolloutBackend,
    suite: list[Any],
    epochs: int,
    console: Console,
    show: bool,
) -> RolloutStats:
    """Run ``engine`` on ``suite`` x ``epochs`` under a rich progress bar; returns its stats."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not show) as bar:
        job = bar.add_task("episodes", total=None, status="")

        def update(ep: Episode, s: RolloutStats) -> None:
            scored = s.done - s.outcomes.get("error", 0)
            rate = s.outcomes.get("success", 0) / scored if scored else 0.0
            elapsed = max(bar.tasks[0].elapsed or 1e-9, 1e-9)
            bar.update(
                job,
                total=s.total,
                completed=s.done,
                status=f"success {rate:.0%} · {s.completion_tokens / elapsed:.0f} tok/s · "
                f"errors {s.outcomes.get('error', 0)}",
            )

        engine.on_episode = update
        engine.run(suite, epochs)
        bar.update(job, total=engine.stats.total, completed=engine.stats.done)
    return engine.stats
