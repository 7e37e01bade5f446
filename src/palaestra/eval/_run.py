"""``evaluate(config, out_dir)``: run an agent on a suite, every task for ``epochs`` epochs.

An eval run is a normal run directory written by the rollout engine: one
:class:`~palaestra.trajectory.RunStore` with ``Run.kind == "eval"`` and the
eval config (``suite`` = the suite id) in ``Run.config``. Every episode's
``metadata`` holds ``suite``, ``suite_group``, ``perturbations`` (a list,
empty when none) and ``base_task_id`` (the unperturbed task, for pairing a
perturbed task with its held-in original); epochs are ``Episode.attempt``.
Outcomes are the engine's (success, failure, limit, error).

One engine runs the whole suite, so model calls of all families batch
together: a :class:`~palaestra.eval._suites.SuiteEnv` plays every task, and
:class:`SuiteAgent` points it at each task before the agent builds its prompt.

Epochs are independent samples (tau-bench's pass^k needs that): agents vary
the sampling seed by attempt (``palaestra.agent.for_attempt``); at
temperature 0 the seed is left alone, so epochs batch together.

Resumable like ``palaestra rollout``: re-running the same command runs only
the missing (task, epoch) pairs, and a config that changes what an episode
means (agent, model, suite tasks, budgets, decoding) is refused.
"""

from __future__ import annotations

import copy
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator
from rich.console import Console

from palaestra._config import config_changes, load_config, refuse_changes
from palaestra.agent import AGENTS, Agent, AgentLoop, ReflexionAgent, get_agent
from palaestra.env import Environment, Task
from palaestra.eval._suites import (
    Suite,
    SuiteEnv,
    SuiteTask,
    get_suite,
    split_perturbation,
    suite_fingerprint,
    suite_tasks,
)
from palaestra.model import Model, get_model
from palaestra.rollout._config import AgentSettings, RolloutConfig
from palaestra.rollout._engine import Limits, RolloutStats
from palaestra.rollout._run import (
    build_agent,
    git_hash,
    make_engine,
    package_versions,
    run_with_progress,
)
from palaestra.trajectory import Run, RunStore

#: Fields that may change when a run is resumed (they do not change what an episode means).
RESUMABLE_CHANGES = frozenset({"concurrency", "epochs", "max_retries", "base_url"})


#: Agents announced in the CLI but not implemented yet, with what to use meanwhile.
class EvalConfig(AgentSettings):
    """Everything an eval run needs; stored in the run header (``suite`` as the suite id)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        description="Model id (hf/..., openai/..., gemma-270m, tiny). Not needed for the "
        "expert and random agents.",
    )
    base_url: str | None = Field(default=None, description="Server URL for openai/ models.")
    suite: str = Field(description="Suite id (heldin-v1, ...) or the path of a suite .yaml file.")
    epochs: int = Field(default=1, ge=1, description="Episodes per task (k of pass@k, pass^k).")
    concurrency: int = Field(default=8, ge=1, description="Episodes in flight at once.")
    max_steps: int = Field(
        default=100,
        ge=1,
        description="Agent turns per episode, format errors included; each environment's own "
        "step limit (shop 30, house 50, toolqa 20, maze 100) usually ends an episode first.",
    )
    max_tokens: int | None = Field(
        default=None, ge=1, description="Token budget per episode (prompt + completion)."
    )
    max_seconds: float | None = Field(default=None, gt=0, description="Wall time per episode.")
    max_retries: int = Field(default=2, ge=0, description="Retries of an episode after an error.")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature (0 = greedy).")
    max_prompt_tokens: int = Field(default=3072, ge=64, description="History budget per prompt.")
    seed: int = Field(default=0, ge=0, description="Sampling seed (epoch e > 0 derives its own).")

    @field_validator("agent")
    @classmethod
    def _known_agent(cls, v: str) -> str:
        if v in AGENTS:
            return v
        raise ValueError(f"unknown agent {v!r}; choose one of {', '.join(AGENTS)}")


def load_eval_config(path: str | Path | None = None, **overrides: Any) -> EvalConfig:
    """Build a config from an optional YAML file and flags (``None`` = not given).

    Precedence: flag > file > default; unknown keys in the file are named.
    """
    return load_config(EvalConfig, path, "eval", overrides)


class SuiteAgent(Agent):
    """Wraps an agent for suite play: points the suite's environment at each task first."""

    def __init__(self, inner: Agent) -> None:
        self.inner = inner
        self.name = inner.name
        self.needs_model = inner.needs_model
        self.attempts_in_order = inner.attempts_in_order

    def run(self, env: Environment, task: Task, attempt: int = 0) -> AgentLoop:
        if isinstance(env, SuiteEnv):
            env.select(task)
        return (yield from self.inner.run(env, task, attempt))


def episode_metadata(suite: Suite, items: list[SuiteTask]) -> dict[str, dict[str, Any]]:
    """The ``Episode.metadata`` each task of ``suite`` gets, by task id."""
    return {
        st.task.task_id: {
            "suite": suite.id,
            "suite_group": st.group,
            "perturbations": list(st.perturbations),
            "base_task_id": split_perturbation(st.task)[0].task_id,
        }
        for st in items
    }


def run_config(config: EvalConfig, suite: Suite) -> dict[str, Any]:
    """What the run header stores: the config with ``suite`` as the id, plus the suite itself."""
    return {
        **config.model_dump(mode="json"),
        "suite": suite.id,
        "suite_fingerprint": suite_fingerprint(suite),
        "suite_definition": suite.model_dump(mode="json"),
    }


def check_resume(store: RunStore, config: EvalConfig, suite: Suite) -> None:
    """Refuse to resume a run directory with a config that changes what episodes mean."""
    run = store.run()
    if run is None:
        return
    if run.kind != "eval":
        raise ValueError(
            f"{store.run_dir} holds a {run.kind!r} run, not an eval run; use a new --out directory"
        )
    stored = dict(run.config)
    old_print = stored.pop("suite_fingerprint", None)
    stored.pop("suite_definition", None)
    try:
        old = EvalConfig.model_validate(stored)
    except ValidationError as e:
        raise ValueError(
            f"{store.run_dir} holds an eval config this version cannot read ({e.error_count()} "
            "error(s)); use a new --out directory"
        ) from None
    new = config.model_copy(update={"suite": suite.id})
    diffs = config_changes(old, new, RESUMABLE_CHANGES)
    new_print = suite_fingerprint(suite)
    if old.suite == suite.id and old_print != new_print:
        diffs.append(f"tasks of suite {suite.id!r}: {old_print} -> {new_print}")
    refuse_changes(store.run_dir, "an eval run", diffs)


def build_suite_agent(config: EvalConfig, model: Model | None, env_id: str) -> SuiteAgent:
    # build_agent reads the agent and decoding fields; RolloutConfig also wants an env id.
    settings = RolloutConfig(
        env=env_id,
        agent=config.agent,
        max_steps=config.max_steps,
        max_prompt_tokens=config.max_prompt_tokens,
        prompt=config.prompt,
        search=config.search,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        seed=config.seed,
    )
    inner = build_agent(settings, model)
    return SuiteAgent(inner)


def evaluate(
    config: EvalConfig,
    out_dir: str | Path,
    *,
    model: Model | None = None,
    console: Console | None = None,
    progress: bool = True,
) -> RolloutStats:
    """Run (or resume) the evaluation described by ``config`` into ``out_dir``.

    ``model`` overrides ``config.model`` (for tests and notebooks that hold a model already).
    """
    suite = get_suite(config.suite)
    items = suite_tasks(suite)
    out = Path(out_dir)
    store = RunStore(out)
    try:
        check_resume(store, config, suite)
        needs_model = get_agent(config.agent).needs_model
        if needs_model and model is None:
            if not config.model:
                raise ValueError(f"agent {config.agent!r} needs --model")
            kwargs = {"base_url": config.base_url} if config.base_url else {}
            model = get_model(config.model, **kwargs)
        if not needs_model:
            model = None
        store.write_run(
            Run(
                run_id=out.name,
                kind="eval",
                model_id=model.id if model else config.agent,
                agent=config.agent,
                config=run_config(config, suite),
                git_hash=git_hash(),
                packages=package_versions(),
                palaestra_version=package_versions().get("palaestra", ""),
                host=platform.node(),
            )
        )
        agent = build_suite_agent(config, model, items[0].task.env_id)
        if isinstance(agent.inner, ReflexionAgent):
            agent.inner.remember(store.episodes())
        meta: Mapping[str, dict[str, Any]] = episode_metadata(suite, items)
        engine = make_engine(
            agent,
            SuiteEnv,
            model,
            run_id=out.name,
            store=store,
            concurrency=config.concurrency,
            limits=Limits(max_tokens=config.max_tokens, max_seconds=config.max_seconds),
            max_retries=config.max_retries,
            episode_metadata=lambda task, _attempt: copy.deepcopy(meta[task.task_id]),
        )
        tasks = [st.task for st in items]
        return run_with_progress(engine, tasks, config.epochs, console or Console(), progress)
    finally:
        store.close()
