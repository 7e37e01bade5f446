"""The environment contract: `Task`, `Observation`, `Environment`, `EnvError`.

This file is the single definition of how an environment is described and
driven. Everything else in Palaestra (agents, the rollout engine, the env
server, training data, evaluation) relies only on what is written here.

Semantics
---------
Task
    A seeded, serialisable description of one episode. ``task_id`` is a hash
    of ``(env_id, split, seed, difficulty, params)``: the same id gives the same
    start state, forever, on every machine. ``instruction`` is derived from
    those fields by the environment that generated the task; it is carried for
    readers (datasets, reports) and is not part of the identity.

reset(task) -> Observation
    Starts a new episode of ``task``. The observation's text contains the
    instruction. Calling ``reset`` again with the same task yields the same
    observation and, after the same actions, the same trajectory.

step(action) -> Observation
    Applies one action, a plain string. ``reward`` is the reward of this step.
    Rewards are in ``[0, 1]``; families pay their task score at the end of the
    episode, so the sum of rewards of an episode is its score.
    ``terminated`` means the task reached an end (solved, failed for good, or
    the agent committed to an answer); ``truncated`` means the episode was
    cut short from outside (step limit). After either, call ``reset``.
    ``info`` is JSON-serialisable and always carries:

    - ``step``: number of actions taken so far in this episode,
    - ``progress``: the same value as :meth:`Environment.progress`,
    - ``invalid``: whether this action was rejected,
    - ``invalid_kind``: ``"malformed"`` (does not parse), ``"invalid_action"``
      (parses but is impossible in this state), or ``None``,
    - ``invalid_count``: rejected actions so far in this episode,
    - ``success``: at termination only; whether the task was solved.

    A malformed or impossible action is never an exception: it returns an
    observation whose text explains what went wrong and how actions look, the
    state is unchanged, and the episode goes on.

EnvError
    Raised for infrastructure failures only (a dead server, a crashed
    simulator, a lost connection). Callers record it as an error outcome,
    never as a reward of 0. Programming errors (``step`` before ``reset``,
    a task for another environment) raise ``ResetNeeded`` / ``ValueError``.

progress() -> float
    Fraction of the task's subgoals met so far, in ``[0, 1]`` (AgentBoard's
    progress rate). 1.0 when solved.

available_actions() -> list[str]
    The actions that are valid in the current state, each a string that
    ``step`` accepts. For actions with free text (a search query, an answer),
    families list concrete useful instances.

expert() -> str
    An oracle: the next action of an optimal plan *from the current state*,
    whatever happened before. Following it from any reachable non-terminal
    state solves the task.

snapshot() / restore(snapshot)
    Capture and return to the full episode state. A snapshot is opaque and
    belongs to the environment instance that took it. The default
    implementation replays the episode's actions from the task seed, which is
    exact for the deterministic environments this contract requires; families
    override it with a direct state copy when replay is slow.
"""

from __future__ import annotations

import copy
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    computed_field,
    field_validator,
    model_validator,
)

# Defined in palaestra/errors.py with every other exception; re-exported from here, where
# they were defined before (palaestra.env re-exports them too).
from palaestra.errors import EnvError as EnvError
from palaestra.errors import ResetNeeded as ResetNeeded

Split = Literal["train", "test", "heldout"]
Difficulty = Literal["easy", "medium", "hard"]
InvalidKind = Literal["malformed", "invalid_action"]

SPLITS: tuple[Split, ...] = ("train", "test", "heldout")
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")


class Task(BaseModel):
    """One seeded episode description. Same ``task_id`` ⇒ same start state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env_id: str = Field(description="Registered environment id, e.g. 'shop-v1'.")
    split: Split = Field(description="'train', 'test' or 'heldout' (unseen vocabulary/templates).")
    seed: int = Field(
        ge=0, description="Generator seed; with the other fields it fixes the episode."
    )
    difficulty: Difficulty = Field(description="'easy', 'medium' or 'hard'.")
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="Family-specific generator parameters."
    )
    instruction: str = Field(description="The goal, in natural language, as shown to the agent.")

    @field_validator("env_id")
    @classmethod
    def _env_id_is_versioned(cls, v: str) -> str:
        if not v or "-v" not in v:
            raise ValueError(f"env_id {v!r} must be a versioned id such as 'shop-v1'")
        return v

    @computed_field
    @property
    def task_id(self) -> str:
        """Stable id: ``<env_id>/<split>/<difficulty>/<seed>-<hash of params>``."""
        key = json.dumps(
            [self.env_id, self.split, self.seed, self.difficulty, self.params],
            sort_keys=True,
            separators=(",", ":"),
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return f"{self.env_id}/{self.split}/{self.difficulty}/{self.seed}-{digest}"

    @model_validator(mode="wrap")
    @classmethod
    def _check_given_task_id(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # A serialised task carries its task_id; accept it, and refuse one that no
        # longer matches the fields (an edited file, or an incompatible writer).
        given = None
        if isinstance(data, dict) and "task_id" in data:
            data = dict(data)  # pyright: ignore[reportUnknownArgumentType]
            given = data.pop("task_id")
        task = handler(data)
        if given is not None and given != task.task_id:
            raise ValueError(
                f"task_id {given!r} does not match its fields (recomputed {task.task_id!r}); "
                "the task was edited or written by an incompatible version"
            )
        return task

    @classmethod
    def from_json(cls, data: str | bytes) -> Self:
        """Parse a task written by ``model_dump_json`` (its ``task_id`` is checked)."""
        return cls.model_validate_json(data)


class Observation(BaseModel):
    """What ``reset`` and ``step`` return."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="What the agent sees, in plain text.")
    reward: float = Field(default=0.0, description="Reward of this step, in [0, 1].")
    terminated: bool = Field(default=False, description="The task reached an end state.")
    truncated: bool = Field(default=False, description="The episode was cut short (step limit).")
    info: dict[str, Any] = Field(default_factory=dict, description="JSON-serialisable extras.")

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class _ReplaySnapshot(BaseModel):
    """Default snapshot: the task and the actions taken since reset."""

    model_config = ConfigDict(frozen=True)

    owner: int
    task: Task
    actions: tuple[str, ...]


class Environment(ABC):
    """Base class of every environment. Subclasses implement the underscored hooks.

    The public methods (``reset``, ``step``, ...) do the bookkeeping that every
    environment shares — step and invalid-action counters, the standard
    ``info`` keys, the episode-over guard — so families only write their world.
    """

    #: One paragraph on what the family is, shown by ``palaestra envs show``.
    description: ClassVar[str] = ""
    #: The action grammar, shown to agents and by ``palaestra envs show``.
    action_help: ClassVar[str] = ""
    #: Leading action words, used by the verb-renaming perturbation.
    action_verbs: ClassVar[tuple[str, ...]] = ()

    env_id: str = ""

    def __init__(self, env_id: str | None = None) -> None:
        if env_id is not None:
            self.env_id = env_id
        self._task: Task | None = None
        self._actions: list[str] = []
        self._invalid_count = 0
        self._done = False
        self._last: Observation | None = None

    # ---- hooks for families -------------------------------------------------

    @abstractmethod
    def make_task(
        self,
        seed: int,
        split: Split = "train",
        difficulty: Difficulty = "easy",
        **params: JsonValue,
    ) -> Task:
        """Generate the task for these fields (deterministic, cheap enough to call per seed).

        Args:
            seed: Picks the task within the split; the same fields give the same task.
            split: ``"train"``, ``"test"`` or ``"heldout"``; splits never share tasks.
            difficulty: ``"easy"``, ``"medium"`` or ``"hard"``.
            **params: Family-specific knobs (JSON values), part of the task's identity.

        Returns:
            The :class:`Task`, with ``env_id`` set and its ``instruction`` written.

        Raises:
            ValueError: An unknown or out-of-range parameter.
        """

    @abstractmethod
    def _reset(self, task: Task) -> str:
        """Build the episode's world for ``task``; return the first observation text."""

    @abstractmethod
    def _step(self, action: str) -> Observation:
        """Apply a stripped, non-empty action. Use :meth:`reject` for invalid actions."""

    @abstractmethod
    def available_actions(self) -> list[str]:
        """The actions valid in the current state.

        For actions with free text (a search query, an answer) families list
        concrete useful instances, so the list is a menu, not the whole grammar.

        Returns:
            Action strings, each one accepted by :meth:`step` in this state
            (``check_env`` verifies this).
        """

    @abstractmethod
    def progress(self) -> float:
        """How much of the task is done: the fraction of its subgoals met so far.

        AgentBoard's progress rate; it is also ``info["progress"]`` of every observation.

        Returns:
            A float in ``[0, 1]``; ``1.0`` when the task is solved.
        """

    @abstractmethod
    def expert(self) -> str:
        """The oracle's next action: a step of an optimal plan from the current state.

        Whatever happened before (mistakes, detours), following ``expert()`` from
        any reachable non-terminal state solves the task.

        Returns:
            One action string for :meth:`step`.

        Raises:
            RuntimeError: No episode to plan for (before the first :meth:`reset`;
                :class:`ResetNeeded` in most families).
            NotImplementedError: The environment has no oracle (``has_expert`` is
                False, e.g. a remote AgentGym server).
        """

    #: False for environments without an oracle (``expert()`` raises
    #: ``NotImplementedError``, e.g. remote AgentGym servers): ``check_env`` then
    #: skips the expert checks and the CLI says there is none.
    has_expert: bool = True

    #: True for environments whose observations carry third-party text (a web page, a
    #: document, an email): they implement :meth:`third_party_spans`, and the
    #: ``inject_instruction`` perturbation plants a prompt injection there.
    third_party_text: ClassVar[bool] = False

    def third_party_spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` character spans of ``text`` written by a third party, not the user.

        ``text`` is the observation this environment returned last (a valid one;
        the current state is available). Spans are where an attacker could have
        written: a product page, a retrieved document, a message body. Default:
        none; families that override it set :attr:`third_party_text`.
        """
        return []

    def _new_task(
        self,
        seed: int,
        split: Split,
        difficulty: Difficulty,
        params: Mapping[str, JsonValue],
        instruction: str,
    ) -> Task:
        """The :class:`Task` for this environment with these fields (for ``make_task``)."""
        return Task(
            env_id=self.env_id,
            split=split,
            seed=seed,
            difficulty=difficulty,
            params=dict(params),
            instruction=instruction,
        )

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (processes, files). Default: nothing to release."""

    # ---- the public contract ------------------------------------------------

    @property
    def task(self) -> Task | None:
        """The task of the current episode, or ``None`` before the first reset."""
        return self._task

    @property
    def last_observation(self) -> Observation | None:
        """The observation returned by the latest ``reset`` or ``step``."""
        return self._last

    @property
    def unwrapped(self) -> Environment:
        return self

    def reset(self, task: Task) -> Observation:
        """Start a new episode of ``task``, discarding the current one.

        The same task always gives the same first observation and, after the
        same actions, the same trajectory.

        Args:
            task: A task of this environment (from :meth:`make_task` or ``tasks()``).

        Returns:
            The first :class:`Observation`: its text contains the instruction,
            ``reward`` is 0, and ``info`` carries the standard keys (``step`` 0).

        Raises:
            TypeError: ``task`` is not a :class:`Task`.
            ValueError: The task belongs to another environment id.
            EnvError: The environment's infrastructure failed (a dead server or simulator).
        """
        if not isinstance(task, Task):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"reset() takes a Task, got {type(task).__name__}")
        if self.env_id and task.env_id != self.env_id:
            raise ValueError(f"task {task.task_id!r} is for {task.env_id!r}, not {self.env_id!r}")
        self._task = task
        self._actions = []
        self._invalid_count = 0
        self._done = False
        text = self._reset(task)
        self._last = Observation(text=text, info=self._base_info(invalid_kind=None))
        return self._last

    def step(self, action: str) -> Observation:
        """Apply one action and return what follows.

        A malformed or impossible action is not an error: the observation says
        what went wrong and how actions look, ``info["invalid"]`` is True, the
        state is unchanged and the episode goes on. After an observation with
        ``terminated`` or ``truncated`` set, call :meth:`reset`.

        Args:
            action: The agent's action, a plain string (surrounding and repeated
                whitespace is collapsed before the environment sees it).

        Returns:
            The :class:`Observation`: ``text``; ``reward`` of this step in ``[0, 1]``
            (an episode's rewards sum to its score); ``terminated`` (the task reached
            an end); ``truncated`` (cut short from outside, e.g. the step limit);
            ``info`` with ``step``, ``progress``, ``invalid``, ``invalid_kind``,
            ``invalid_count``, and ``success`` once terminated.

        Raises:
            ResetNeeded: No episode is running (before the first reset, or after its end).
            TypeError: ``action`` is not a str.
            EnvError: The environment's infrastructure failed (a dead server or simulator);
                callers record an error outcome, never a reward of 0.
        """
        if self._task is None:
            raise ResetNeeded("call reset(task) before step()")
        if self._done:
            raise ResetNeeded("the episode is over (terminated or truncated); call reset(task)")
        if not isinstance(action, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"an action is a str, got {type(action).__name__}")
        clean = " ".join(action.split())
        self._actions.append(action)
        if not clean:
            obs = self.reject("Empty action. " + self._grammar_hint(), kind="malformed")
        else:
            obs = self._step(clean)
        kind = obs.info.get("invalid_kind")
        if kind is not None:
            self._invalid_count += 1
        info = {**obs.info, **self._base_info(invalid_kind=kind)}
        if obs.terminated:
            info.setdefault("success", False)
        self._done = obs.terminated or obs.truncated
        self._last = obs.model_copy(update={"info": info})
        return self._last

    def close(self) -> None:
        """Release what the environment holds (processes, sandboxes, browsers, files).

        Call it when done with the environment (``contextlib.closing(make(...))``
        does); an environment that holds nothing does nothing here.
        """
        self._close()

    def reject(self, feedback: str, kind: InvalidKind = "invalid_action") -> Observation:
        """Build the observation for an invalid action: state unchanged, text explains why."""
        return Observation(text=feedback, info={"invalid_kind": kind})

    def snapshot(self) -> object:
        if self._task is None:
            raise ResetNeeded("nothing to snapshot before reset(task)")
        return _ReplaySnapshot(owner=id(self), task=self._task, actions=tuple(self._actions))

    def restore(self, snapshot: object) -> None:
        if not isinstance(snapshot, _ReplaySnapshot) or snapshot.owner != id(self):
            raise ValueError("restore() takes a snapshot taken by this environment instance")
        self.reset(snapshot.task)
        for a in snapshot.actions:
            self.step(a)

    # ---- helpers ------------------------------------------------------------

    def _grammar_hint(self) -> str:
        return f"Valid actions look like: {self.action_help}" if self.action_help else ""

    def _base_info(self, invalid_kind: str | None) -> dict[str, Any]:
        return {
            "step": len(self._actions),
            "progress": self.progress(),
            "invalid": invalid_kind is not None,
            "invalid_kind": invalid_kind,
            "invalid_count": self._invalid_count,
        }

    def _snapshot_base(self) -> dict[str, Any]:
        """Bookkeeping state for families that override ``snapshot`` with a state copy."""
        return {
            "owner": id(self),
            "task": self._task,
            "actions": list(self._actions),
            "invalid_count": self._invalid_count,
            "done": self._done,
            "last": self._last,
        }

    def _restore_base(self, state: Mapping[str, Any]) -> None:
        if state.get("owner") != id(self):
            raise ValueError("restore() takes a snapshot taken by this environment instance")
        self._task = state["task"]
        self._actions = list(state["actions"])
        self._invalid_count = state["invalid_count"]
        self._done = state["done"]
        self._last = state["last"]

    def __repr__(self) -> str:
        task = self._task.task_id if self._task else None
        return f"<{type(self).__name__} {self.env_id or '?'} task={task}>"


class StateSnapshotMixin:
    """Snapshot by deep-copying ``self.state`` (a family's whole mutable episode state).

    Mix in before :class:`Environment`; the family keeps everything that
    changes during an episode in ``self.state``.
    """

    state: Any

    def snapshot(self) -> object:
        env: Any = self
        if env.task is None:
            raise ResetNeeded("nothing to snapshot before reset(task)")
        return {"base": env._snapshot_base(), "state": copy.deepcopy(self.state)}

    def restore(self, snapshot: object) -> None:
        env: Any = self
        if not isinstance(snapshot, dict) or "base" not in snapshot:
            raise ValueError("restore() takes a snapshot taken by this environment instance")
        snap: dict[str, Any] = snapshot  # pyright: ignore[reportUnknownVariableType]
        env._restore_base(snap["base"])
        self.state = copy.deepcopy(snap["state"])
