"""The ``rl`` arm's parts: its tasks (the curriculum's), its run config, its numbers.

With an ``rl:`` section, the improving arm of each iteration takes online RL steps
(``palaestra train rl``: GRPO or RLOO on episodes the rollout engine plays with the
policy being trained) after its SFT step, or instead of it. The stage itself is
``rl_arm`` in :mod:`._loop`; this module holds what it needs:

- :func:`rl_tasks`: the RL tasks are the iteration's curriculum tasks (WebRL's
  learning-zone selection, see there);
- :func:`rl_run_config`: the ``RLRunConfig`` of one iteration — the ``rl:`` section
  with what the loop owns filled in;
- :class:`TaskRouter`: one environment object that plays tasks of several ids, so one
  RL run trains on every training environment's tasks at once;
- :class:`RLStats` / :func:`rl_stats`: what the RL steps did (steps, episodes, reward,
  success while training), for the stage record and the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from palaestra.env import Environment, Observation, Task, Wrapper, make
from palaestra.evolve._config import EvolveConfig
from palaestra.evolve._curriculum import Cell, check_no_leak
from palaestra.train import RLRunConfig
from palaestra.trajectory import Episode


def rl_tasks(suite: Path, cells: Sequence[Cell], eval_tasks: Iterable[Task]) -> list[Task]:
    """The RL tasks of an iteration: the curriculum's tasks in ``suite``, checked.

    This is WebRL's self-evolving curriculum ("WebRL: Training LLM Web Agents via
    Self-Evolving Online Curriculum Reinforcement Learning", Qi et al. 2024) applied to
    the RL steps: each phase trains on tasks chosen for the *learning zone*, neither
    solved nor hopeless for the current policy. Here the choice is the curriculum's
    (:mod:`._curriculum`): the previous iteration's success rates per cell
    (environment x difficulty) — from the improving arm's exploration rollouts and its
    RL episodes — give the learning zone the largest share of the next tasks, and
    :func:`~._curriculum.propose` draws fresh train-split seeds in the planned cells
    (``suite`` is the iteration's ``tasks.yaml``). The RL steps play exactly those tasks,
    the ones both arms' expert data come from. Deviation from WebRL: it filters
    LLM-written task variants with a critic's score; ours are generator cells rated by the
    environment's own checker.

    Raises ``ValueError`` for a task outside the train split, outside the planned cells
    (a cell with a share > 0), or in the evaluation panel: RL never trains on an
    evaluation seed.
    """
    from palaestra.eval import get_suite, suite_tasks

    found = [st.task for st in suite_tasks(get_suite(suite))]
    if not found:
        raise ValueError(f"{suite}: the curriculum planned no tasks for the RL steps")
    wrong = [t.task_id for t in found if t.split != "train"]
    if wrong:
        raise ValueError(f"RL task {wrong[0]} is not on the train split")
    planned = {(c.env, c.difficulty, _params_key(c.params)) for c in cells if c.share > 0}
    outside = [
        t.task_id for t in found if (t.env_id, t.difficulty, _params_key(t.params)) not in planned
    ]
    if outside:
        raise ValueError(f"RL task {outside[0]} is in no cell the curriculum planned")
    check_no_leak(found, eval_tasks)
    return found


def _params_key(params: Mapping[str, Any]) -> str:
    return repr(sorted(params.items()))


def rl_run_config(config: EvolveConfig, iteration: int, tasks: Sequence[Task]) -> RLRunConfig:
    """The ``RLRunConfig`` of iteration ``iteration``: the ``rl:`` section, plus what the loop owns.

    The tasks are ``tasks`` (``env``/``n`` only label the run: ``train_rl`` gets the
    list itself); the agent format is the run's (``prompt``, ``max_turns``,
    ``max_new_tokens``), as in its SFT data and evaluations; the seed moves per iteration.
    """
    if config.rl is None:
        raise ValueError("the evolve config has no rl section")
    fields = config.rl.model_dump(exclude={"after_sft"})
    fields.update(
        env=tasks[0].env_id,
        n=len(tasks),
        prompt=config.prompt,
        max_turns=config.max_turns,
        max_new_tokens=config.max_new_tokens,
        concurrency=config.concurrency,
        seed=config.seed + iteration,
    )
    return RLRunConfig.model_validate(fields)


class TaskRouter(Wrapper):
    """An environment that plays tasks of several environment ids.

    ``reset(task)`` switches to a fresh environment of ``task.env_id`` when the task is
    for another id than the current one (an environment refuses other ids' tasks); every
    other call goes to the current one. The rollout engine keeps one environment per
    worker, so this lets one RL run interleave tasks of every training environment.
    """

    def __init__(self, first: str, make_env: Callable[[str], Environment] = make) -> None:
        super().__init__(make_env(first))
        self.make_env = make_env

    def reset(self, task: Task) -> Observation:
        if task.env_id != self.env.env_id:
            old, self.env = self.env, self.make_env(task.env_id)
            self.env_id = self.env.env_id
            old.close()
        return self.env.reset(task)


def env_factory(tasks: Sequence[Task]) -> Callable[[], Environment]:
    """Environments for ``tasks``: plain ones for a single id, a :class:`TaskRouter` for several."""
    ids = list(dict.fromkeys(t.env_id for t in tasks))
    if len(ids) == 1:
        return lambda: make(ids[0])
    return lambda: TaskRouter(ids[0])


class RLStats(BaseModel):
    """What one iteration's RL steps did: from ``train_rl``'s log history and its episode store."""

    algorithm: str = Field(description="grpo or rloo.")
    steps: int = Field(description="RL optimizer steps taken.")
    tasks: int = Field(description="Distinct tasks (the curriculum's) the steps drew from.")
    episodes: int = Field(description="Episodes played (stored in the stage's episodes/).")
    errors: int = Field(default=0, description="Episodes that ended in error (unscorable).")
    success_rate: float | None = Field(
        default=None, description="Success among the scorable episodes played during RL."
    )
    reward_mean: float | None = Field(
        default=None, description="Mean of TRL's logged reward over the logging steps."
    )
    reward_first: float | None = Field(default=None, description="The first logged reward.")
    reward_last: float | None = Field(default=None, description="The last logged reward.")
    success_first: float | None = Field(
        default=None, description="rl/success_rate at the first logging step."
    )
    success_last: float | None = Field(
        default=None, description="rl/success_rate at the last logging step."
    )
    tokens: int | None = Field(default=None, description="Tokens TRL processed (num_tokens).")


def logged_tokens(log_history: Sequence[Mapping[str, Any]]) -> int | None:
    """Tokens a TRL trainer processed (its cumulative ``num_tokens``: prompt and completion,
    padding excluded); ``None`` when it logged none."""
    seen = [h["num_tokens"] for h in log_history if "num_tokens" in h]
    return int(seen[-1]) if seen else None


def rl_stats(
    algorithm: str,
    log_history: Sequence[Mapping[str, Any]],
    episodes: Sequence[Episode],
    tasks: int,
    steps: int,
) -> RLStats:
    """:class:`RLStats` from a ``train_rl`` run's log history and the episodes it stored."""
    rewards = [float(h["reward"]) for h in log_history if "reward" in h]
    success = [float(h["rl/success_rate"]) for h in log_history if "rl/success_rate" in h]
    scored = [ep for ep in episodes if ep.outcome != "error"]
    return RLStats(
        algorithm=algorithm,
        steps=steps,
        tasks=tasks,
        episodes=len(episodes),
        errors=len(episodes) - len(scored),
        success_rate=(
            sum(ep.outcome == "success" for ep in scored) / len(scored) if scored else None
        ),
        reward_mean=sum(rewards) / len(rewards) if rewards else None,
        reward_first=rewards[0] if rewards else None,
        reward_last=rewards[-1] if rewards else None,
        success_first=success[0] if success else None,
        success_last=success[-1] if success else None,
        tokens=logged_tokens(log_history),
    )
