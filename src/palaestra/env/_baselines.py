"""Reference policies (expert and uniform random) and a minimal episode runner.

These are baselines for demos, benchmarks and environment tests — the bounds
any learned agent sits between. Full agent loops over language models live in
``palaestra.agent``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from palaestra.env._core import Environment, Observation, Task

#: A policy maps the environment (for oracle access) and the latest observation to an action.
Policy = Callable[[Environment, Observation], str]


def expert_policy(env: Environment, obs: Observation) -> str:
    """Follow the environment's oracle."""
    return env.expert()


def random_policy(seed: int | str = 0) -> Policy:
    """Uniformly random over ``available_actions()``, seeded."""
    rng = random.Random(seed)

    def act(env: Environment, obs: Observation) -> str:
        actions = env.available_actions()
        return rng.choice(actions) if actions else "look"

    return act


@dataclass(frozen=True)
class EpisodeResult:
    task_id: str
    success: bool
    score: float
    progress: float
    steps: int
    invalid: int
    truncated: bool


def run_episode(
    env: Environment, task: Task, policy: Policy, max_steps: int = 1000
) -> EpisodeResult:
    """Play one episode; stops at termination, truncation or ``max_steps``."""
    obs = env.reset(task)
    score, steps = 0.0, 0
    while not obs.done and steps < max_steps:
        obs = env.step(policy(env, obs))
        score += obs.reward
        steps += 1
    return EpisodeResult(
        task_id=task.task_id,
        success=bool(obs.terminated and obs.info.get("success")),
        score=score,
        progress=env.progress(),
        steps=steps,
        invalid=int(obs.info.get("invalid_count", 0)),
        truncated=obs.truncated or (not obs.done),
    )
