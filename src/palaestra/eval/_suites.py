"""Evaluation suites: named, versioned, fixed panels of tasks, and the environment that plays them.

A suite (``heldin-v1``) is a list of entries, each an environment id, a
split, seeds (``start``/``n`` or an explicit list), a difficulty (one, a
list cycled over the seeds, or all three cycled), optional generator
``params``, optional perturbations with their seed, and a group label
(``heldin``, ``heldout``, ``perturbed``, ...) that reports aggregate over.
:func:`suite_tasks` turns it into :class:`~palaestra.env.Task` objects; task
ids hash only the entry's fields, so the same suite id gives the same tasks
forever. A changed panel is a new version (``heldin-v2``); built-in ids are
pinned by a test.

Built-in suites are YAML files in ``suites/`` (package data); users write
the same format and pass its path wherever a suite id is accepted.

A perturbed task (AgentRefine's robustness test: "AgentRefine: Enhancing
Agent Generalization through Refinement Tuning", Fu et al.) carries its
perturbation in ``Task.params`` (``{"perturb": [...], "perturb_seed": s}``),
so it has its own task id and is stored apart from the plain task. The
families reject unknown params, so :class:`SuiteEnv` strips those two keys
and plays the plain task on ``make(env_id, perturbations=..., perturbation_seed=s)``:
a perturbed suite task plays exactly like the plain task under the
:class:`~palaestra.env.Perturb` wrapper.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, NamedTuple, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from palaestra._config import yaml_error_message
from palaestra.env import (
    ALL_PERTURBATIONS,
    DIFFICULTIES,
    Difficulty,
    Environment,
    Observation,
    Perturbation,
    Split,
    Task,
    make,
)

#: ``Task.params`` keys that carry a suite task's perturbation (never seen by the family).
PERTURB_KEY = "perturb"
PERTURB_SEED_KEY = "perturb_seed"

_SUITE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*-v\d+$")


class SuiteEntry(BaseModel):
    """One slice of a suite: tasks of one environment, split and perturbation setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str = Field(description="Registered environment id, e.g. 'shop-v1'.")
    split: Split = Field(default="test", description="train, test or heldout.")
    n: int | None = Field(
        default=None, ge=1, description="Number of tasks, seeds start..start+n-1."
    )
    start: int = Field(default=0, ge=0, description="First seed (with n).")
    seeds: list[int] | None = Field(default=None, description="Explicit seeds (instead of n).")
    difficulty: Difficulty | list[Difficulty] | None = Field(
        default=None,
        description="One difficulty, a list cycled over the seeds, or null: easy, medium, hard cycled.",
    )
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="Family generator parameters (see `palaestra envs show`)."
    )
    perturbations: list[Perturbation] = Field(
        default_factory=list[Perturbation], description="AgentRefine-style perturbations."
    )
    perturbation_seed: int = Field(default=0, ge=0, description="Seed of the perturbations.")
    group: str | None = Field(
        default=None,
        description="Report group; default: perturbed if perturbed, else heldout for the "
        "heldout split, else heldin.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (self.n is None) == (self.seeds is None):
            raise ValueError("give exactly one of 'n' (with optional 'start') or 'seeds'")
        if self.seeds is not None:
            if self.start:
                raise ValueError("'start' goes with 'n', not with 'seeds'")
            if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
                raise ValueError("'seeds' must be a non-empty list of distinct integers >= 0")
        if isinstance(self.difficulty, list) and not self.difficulty:
            raise ValueError("'difficulty' must not be an empty list")
        reserved = {PERTURB_KEY, PERTURB_SEED_KEY} & set(self.params)
        if reserved:
            raise ValueError(
                f"params {sorted(reserved)} are reserved; use 'perturbations' and "
                "'perturbation_seed'"
            )
        if self.perturbation_seed and not self.perturbations:
            raise ValueError("'perturbation_seed' is set but 'perturbations' is empty")
        if self.group is not None and not self.group.strip():
            raise ValueError("'group' must not be empty")
        return self

    @property
    def seed_list(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        assert self.n is not None  # the validator ensures one of the two
        return list(range(self.start, self.start + self.n))

    @property
    def levels(self) -> list[Difficulty]:
        if self.difficulty is None:
            return list(DIFFICULTIES)
        return [self.difficulty] if isinstance(self.difficulty, str) else list(self.difficulty)

    @property
    def resolved_group(self) -> str:
        if self.group is not None:
            return self.group
        if self.perturbations:
            return "perturbed"
        return "heldout" if self.split == "heldout" else "heldin"


class Suite(BaseModel):
    """A named, versioned, fixed panel of tasks. Same id ⇒ same tasks, forever."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="Versioned id, e.g. 'heldin-v1'.")
    description: str = Field(default="", description="What the suite measures.")
    entries: list[SuiteEntry] = Field(min_length=1, description="The suite's slices.")

    @model_validator(mode="after")
    def _check_id(self) -> Self:
        if not _SUITE_ID_RE.match(self.id):
            raise ValueError(
                f"suite id {self.id!r} is not versioned: use lower-case 'name-vN', e.g. 'mysuite-v1'"
            )
        return self

    @property
    def version(self) -> int:
        return int(self.id.rsplit("-v", 1)[1])


class SuiteTask(NamedTuple):
    """One task of a suite, with the group it reports under and its perturbations."""

    task: Task
    group: str
    perturbations: tuple[Perturbation, ...]


# ---- perturbed tasks -------------------------------------------------------------------


def perturbed_task(task: Task, perturbations: list[Perturbation], seed: int = 0) -> Task:
    """``task`` with ``perturbations`` recorded in its params (a new task id); as is if none."""
    if not perturbations:
        return task
    unknown = [p for p in perturbations if p not in ALL_PERTURBATIONS]
    if unknown:
        raise ValueError(
            f"unknown perturbation(s) {unknown}; choose from {list(ALL_PERTURBATIONS)}"
        )
    # Canonical order, so the same set of perturbations is the same task id.
    ordered: list[JsonValue] = [p for p in ALL_PERTURBATIONS if p in perturbations]
    params: dict[str, JsonValue] = {**task.params, PERTURB_KEY: ordered, PERTURB_SEED_KEY: seed}
    return Task(
        env_id=task.env_id,
        split=task.split,
        seed=task.seed,
        difficulty=task.difficulty,
        params=params,
        instruction=task.instruction,
    )


def split_perturbation(task: Task) -> tuple[Task, tuple[Perturbation, ...], int]:
    """The plain task a (possibly) perturbed task perturbs, its perturbations and their seed."""
    if PERTURB_KEY not in task.params:
        return task, (), 0
    raw = task.params[PERTURB_KEY]
    seed = task.params.get(PERTURB_SEED_KEY, 0)
    if not isinstance(raw, list) or not isinstance(seed, int):
        raise ValueError(f"task {task.task_id}: malformed {PERTURB_KEY!r} params {task.params}")
    perts: tuple[Perturbation, ...] = tuple(p for p in ALL_PERTURBATIONS if p in raw)
    if len(perts) != len(raw):
        raise ValueError(f"task {task.task_id}: unknown perturbation(s) in {raw}")
    params = {k: v for k, v in task.params.items() if k not in (PERTURB_KEY, PERTURB_SEED_KEY)}
    plain = Task(
        env_id=task.env_id,
        split=task.split,
        seed=task.seed,
        difficulty=task.difficulty,
        params=params,
        instruction=task.instruction,
    )
    return plain, perts, seed


# ---- suite → tasks ---------------------------------------------------------------------


def suite_tasks(suite: Suite) -> list[SuiteTask]:
    """The suite's tasks, in entry order. Deterministic: same suite ⇒ same tasks, everywhere."""
    out: list[SuiteTask] = []
    where: dict[str, int] = {}
    for i, entry in enumerate(suite.entries):
        try:
            # With the entry's perturbations: make refuses the ones this env cannot take.
            env = make(entry.env, max_episode_steps=0, perturbations=entry.perturbations or None)
        except KeyError as e:
            raise ValueError(f"suite {suite.id!r}: entries.{i}.env: {e.args[0]}") from None
        except ValueError as e:
            raise ValueError(f"suite {suite.id!r}: entries.{i} ({entry.env}): {e}") from None
        levels = entry.levels
        try:
            for j, seed in enumerate(entry.seed_list):
                plain = env.make_task(seed, entry.split, levels[j % len(levels)], **entry.params)
                task = perturbed_task(plain, entry.perturbations, entry.perturbation_seed)
                if task.task_id in where:
                    raise ValueError(
                        f"task {task.task_id} is in entries.{where[task.task_id]} and entries.{i}; "
                        "a suite lists each task once"
                    )
                where[task.task_id] = i
                out.append(SuiteTask(task, entry.resolved_group, tuple(entry.perturbations)))
        except ValueError as e:
            raise ValueError(f"suite {suite.id!r}: entries.{i} ({entry.env}): {e}") from None
        finally:
            env.close()
    return out


def suite_fingerprint(suite: Suite) -> str:
    """A short hash of the suite's task ids, groups and perturbations (what results depend on)."""
    rows = [[t.task.task_id, t.group] for t in suite_tasks(suite)]
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()[:16]


# ---- registry --------------------------------------------------------------------------


def _builtin_files() -> dict[str, str]:
    folder = files("palaestra.eval").joinpath("suites")
    return {
        f.name.removesuffix(".yaml"): f.read_text()
        for f in folder.iterdir()
        if f.name.endswith(".yaml")
    }


@cache
def _builtin() -> dict[str, Suite]:
    suites: dict[str, Suite] = {}
    for name, text in sorted(_builtin_files().items()):
        suite = _parse(text, f"built-in suite {name}.yaml")
        if suite.id != name:  # a packaging bug, not a user error
            raise RuntimeError(f"built-in suite file {name}.yaml declares id {suite.id!r}")
        suites[name] = suite
    return suites


def list_suites() -> list[str]:
    """Ids of the built-in suites."""
    return list(_builtin())


def _format_errors(e: ValidationError, source: str) -> str:
    lines: list[str] = []
    for err in e.errors():
        loc = ".".join(map(str, err["loc"])) or "(suite)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            model = SuiteEntry if "entries" in err["loc"] else Suite
            msg += f"; valid keys are: {', '.join(model.model_fields)}"
        lines.append(f"  {loc}: {msg}")
    return f"invalid suite in {source}:\n" + "\n".join(lines)


def _parse(text: str, source: str) -> Suite:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(yaml_error_message(e, source)) from None
    if not isinstance(data, dict):
        raise ValueError(f"{source} must hold a mapping with keys id, description, entries")
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise ValueError(_format_errors(e, source)) from None


def load_suite(path: str | Path) -> Suite:
    """Read a user suite from a YAML file; errors name the file and the bad field.

    The suite is resolved once (unknown environments and bad generator params
    are reported here), and a file may not reuse a built-in id for other tasks.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"suite file {p} does not exist")
    suite = _parse(p.read_text(), str(p))
    builtin = _builtin().get(suite.id)
    if builtin is not None and builtin != suite:
        raise ValueError(
            f"{p}: suite id {suite.id!r} is a built-in suite with other tasks; suite ids never "
            "change meaning: give yours its own id"
        )
    try:
        suite_tasks(suite)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None
    return suite


def get_suite(id_or_path: str | Path) -> Suite:
    """A built-in suite by id, or a user suite from a ``.yaml``/``.yml`` file path."""
    name = str(id_or_path)
    if isinstance(id_or_path, Path) or name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_suite(name)
    suites = _builtin()
    if name in suites:
        return suites[name]
    close = difflib.get_close_matches(name, list(suites), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"no suite {name!r}.{hint} Built-in suites: {', '.join(suites)}; "
        "or pass the path of a suite .yaml file"
    )


# ---- the environment that plays a suite ------------------------------------------------

#: Builds the environment for (env id, perturbations, perturbation seed).
EnvBuilder = Callable[[str, tuple[Perturbation, ...], int], Environment]


def _make(env_id: str, perturbations: tuple[Perturbation, ...], seed: int) -> Environment:
    return make(env_id, perturbations=list(perturbations) or None, perturbation_seed=seed)


class _SuiteSnapshot(NamedTuple):
    task: Task
    inner: object


class SuiteEnv(Environment):
    """Plays any task of any suite: one inner environment per (env, perturbations, seed).

    ``reset(task)`` strips the perturbation params (see the module docstring)
    and resets the matching inner environment — built with ``make`` (the
    registered step limit included) and kept for later tasks — with the plain
    task. ``task`` stays the suite task, so episodes record it.

    :meth:`select` makes a task's environment current before ``reset``:
    agents build their system prompt (``description``, ``action_help``)
    before they reset, and under ``rename_verbs`` that prompt must already
    show this task's verbs.
    """

    def __init__(self, builder: EnvBuilder = _make) -> None:
        super().__init__()
        self._builder = builder
        self._envs: dict[tuple[str, tuple[Perturbation, ...], int], Environment] = {}
        self._current: Environment | None = None
        self._selected: tuple[Task, Task] | None = None  # (suite task, plain task)

    def select(self, task: Task) -> Environment:
        """Make ``task``'s environment current (and configure its perturbations for it)."""
        plain, perts, seed = split_perturbation(task)
        key = (task.env_id, perts, seed)
        env = self._envs.get(key)
        if env is None:
            env = self._envs[key] = self._builder(*key)
        self._current = env
        self._selected = (task, plain)
        if perts:
            # Perturb draws a task's renamed verbs at reset; an extra reset of this
            # cheap, deterministic episode makes action_help right for the prompt.
            env.reset(plain)
        return env

    @property
    def inner(self) -> Environment:
        if self._current is None:
            raise RuntimeError("SuiteEnv has no current environment: call select(task) or reset")
        return self._current

    description = property(lambda self: self._current.description if self._current else "")  # pyright: ignore[reportAssignmentType]
    action_help = property(lambda self: self._current.action_help if self._current else "")  # pyright: ignore[reportAssignmentType]
    action_verbs = property(lambda self: self._current.action_verbs if self._current else ())  # pyright: ignore[reportAssignmentType]

    @property
    def unwrapped(self) -> Environment:
        return self.inner.unwrapped

    @property
    def task(self) -> Task | None:
        return self._selected[0] if self._selected and self.inner.task is not None else None

    @property
    def last_observation(self) -> Observation | None:
        return self._current.last_observation if self._current else None

    def make_task(
        self, seed: int, split: Split = "train", difficulty: Difficulty = "easy", **params: Any
    ) -> Task:
        raise TypeError("SuiteEnv plays suite tasks; make them with suite_tasks(suite)")

    def reset(self, task: Task) -> Observation:
        if self._selected is None or self._selected[0] != task:
            self.select(task)
        assert self._selected is not None
        return self.inner.reset(self._selected[1])

    def step(self, action: str) -> Observation:
        return self.inner.step(action)

    def available_actions(self) -> list[str]:
        return self.inner.available_actions()

    def progress(self) -> float:
        return self.inner.progress()

    def expert(self) -> str:
        return self.inner.expert()

    def snapshot(self) -> object:
        if self._selected is None:
            raise RuntimeError("nothing to snapshot before reset(task)")
        return _SuiteSnapshot(self._selected[0], self.inner.snapshot())

    def restore(self, snapshot: object) -> None:
        if not isinstance(snapshot, _SuiteSnapshot):
            raise ValueError("restore() takes a snapshot taken by a SuiteEnv")
        self.select(snapshot.task)
        self.inner.restore(snapshot.inner)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._current = None
        self._selected = None

    def _reset(self, task: Task) -> str:  # pragma: no cover - reset is overridden
        raise NotImplementedError

    def _step(self, action: str) -> Observation:  # pragma: no cover - step is overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<SuiteEnv current={self._current!r} built={len(self._envs)}>"
