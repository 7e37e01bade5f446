"""TRL adapter: Palaestra environments as ``GRPOTrainer(environment_factory=...)`` environments.

Follows the ``environment_factory`` protocol of TRL 1.16 (experimental there;
read from ``trl/trainer/grpo_trainer.py``):

- the factory is a zero-argument callable; the trainer builds one instance
  per concurrent rollout, pools them, and reuses them across batches;
- before each rollout it calls ``reset(**row)`` with every column of the
  dataset row (``prompt`` included); a returned string is appended, as is, to
  the content of the prompt's last user message;
- every public method of the class other than ``reset`` and ``get_reward``
  (found with ``inspect.getmembers(type(env), inspect.isfunction)``) is a
  tool; its schema comes from its signature and Google-style docstring
  (``transformers.utils.get_json_schema``); the tool's return value, as
  ``str``, becomes the tool message; an exception becomes ``{"error": ...}``;
- ``get_reward()`` is called once per finished rollout and is one more reward
  source (weight 1, logged under the class name); ``None`` marks the rollout
  unscorable (excluded from the group baseline, advantage 0).

Here the single tool is ``act(action)``: one environment step. The reward is
the sum of the episode's step rewards, i.e. its score (0 when the model
stopped before the episode ended). An infrastructure failure
(:class:`~palaestra.env.EnvError`) makes ``get_reward`` return ``None``,
never 0, as the environment contract requires. So does an *overflow*: TRL
calls the tool, then drops its result when it would not fit
``max_completion_length`` and ends the rollout there, so the model never saw
what its last action did. The adapter cannot see tokens; it keeps every
result it returned (``results``) so the trainer side can tell a dropped one
and set ``overflow`` (``palaestra train rl --mode tool`` does, see
``palaestra/train/_rl_tool.py``).

The adapter needs nothing from TRL itself; :func:`tasks_dataset` needs
``datasets`` (the ``[train]`` extra).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from palaestra.env._core import Difficulty, EnvError, Environment, Observation, Split, Task
from palaestra.env._registry import make, spec, tasks

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "PalaestraTRLEnv",
    "dataset_of_tasks",
    "tasks_dataset",
    "tool_intro",
    "trl_environment_factory",
]

_INTRO = (
    "You are an agent in a text environment. Act by calling the `act` tool with one action at a "
    "time; each call returns what you observe next. {help}Keep acting until the task is done.\n\n"
)


class PalaestraTRLEnv:
    """One rollout's environment for TRL's ``GRPOTrainer``; build it with :func:`trl_environment_factory`.

    Public attributes other than the methods are views for callers (``task``,
    ``actions``, ``results``, ``rewards``, ``done``, ``success``, ``progress``,
    ``error``, ``overflow``); they are properties, which TRL does not mistake
    for tools. Only ``overflow`` can be set.
    """

    def __init__(self, env: Environment, draw_task: Callable[[], Task] | None = None) -> None:
        self._env = env
        self._draw_task = draw_task
        self._task: Task | None = None
        self._actions: list[str] = []
        self._results: list[str] = []
        self._rewards: list[float] = []
        self._done = False
        self._success = False
        self._error: str | None = None
        self._overflow: str | None = None

    # ---- TRL protocol -----------------------------------------------------------

    def reset(self, **row: Any) -> str:
        """Start the episode of the row's ``task`` column and return the first observation."""
        self._task = self._row_task(row)
        self._actions, self._results, self._rewards = [], [], []
        self._done, self._success = False, False
        self._error, self._overflow = None, None
        try:
            return self._env.reset(self._task).text
        except EnvError as e:
            self._fail(e)
            return f"The environment failed to start ({e}). There is nothing to do."

    def act(self, action: str) -> str:
        """Take one action in the environment and return what you observe next.

        Args:
            action: The action to take, written as the task's instructions describe (one action per call).
        """
        if self._task is None:
            raise RuntimeError("act() before reset(): the trainer must reset the environment first")
        result = self._act(action)
        self._results.append(result)
        return result

    def get_reward(self) -> float | None:
        """The episode's score (sum of step rewards); ``None`` after an infrastructure failure or overflow."""
        if self._error is not None or self._overflow is not None:
            return None
        return float(sum(self._rewards))

    # ---- read-only views ------------------------------------------------------------

    @property
    def env(self) -> Environment:
        return self._env

    @property
    def task(self) -> Task | None:
        return self._task

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(self._actions)

    @property
    def results(self) -> tuple[str, ...]:
        """Every string ``act`` returned this episode, in order (what the model should have seen)."""
        return tuple(self._results)

    @property
    def rewards(self) -> tuple[float, ...]:
        return tuple(self._rewards)

    @property
    def done(self) -> bool:
        return self._done

    @property
    def success(self) -> bool:
        """The episode ended solved (``info["success"]`` of its terminal step)."""
        return self._success

    @property
    def progress(self) -> float | None:
        """The environment's progress in [0, 1] now (``Environment.progress()``); ``None`` when unscorable.

        Asked of the environment when read (once per rollout, at scoring), not after every step.
        """
        if self._task is None or self._error is not None or self._overflow is not None:
            return None
        try:
            return float(self._env.progress())
        except EnvError as e:
            self._fail(e)
            return None

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def overflow(self) -> str | None:
        """Why a tool result never reached the model (set by the trainer side); makes the rollout unscorable."""
        return self._overflow

    @overflow.setter
    def overflow(self, detail: str | None) -> None:
        self._overflow = detail

    # ---- helpers --------------------------------------------------------------------

    def _row_task(self, row: Mapping[str, Any]) -> Task:
        raw = row.get("task")
        if raw is None:
            if self._draw_task is None:
                raise ValueError(
                    "the dataset row has no 'task' column; build the dataset with tasks_dataset(), "
                    "or pass split/difficulty to trl_environment_factory() to generate tasks"
                )
            return self._draw_task()
        if isinstance(raw, Task):
            return raw
        if isinstance(raw, str | bytes):
            return Task.from_json(raw)
        if isinstance(raw, Mapping):
            return Task.from_json(json.dumps(raw))
        raise TypeError(f"the 'task' column holds {type(raw).__name__}, not a Task or its JSON")

    def _act(self, action: str) -> str:
        if self._error is not None:
            return f"The environment has failed ({self._error}); no more actions are possible."
        if self._done:
            return "The episode is over; no more actions are accepted. Stop calling act."
        self._actions.append(action)
        try:
            obs = self._env.step(action)
        except EnvError as e:
            self._fail(e)
            return f"The environment failed ({e}); no more actions are possible."
        self._rewards.append(obs.reward)
        if not obs.done:
            return obs.text
        self._done = True
        self._success = bool(obs.terminated and obs.info.get("success"))
        return f"{obs.text}\n\n{self._ending(obs)}"

    def _fail(self, e: EnvError) -> None:
        self._error = str(e) or type(e).__name__
        self._done = True

    def _ending(self, obs: Observation) -> str:
        score = sum(self._rewards)
        if obs.terminated:
            outcome = "solved" if obs.info.get("success") else "not solved"
            return f"[The episode is over: {outcome}, score {score:.2f}. Do not call act again.]"
        return (
            f"[The episode is over: step limit reached, score {score:.2f}. Do not call act again.]"
        )

    def __repr__(self) -> str:
        task = self._task.task_id if self._task else None
        return f"<PalaestraTRLEnv {self._env.env_id} task={task} actions={len(self._actions)}>"


def trl_environment_factory(
    env_id_or_factory: str | Callable[[], Environment],
    *,
    max_episode_steps: int | None = None,
    split: Split | None = None,
    difficulty: Difficulty = "easy",
    start: int = 0,
) -> Callable[[], PalaestraTRLEnv]:
    """A zero-argument factory of :class:`PalaestraTRLEnv` for ``GRPOTrainer(environment_factory=...)``.

    ``env_id_or_factory`` is a registered id (built with :func:`palaestra.env.make`,
    which applies the registered step limit unless ``max_episode_steps``
    overrides it) or a zero-argument callable returning an environment.
    Dataset rows name their task in a ``task`` column (see :func:`tasks_dataset`).
    With ``split`` set, rows without one (e.g. GRPOTrainer's placeholder rows
    when no dataset is given) play freshly generated tasks of that split and
    ``difficulty``, with seeds ``start, start+1, ...`` shared by all instances.
    """
    if isinstance(env_id_or_factory, str):
        env_id = env_id_or_factory
        spec(env_id)  # fail now, with close matches, rather than inside the trainer

        def build() -> Environment:
            return make(env_id, max_episode_steps=max_episode_steps)
    else:
        if max_episode_steps is not None:
            raise ValueError(
                "max_episode_steps applies to registered ids; wrap your factory in StepLimit"
            )
        build = env_id_or_factory

    draw: Callable[[], Task] | None = None
    if split is not None:
        seeds = itertools.count(start)
        template = build()
        task_split: Split = split

        def draw_task() -> Task:
            return template.make_task(next(seeds), task_split, difficulty)

        draw = draw_task

    def factory() -> PalaestraTRLEnv:
        return PalaestraTRLEnv(build(), draw)

    return factory


def tasks_dataset(
    env_id: str,
    split: Split = "train",
    n: int = 64,
    difficulty: Difficulty | Iterable[Difficulty] | None = None,
    *,
    start: int = 0,
    intro: str | None = None,
) -> Dataset:
    """A ``datasets.Dataset`` of ``n`` tasks of ``env_id`` for ``GRPOTrainer``.

    Columns: ``prompt`` (a conversational prompt, one user message that
    explains the ``act`` tool and the action grammar; the environment's first
    observation is appended to it by the trainer), ``task`` (the task's JSON,
    read by :meth:`PalaestraTRLEnv.reset`), ``task_id`` and ``env_id``.
    ``intro`` replaces the user message (it should end with a blank line).
    Tasks come from :func:`palaestra.env.tasks` with the same arguments.
    """
    suite = tasks(env_id, split, n, difficulty, start=start)
    if intro is None:
        env = make(env_id, max_episode_steps=0)
        try:
            intro = tool_intro(env)
        finally:
            env.close()
    return dataset_of_tasks(suite, intro=intro)


def tool_intro(env: Environment) -> str:
    """The default user message of a tool-mode prompt: the ``act`` tool and ``env``'s action grammar."""
    grammar = f"Valid actions look like: {env.action_help}. " if env.action_help else ""
    return _INTRO.format(help=grammar)


def dataset_of_tasks(task_list: Sequence[Task], *, intro: str) -> Dataset:
    """:func:`tasks_dataset`'s table for given tasks (one row each, in order); ``intro`` is the user message."""
    try:
        from datasets import Dataset
    except ImportError as e:
        raise ImportError(
            "tasks_dataset needs the datasets library, which is not installed. Install it with:\n"
            'pip install "palaestra[train]"'
        ) from e
    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": intro}] for _ in task_list],
            "task": [t.model_dump_json() for t in task_list],
            "task_id": [t.task_id for t in task_list],
            "env_id": [t.env_id for t in task_list],
        }
    )
