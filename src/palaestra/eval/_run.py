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

Resumable like ``palaestra rollout``, and driven by the same code
(:func:`palaestra.rollout.open_run`), so it runs on either backend
(``backend: ray``): re-running the same command runs only the missing (task,
epoch) pairs, and a config that changes what an episode means (agent, model,
suite tasks, budgets, decoding) is refused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError
from rich.console import Console

from palaestra._config import config_changes, load_config, refuse_changes
from palaestra.agent import Agent, AgentLoop
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
from palaestra.model import Model
from palaestra.rollout import (
    RESUMABLE_SETTINGS,
    EngineParts,
    RolloutStats,
    RunSettings,
    build_agent,
    open_run,
    turns_field,
)
from palaestra.trajectory import RunStore

#: Fields that may change when a run is resumed (they do not change what an episode means).
RESUMABLE_CHANGES = RESUMABLE_SETTINGS


class EvalConfig(RunSettings):
    """Everything an eval run needs; stored in the run header (``suite`` as the suite id)."""

    model_config = ConfigDict(extra="forbid")

    suite: str = Field(description="Suite id (heldin-v1, ...) or the path of a suite .yaml file.")
    max_turns: int = turns_field(
        100,
        "Agent turns per episode, format errors included; each environment's own step limit "
        "(shop 30, house 50, toolqa 20, maze 100) usually ends an episode first.",
    )


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


class SuiteMetadata:
    """``Episode.metadata`` of a suite's episodes by task id (picklable, for Ray's workers)."""

    def __init__(self, by_task: Mapping[str, dict[str, Any]]) -> None:
        self.by_task = dict(by_task)

    def __call__(self, task: Task, attempt: int) -> dict[str, Any]:
        return copy.deepcopy(self.by_task[task.task_id])


def suite_parts(suite: Suite, items: list[SuiteTask]) -> EngineParts:
    """The engine parts of an eval: one ``SuiteEnv`` plays every task, the agent points it."""
    return EngineParts(
        envs=SuiteEnv,
        wrap_agent=SuiteAgent,
        episode_metadata=SuiteMetadata(episode_metadata(suite, items)),
    )


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


def build_suite_agent(config: EvalConfig, model: Model | None, env_id: str = "") -> SuiteAgent:
    """The agent ``config`` describes, wrapped for suite play (``env_id`` is unused; kept
    for one release)."""
    return SuiteAgent(build_agent(config, model))


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
    with open_run(
        config,
        out_dir,
        kind="eval",
        parts=suite_parts(suite, items),
        header_config=run_config(config, suite),
        check_resume=lambda store: check_resume(store, config, suite),
        model=model,
    ) as run:
        return run.execute([st.task for st in items], console=console, progress=progress)
