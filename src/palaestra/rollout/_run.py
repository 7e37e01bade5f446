"""``rollout(config, out_dir)``: a whole resumable rollout run, as ``palaestra rollout`` runs it."""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from palaestra._config import config_changes, refuse_changes
from palaestra.agent import Agent, ReflexionAgent, get_agent
from palaestra.env import Environment, Task, make, tasks
from palaestra.model import GenerationConfig, Model, get_model
from palaestra.rollout._config import RolloutConfig
from palaestra.rollout._engine import Limits, RolloutEngine, RolloutStats
from palaestra.trajectory import Episode, Run, RunStore

if TYPE_CHECKING:
    from palaestra.rollout._ray import RayRolloutBackend

#: Fields that may change when a run is resumed (they do not change what an episode means).
RESUMABLE_CHANGES = frozenset(
    {"concurrency", "n", "attempts", "max_retries", "base_url", "env_url"}
    | {"backend", "ray_address", "ray_workers"}
)
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


def check_resume(store: RunStore, config: RolloutConfig) -> None:
    """Refuse to resume a run directory with a config that changes what episodes mean."""
    run = store.run()
    if run is None:
        return
    old = RolloutConfig.model_validate(run.config)
    refuse_changes(store.run_dir, "a run", config_changes(old, config, RESUMABLE_CHANGES))


def build_agent(config: RolloutConfig, model: Model | None) -> Agent:
    kwargs: dict[str, Any] = {
        "max_steps": config.max_steps,
        "max_prompt_tokens": config.max_prompt_tokens,
    }
    if config.prompt != "full":  # only the ReAct family of agents takes it
        kwargs["prompt"] = config.prompt
    kwargs["generation"] = GenerationConfig(
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
        stop=["\nObservation"],
    )
    counter = getattr(model, "count_tokens", None)
    if callable(counter):
        kwargs["count_tokens"] = counter
    kwargs["seed"] = config.seed
    if config.agent.startswith("search:"):
        # Search settings (palaestra.agent.search.SearchConfig) come from the config's
        # `search` mapping when it has one; the agent's defaults otherwise.
        search = config.search
        if search:
            kwargs["search"] = search
    return get_agent(config.agent, **kwargs)


def env_factory(config: RolloutConfig) -> Callable[[], Environment]:
    if config.env_url:
        from palaestra.env.server import RemoteEnvironment

        url = config.env_url
        return lambda: RemoteEnvironment(
            url, config.env, perturbations=config.perturbations or None
        )
    return lambda: make(config.env, perturbations=config.perturbations or None)


def make_engine(
    agent: Agent,
    envs: Callable[[], Environment],
    model: Model | None,
    *,
    run_id: str,
    store: RunStore | None,
    concurrency: int,
    limits: Limits,
    max_retries: int,
    remote_env: bool = False,
    episode_metadata: Callable[[Task, int], Mapping[str, Any]] | None = None,
) -> RolloutEngine:
    """The one place a run's engine is built (``rollout``, ``evaluate``, each Ray worker).

    Environments step off the event loop when a step blocks: remote ones wait
    on the network, CodeAct's on a sandboxed interpreter. On the loop's thread
    such a step would stall every other episode in flight.
    """
    return RolloutEngine(
        agent,
        envs,
        model,
        run_id=run_id,
        concurrency=concurrency,
        limits=limits,
        max_retries=max_retries,
        store=store,
        env_in_thread=remote_env or agent.name.startswith("codeact"),
        episode_metadata=episode_metadata,
    )


def build_engine(
    config: RolloutConfig, model: Model | None, *, run_id: str, store: RunStore | None
) -> RolloutEngine:
    """The engine ``config`` describes (also what each Ray worker runs on its share)."""
    return make_engine(
        build_agent(config, model),
        env_factory(config),
        model,
        run_id=run_id,
        store=store,
        concurrency=config.concurrency,
        limits=Limits(max_tokens=config.max_tokens, max_seconds=config.max_seconds),
        max_retries=config.max_retries,
        remote_env=config.env_url is not None,
    )


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
    out = Path(out_dir)
    store = RunStore(out)
    try:
        check_resume(store, config)
        needs_model = get_agent(config.agent).needs_model
        on_ray = config.backend == "ray"
        if on_ray and model is not None:
            raise ValueError("the ray backend builds the model in each worker from config.model")
        if needs_model and model is None:
            if not config.model:
                raise ValueError(f"agent {config.agent!r} needs --model")
            if not on_ray:  # Ray workers build their own copies
                kwargs = {"base_url": config.base_url} if config.base_url else {}
                model = get_model(config.model, **kwargs)
        # On Ray the model lives only in the workers: the header names the configured id.
        model_id = model.id if model else config.model if needs_model else None
        run = Run(
            run_id=out.name,
            kind="rollout",
            model_id=model_id or config.agent,
            agent=config.agent,
            config=config.model_dump(mode="json"),
            git_hash=git_hash(),
            packages=package_versions(),
            palaestra_version=package_versions().get("palaestra", ""),
            host=platform.node(),
        )
        store.write_run(run)
        suite = tasks(config.env, config.split, config.n, config.difficulty, start=config.start)
        engine: RolloutEngine | RayRolloutBackend
        if on_ray:
            from palaestra.rollout._ray import RayRolloutBackend

            engine = RayRolloutBackend(config, run_id=run.run_id, store=store)
        else:
            engine = build_engine(
                config, model if needs_model else None, run_id=run.run_id, store=store
            )
            if isinstance(engine.agent, ReflexionAgent):
                engine.agent.remember(store.episodes())
        return run_with_progress(engine, suite, config.attempts, console or Console(), progress)
    finally:
        store.close()


def run_with_progress(
    engine: RolloutEngine | RayRolloutBackend,
    suite: list[Any],
    attempts: int,
    console: Console,
    show: bool,
) -> RolloutStats:
    """Run ``engine`` on ``suite`` x ``attempts`` under a rich progress bar; returns its stats."""
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
        engine.run(suite, attempts)
        bar.update(job, total=engine.stats.total, completed=engine.stats.done)
    return engine.stats
