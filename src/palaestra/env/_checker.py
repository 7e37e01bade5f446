"""``check_env``: the conformance checker every registered environment passes.

Modelled on Gymnasium's ``utils/env_checker.py``: it drives the environment
through the contract in ``_core.py`` and reports every violation it finds,
not just the first. It checks

- task generation: deterministic, JSON round-trip, distinct across splits;
- reset: deterministic across calls and across fresh instances;
- observation types: text, finite reward in [0, 1], JSON-serialisable info
  with the standard keys, progress in [0, 1];
- invalid and malformed actions: observations with feedback, state unchanged,
  counted in ``info`` — never exceptions;
- ``available_actions``: every listed action is accepted in that state;
- determinism of whole trajectories under the same actions;
- ``snapshot``/``restore``: restoring gives back the same state, and the same
  actions then give the same observations;
- the expert: solves every checked task at every difficulty, from the start
  and from a state reached by random valid actions.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from palaestra.env._core import DIFFICULTIES, Difficulty, Environment, Observation, Task
from palaestra.errors import EnvCheckError as EnvCheckError  # re-export: moved to errors.py

_STANDARD_INFO_KEYS = ("step", "progress", "invalid", "invalid_kind", "invalid_count")
_BAD_ACTIONS = ("", "   ", "xyzzy plugh", "go to the moon and back[[[", "\x00", "a" * 2000)


@dataclass
class CheckReport:
    env_id: str
    tasks_checked: int = 0
    expert_episodes: int = 0
    expert_steps: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        return not self.problems


def _state(env: Environment, obs: Observation) -> tuple[object, ...]:
    return (obs.text, obs.reward, obs.terminated, sorted(env.available_actions()), env.progress())


def _check_obs(where: str, obs: Observation, problems: list[str]) -> None:
    if not isinstance(obs, Observation):  # pyright: ignore[reportUnnecessaryIsInstance]
        problems.append(f"{where}: returned {type(obs).__name__}, not Observation")
        return
    if not obs.text.strip():
        problems.append(f"{where}: observation text is empty")
    if not math.isfinite(obs.reward) or not 0.0 <= obs.reward <= 1.0:
        problems.append(f"{where}: reward {obs.reward} is not in [0, 1]")
    try:
        json.dumps(obs.info)
    except (TypeError, ValueError) as e:
        problems.append(f"{where}: info is not JSON-serialisable ({e})")
    missing = [k for k in _STANDARD_INFO_KEYS if k not in obs.info]
    if missing:
        problems.append(f"{where}: info lacks standard keys {missing}")
    p = obs.info.get("progress", 0.0)
    if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        problems.append(f"{where}: progress {p!r} is not in [0, 1]")
    if obs.terminated and "success" not in obs.info:
        problems.append(f"{where}: terminal observation lacks info['success']")


def _run_expert(env: Environment, max_steps: int) -> tuple[Observation | None, int]:
    obs: Observation | None = None
    for n in range(1, max_steps + 1):
        obs = env.step(env.expert())
        if obs.done:
            return obs, n
    return obs, max_steps


def check_env(
    make: Callable[[], Environment],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    difficulties: Sequence[Difficulty] = DIFFICULTIES,
    max_steps: int = 300,
    rng_seed: int = 0,
    raise_on_error: bool = True,
) -> CheckReport:
    """Check the environment built by ``make`` (a zero-argument factory) against the contract.

    Pass a factory, not an instance, so fresh-instance determinism can be
    checked. Raises :class:`EnvCheckError` listing every problem (or returns
    the report with ``problems`` filled when ``raise_on_error=False``).
    """
    t0 = time.perf_counter()
    env, other = make(), make()
    report = CheckReport(env_id=env.env_id or type(env.unwrapped).__name__)
    problems = report.problems
    rng = random.Random(rng_seed)
    try:
        for difficulty in difficulties:
            for seed in seeds:
                where = f"{difficulty}/seed={seed}"
                try:
                    _check_task(env, other, seed, difficulty, where, rng, max_steps, report)
                except Exception as e:  # report the crash and go on with other tasks
                    problems.append(f"{where}: raised {type(e).__name__}: {e}")
    finally:
        env.close()
        other.close()
    report.seconds = time.perf_counter() - t0
    if problems and raise_on_error:
        raise EnvCheckError(report.env_id, problems)
    return report


def _check_task(
    env: Environment,
    other: Environment,
    seed: int,
    difficulty: Difficulty,
    where: str,
    rng: random.Random,
    max_steps: int,
    report: CheckReport,
) -> None:
    problems = report.problems
    report.tasks_checked += 1

    # -- task generation ------------------------------------------------------
    task = env.make_task(seed, "train", difficulty)
    if not isinstance(task, Task):  # pyright: ignore[reportUnnecessaryIsInstance]
        problems.append(f"{where}: make_task returned {type(task).__name__}, not Task")
        return
    if task != other.make_task(seed, "train", difficulty):
        problems.append(f"{where}: make_task is not deterministic")
    if Task.from_json(task.model_dump_json()) != task:
        problems.append(f"{where}: task does not survive a JSON round-trip")
    if not task.instruction.strip():
        problems.append(f"{where}: task has an empty instruction")
    ids = {env.make_task(seed, s, difficulty).task_id for s in ("train", "test", "heldout")}
    if len(ids) != 3:
        problems.append(f"{where}: train/test/heldout tasks share a task_id")

    # -- reset ----------------------------------------------------------------
    first = env.reset(task)
    _check_obs(f"{where} reset", first, problems)
    paraphrased = "paraphrase_instruction" in first.info.get("perturbations", ())
    if not paraphrased and task.instruction not in first.text:
        problems.append(f"{where}: the reset observation does not contain the instruction")
    start = _state(env, first)
    if _state(env, env.reset(task)) != start:
        problems.append(f"{where}: reset is not deterministic on the same instance")
    if _state(other, other.reset(task)) != start:
        problems.append(f"{where}: reset differs between two fresh instances")
    if not env.available_actions():
        problems.append(f"{where}: no available actions at the start")

    # -- invalid actions --------------------------------------------------------
    for bad in _BAD_ACTIONS:
        env.reset(task)
        before = _state(env, first)
        obs = env.step(bad)
        _check_obs(f"{where} step({bad[:20]!r})", obs, problems)
        if not obs.info.get("invalid") or obs.info.get("invalid_count") != 1:
            problems.append(f"{where}: action {bad[:20]!r} was not flagged invalid in info")
        if obs.done:
            problems.append(f"{where}: invalid action {bad[:20]!r} ended the episode")
        if (sorted(env.available_actions()), env.progress()) != (before[3], before[4]):
            problems.append(f"{where}: invalid action {bad[:20]!r} changed the state")

    # -- available actions are accepted ------------------------------------------
    env.reset(task)
    snap = env.snapshot()
    for a in env.available_actions():
        env.restore(snap)
        obs = env.step(a)
        if obs.info.get("invalid"):
            problems.append(f"{where}: listed action {a!r} was rejected: {obs.text[:120]!r}")
            break

    # -- trajectory determinism and snapshot/restore ---------------------------------
    env.reset(task)
    walk: list[str] = []
    for _ in range(6):
        actions = env.available_actions()
        if not actions:
            break
        a = rng.choice(actions)
        obs = env.step(a)
        walk.append(a)
        if obs.done:
            walk.pop()
            env.reset(task)
            for b in walk:
                env.step(b)
            break
    cut = len(walk) // 2
    env.reset(task)
    for a in walk[:cut]:
        env.step(a)
    snap = env.snapshot()
    mid_last = env.last_observation
    assert mid_last is not None
    mid = _state(env, mid_last)
    tail = [_state(env, env.step(a)) for a in walk[cut:]]
    other.reset(task)
    replay = [_state(other, other.step(a)) for a in walk]
    if replay[cut:] != tail:
        problems.append(f"{where}: the same actions gave different observations on two instances")
    env.restore(snap)
    restored_last = env.last_observation
    if restored_last is None or _state(env, restored_last) != mid:
        problems.append(f"{where}: restore() did not return to the snapshot state")
    elif [_state(env, env.step(a)) for a in walk[cut:]] != tail:
        problems.append(f"{where}: after restore() the same actions gave different observations")

    # -- the expert, from the start and from a random prefix --------------------------
    if not env.unwrapped.has_expert:
        return
    for label, prefix in (("start", []), ("after random actions", walk)):
        env.reset(task)
        for a in prefix:
            env.step(a)
        obs, n = _run_expert(env, max_steps)
        report.expert_episodes += 1
        report.expert_steps += n
        if obs is None or not obs.terminated or not obs.info.get("success"):
            text = obs.text[:160] if obs else ""
            problems.append(
                f"{where}: the expert did not solve the task from the {label} within "
                f"{max_steps} steps (last observation: {text!r})"
            )
        elif env.progress() != 1.0:
            problems.append(f"{where}: progress is {env.progress()} after the expert solved it")
        else:
            _check_obs(f"{where} expert final", obs, problems)
