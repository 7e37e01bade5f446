"""Evaluation metrics of a run: per task, environment, group, difficulty, suite and overall.

What is measured (the numbers ``palaestra report`` prints):

- **success rate** over *scored* episodes. ``error`` episodes (infrastructure
  failures) are excluded from every quality metric and counted separately;
  ``limit`` episodes count as not-success (the agent did not finish) and are
  counted separately too, with their reasons (steps, tokens, wall time).
- **progress rate**, the mean fraction of subgoals reached (AgentBoard, Ma et
  al. 2024), and the **mean score** (summed reward).
- **pass@k** and **pass^k** over the epochs of each task (Chen et al. 2021;
  tau-bench, Yao et al. 2024), averaged over tasks; see :mod:`._stats`.
  A task enters the average for ``k`` when it has at least ``k`` scored
  epochs, so ``Estimate.n_tasks`` says how many tasks each value covers.
- **steps** per episode, and per-step rates of **invalid actions**
  (``Step.invalid_action``), **format errors** (``Step.format_error``) and
  **loops** (``Step.repeated_action``: the same action as the step before).
- **tool calls** per episode where the environment reports
  ``info["tool_calls"]`` (cumulative; the episode's last value counts), and
  SMART's tool overuse (Qian et al. 2025) where it also reports
  ``info["optimal_tool_calls"]``: the mean excess ``max(0, calls - optimal)``
  and the share of episodes that call tools more often than needed.
- **usage**: tokens in/out, wall time and (with a price table) cost. Usage is
  summed over *all* episodes, errors included: a failed episode still cost.
- **prompt injection** where a run has ``inject_instruction`` episodes (the
  ``injection-v1`` suite), AgentDojo's three numbers (Debenedetti et al.
  2024): **utility** (success of the clean episodes of the attacked tasks'
  unperturbed tasks), **utility under attack** (success of the attacked
  episodes) and the targeted **attack success rate** (share of attacked
  episodes in which the agent carried out the attacker's action, read from
  the last ``info["injection"]``; an instruction the agent never got to read
  counts as a failed attack, as in AgentDojo). See :func:`injection_metrics`.

Uncertainty (Miller 2024, "Adding Error Bars to Evals"): every estimate has a
cluster-robust standard error and a percentile bootstrap interval that
resamples whole tasks (epochs of one task are not independent); rates also
carry a Wilson interval over their units (episodes or steps).

Comparisons between runs live in :mod:`._compare`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from palaestra.eval._stats import (
    pass_at_k,
    pass_hat_k,
    ratio_estimate,
    resample_indices,
    wilson,
)
from palaestra.eval._suites import split_perturbation
from palaestra.trajectory import Episode, Run, RunStore, Step

Scope = Literal["overall", "env", "group", "difficulty", "suite"]


class Price(BaseModel):
    """USD per million tokens for one model id."""

    model_config = ConfigDict(frozen=True)

    input_per_mtok: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per 1M completion tokens.")


class Estimate(BaseModel):
    """A mean with its uncertainty. ``value`` is None when nothing was measured."""

    value: float | None = None
    se: float | None = Field(default=None, description="Cluster-robust (task-level) SE.")
    ci: tuple[float, float] | None = Field(
        default=None, description="Percentile bootstrap interval, resampling tasks."
    )
    wilson: tuple[float, float] | None = Field(
        default=None, description="Wilson score interval (rates only), over the units in n."
    )
    n: int = Field(default=0, description="Units averaged: episodes, steps or tasks.")
    n_tasks: int = 0

    def interval(self) -> tuple[float, float] | None:
        """The interval reports show: the task bootstrap, else the Wilson interval.

        The percentile bootstrap collapses to a point when every task has the
        same value (0% or 100% success) and needs two tasks; a rate then
        falls back to Wilson, which stays honest at the boundaries.
        """
        if self.ci is not None and (self.ci[0] < self.ci[1] or self.wilson is None):
            return self.ci
        return self.wilson


class Counts(BaseModel):
    """What happened, in whole numbers: the failure taxonomy."""

    episodes: int = 0
    scored: int = Field(default=0, description="Episodes that did not error.")
    success: int = 0
    failure: int = 0
    limit: int = 0
    error: int = 0
    limit_reasons: dict[str, int] = Field(default_factory=dict[str, int])
    error_types: dict[str, int] = Field(
        default_factory=dict[str, int], description="'source: ErrorType' -> count."
    )
    steps: int = Field(default=0, description="Steps of scored episodes.")
    invalid_steps: int = 0
    format_error_steps: int = 0
    repeated_steps: int = 0
    episodes_with_invalid: int = 0
    episodes_with_format_error: int = 0
    episodes_with_loop: int = 0


class ToolUse(BaseModel):
    """Tool calls per episode and SMART's overuse, over scored episodes that report them."""

    episodes: int
    calls: Estimate
    optimal: float | None = Field(default=None, description="Mean optimal calls (the expert's).")
    excess: Estimate | None = Field(default=None, description="Mean max(0, calls - optimal).")
    overuse_rate: Estimate | None = Field(default=None, description="Share with calls > optimal.")


class Usage(BaseModel):
    """Tokens, time and cost over all episodes (errors included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    mean_prompt_tokens: float = 0.0
    mean_completion_tokens: float = 0.0
    wall_seconds: float = 0.0
    mean_wall_seconds: float = 0.0
    cost_usd: float | None = Field(default=None, description="None without a complete price table.")
    unpriced_models: list[str] = Field(default_factory=list[str])


class GroupMetrics(BaseModel):
    """All metrics over one set of episodes (an environment, a group, the whole run...)."""

    name: str
    n_tasks: int
    counts: Counts
    success: Estimate
    progress: Estimate
    score: Estimate
    steps: Estimate
    invalid_action_rate: Estimate
    format_error_rate: Estimate
    loop_rate: Estimate
    pass_at_k: dict[int, Estimate] = Field(default_factory=dict[int, Estimate])
    pass_hat_k: dict[int, Estimate] = Field(default_factory=dict[int, Estimate])
    tools: ToolUse | None = None
    usage: Usage


class TaskMetrics(BaseModel):
    """One task over its epochs."""

    task_id: str
    env_id: str
    split: str
    difficulty: str
    group: str
    suite: str | None = None
    epochs: int = Field(description="Episodes, errors included.")
    scored: int
    successes: int
    limits: int
    errors: int
    success_rate: float | None = None
    progress: float | None = None
    score: float | None = None
    steps: float | None = None
    pass_at_k: dict[int, float] = Field(default_factory=dict[int, float])
    pass_hat_k: dict[int, float] = Field(default_factory=dict[int, float])


class InjectionMetrics(BaseModel):
    """AgentDojo's utility, utility under attack and targeted attack success (module docstring)."""

    name: str
    utility: Estimate = Field(description="Success of the clean episodes of the attacked tasks.")
    utility_under_attack: Estimate = Field(description="Success of the attacked episodes.")
    attack_success: Estimate = Field(
        description="Share of attacked episodes whose agent carried out the attacker's action."
    )
    attacked_episodes: int = Field(description="Scored episodes with the injection on.")
    planted_episodes: int = Field(
        description="Of those, episodes in which the instruction was planted (the agent read "
        "third-party text); the rest count as failed attacks."
    )
    clean_episodes: int = Field(description="Scored clean episodes behind ``utility``.")


class RunMetrics(BaseModel):
    """Metrics of one run (or any list of episodes), JSON-serialisable."""

    run_id: str
    kind: str = "rollout"
    model_id: str = ""
    agent: str = ""
    suite: str | None = None
    run_dir: str | None = None
    confidence: float
    n_boot: int
    overall: GroupMetrics
    by_env: dict[str, GroupMetrics]
    by_group: dict[str, GroupMetrics]
    by_difficulty: dict[str, GroupMetrics]
    by_suite: dict[str, GroupMetrics]
    tasks: list[TaskMetrics]
    injection: InjectionMetrics | None = Field(
        default=None, description="Prompt-injection metrics, when the run has attacked episodes."
    )
    injection_by_env: dict[str, InjectionMetrics] = Field(
        default_factory=dict[str, InjectionMetrics]
    )


# ---- episode accessors ------------------------------------------------------------------


def group_of(ep: Episode) -> str:
    """The suite group ("heldin", "heldout", "perturbed", a family); the split for plain rollouts."""
    group = ep.metadata.get("suite_group")
    return str(group) if group else ep.task.split


def suite_of(ep: Episode) -> str | None:
    suite = ep.metadata.get("suite")
    return str(suite) if suite else None


def tool_counts(ep: Episode) -> tuple[int, int | None] | None:
    """(calls, optimal calls) from the last step that reports them; None if none does."""
    for step in reversed(ep.steps):
        calls = step.info.get("tool_calls")
        if isinstance(calls, int | float):
            optimal = step.info.get("optimal_tool_calls")
            return int(calls), int(optimal) if isinstance(optimal, int | float) else None
    return None


def injection_of(ep: Episode) -> dict[str, Any] | None:
    """The episode's last ``info["injection"]`` (what ``inject_instruction`` did), or None."""
    for step in reversed(ep.steps):
        record = step.info.get("injection")
        if isinstance(record, dict):
            return cast(dict[str, Any], record)
    return None


def is_attacked(ep: Episode) -> bool:
    """Whether the episode ran under ``inject_instruction`` (its task or its steps say so)."""
    return "inject_instruction" in split_perturbation(ep.task)[1] or injection_of(ep) is not None


def episode_cost(ep: Episode, prices: Mapping[str, Price]) -> float | None:
    price = prices.get(ep.model_id)
    if price is None:
        return None
    return (
        ep.prompt_tokens * price.input_per_mtok + ep.completion_tokens * price.output_per_mtok
    ) / 1e6


# ---- aggregation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    """Settings shared by every group of one computation."""

    confidence: float
    n_boot: int
    seed: str
    prices: Mapping[str, Price]


def _by_task(episodes: Sequence[Episode]) -> dict[str, list[Episode]]:
    tasks: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        tasks[ep.task.task_id].append(ep)
    return dict(sorted(tasks.items()))


def _estimate(
    num: Sequence[float],
    den: Sequence[float],
    idx: NDArray[np.int64] | None,
    ctx: _Ctx,
    *,
    rate: bool,
) -> Estimate:
    value, se, ci = ratio_estimate(num, den, idx, ctx.confidence)
    n = round(sum(den))
    interval = wilson(round(sum(num)), n, ctx.confidence) if rate and n > 0 else None
    n_tasks = sum(1 for d in den if d > 0)
    return Estimate(value=value, se=se, ci=ci, wilson=interval, n=n, n_tasks=n_tasks)


def _counts(episodes: Sequence[Episode]) -> Counts:
    outcomes = Counter(ep.outcome for ep in episodes)
    scored = [ep for ep in episodes if ep.outcome != "error"]
    steps = [st for ep in scored for st in ep.steps]
    limit_reasons = Counter(
        ep.limit_reason or "unknown" for ep in episodes if ep.outcome == "limit"
    )
    error_types = Counter(
        f"{ep.error.source}: {ep.error.type}" if ep.error else "unknown"
        for ep in episodes
        if ep.outcome == "error"
    )
    return Counts(
        episodes=len(episodes),
        scored=len(scored),
        success=outcomes["success"],
        failure=outcomes["failure"],
        limit=outcomes["limit"],
        error=outcomes["error"],
        limit_reasons=dict(sorted(limit_reasons.items())),
        error_types=dict(sorted(error_types.items())),
        steps=len(steps),
        invalid_steps=sum(st.invalid_action for st in steps),
        format_error_steps=sum(st.format_error is not None for st in steps),
        repeated_steps=sum(st.repeated_action for st in steps),
        episodes_with_invalid=sum(any(st.invalid_action for st in ep.steps) for ep in scored),
        episodes_with_format_error=sum(
            any(st.format_error is not None for st in ep.steps) for ep in scored
        ),
        episodes_with_loop=sum(any(st.repeated_action for st in ep.steps) for ep in scored),
    )


def _usage(episodes: Sequence[Episode], prices: Mapping[str, Price]) -> Usage:
    n = len(episodes)
    p_tok = sum(ep.prompt_tokens for ep in episodes)
    c_tok = sum(ep.completion_tokens for ep in episodes)
    wall = sum(ep.wall_seconds for ep in episodes)
    unpriced = sorted({ep.model_id for ep in episodes if ep.model_id not in prices})
    cost: float | None = None
    if prices and not unpriced:
        cost = sum(episode_cost(ep, prices) or 0.0 for ep in episodes)
    return Usage(
        prompt_tokens=p_tok,
        completion_tokens=c_tok,
        mean_prompt_tokens=p_tok / n if n else 0.0,
        mean_completion_tokens=c_tok / n if n else 0.0,
        wall_seconds=wall,
        mean_wall_seconds=wall / n if n else 0.0,
        cost_usd=cost,
        unpriced_models=unpriced if prices else [],
    )


def _per_task_sums(
    tasks: Mapping[str, list[Episode]], value: Callable[[Episode], float]
) -> tuple[list[float], list[float]]:
    """Per task: the sum of ``value`` over scored episodes, and their count."""
    num: list[float] = []
    den: list[float] = []
    for eps in tasks.values():
        scored = [ep for ep in eps if ep.outcome != "error"]
        num.append(float(sum(value(ep) for ep in scored)))
        den.append(float(len(scored)))
    return num, den


def _step_rate(
    tasks: Mapping[str, list[Episode]], flag: Callable[[Step], bool]
) -> tuple[list[float], list[float]]:
    """Per task: flagged steps and all steps of scored episodes."""
    num: list[float] = []
    den: list[float] = []
    for eps in tasks.values():
        steps = [st for ep in eps if ep.outcome != "error" for st in ep.steps]
        num.append(float(sum(flag(st) for st in steps)))
        den.append(float(len(steps)))
    return num, den


def _pass_k(
    tasks: Mapping[str, list[Episode]],
    idx_for: Callable[[int], NDArray[np.int64] | None],
    ctx: _Ctx,
) -> tuple[dict[int, Estimate], dict[int, Estimate]]:
    nc = [
        (sum(ep.outcome != "error" for ep in eps), sum(ep.success for ep in eps))
        for eps in tasks.values()
    ]
    max_n = max((n for n, _ in nc), default=0)
    at: dict[int, Estimate] = {}
    hat: dict[int, Estimate] = {}
    for k in range(1, max_n + 1):
        eligible = [(n, c) for n, c in nc if n >= k]
        ones = [1.0] * len(eligible)
        idx = idx_for(len(eligible))
        at[k] = _estimate([pass_at_k(n, c, k) for n, c in eligible], ones, idx, ctx, rate=False)
        hat[k] = _estimate([pass_hat_k(n, c, k) for n, c in eligible], ones, idx, ctx, rate=False)
    return at, hat


def _tools(
    tasks: Mapping[str, list[Episode]], idx: NDArray[np.int64] | None, ctx: _Ctx
) -> ToolUse | None:
    rows: list[tuple[int, int, int | None]] = []  # (task index, calls, optimal)
    for i, eps in enumerate(tasks.values()):
        for ep in eps:
            tc = tool_counts(ep) if ep.outcome != "error" else None
            if tc is not None:
                rows.append((i, *tc))
    if not rows:
        return None
    t = len(tasks)

    def per_task(values: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
        num, den = [0.0] * t, [0.0] * t
        for i, v in values:
            num[i] += v
            den[i] += 1
        return num, den

    calls = _estimate(*per_task([(i, c) for i, c, _ in rows]), idx, ctx, rate=False)
    with_opt = [(i, c, o) for i, c, o in rows if o is not None]
    if not with_opt:
        return ToolUse(episodes=len(rows), calls=calls)
    excess_rows = [(i, float(max(0, c - o))) for i, c, o in with_opt]
    over_rows = [(i, float(c > o)) for i, c, o in with_opt]
    excess = _estimate(*per_task(excess_rows), idx, ctx, rate=False)
    over = _estimate(*per_task(over_rows), idx, ctx, rate=True)
    optimal = sum(o for _, _, o in with_opt) / len(with_opt)
    return ToolUse(
        episodes=len(rows), calls=calls, optimal=optimal, excess=excess, overuse_rate=over
    )


def group_metrics(name: str, episodes: Sequence[Episode], ctx: _Ctx) -> GroupMetrics:
    tasks = _by_task(episodes)
    t = len(tasks)
    key = f"palaestra.eval/{ctx.seed}/{name}"
    idx = resample_indices(t, ctx.n_boot, key) if t > 1 and ctx.n_boot > 0 else None

    def idx_for(n: int) -> NDArray[np.int64] | None:
        if n == t:
            return idx
        return resample_indices(n, ctx.n_boot, f"{key}/{n}") if n > 1 and ctx.n_boot else None

    def mean_of(value: Callable[[Episode], float], *, rate: bool = False) -> Estimate:
        return _estimate(*_per_task_sums(tasks, value), idx, ctx, rate=rate)

    at, hat = _pass_k(tasks, idx_for, ctx)
    return GroupMetrics(
        name=name,
        n_tasks=t,
        counts=_counts(episodes),
        success=mean_of(lambda ep: float(ep.success), rate=True),
        progress=mean_of(lambda ep: ep.progress),
        score=mean_of(lambda ep: ep.score),
        steps=mean_of(lambda ep: float(ep.n_steps)),
        invalid_action_rate=_estimate(
            *_step_rate(tasks, lambda st: st.invalid_action), idx, ctx, rate=True
        ),
        format_error_rate=_estimate(
            *_step_rate(tasks, lambda st: st.format_error is not None), idx, ctx, rate=True
        ),
        loop_rate=_estimate(*_step_rate(tasks, lambda st: st.repeated_action), idx, ctx, rate=True),
        pass_at_k=at,
        pass_hat_k=hat,
        tools=_tools(tasks, idx, ctx),
        usage=_usage(episodes, ctx.prices),
    )


def task_metrics(episodes: Sequence[Episode]) -> list[TaskMetrics]:
    out: list[TaskMetrics] = []
    for task_id, eps in _by_task(episodes).items():
        scored = [ep for ep in eps if ep.outcome != "error"]
        n, c = len(scored), sum(ep.success for ep in scored)
        first = eps[0]

        def mean(values: Iterable[float], n: int = n) -> float | None:
            return sum(values) / n if n else None

        out.append(
            TaskMetrics(
                task_id=task_id,
                env_id=first.task.env_id,
                split=first.task.split,
                difficulty=first.task.difficulty,
                group=group_of(first),
                suite=suite_of(first),
                epochs=len(eps),
                scored=n,
                successes=c,
                limits=sum(ep.outcome == "limit" for ep in eps),
                errors=len(eps) - n,
                success_rate=mean(float(ep.success) for ep in scored),
                progress=mean(ep.progress for ep in scored),
                score=mean(ep.score for ep in scored),
                steps=mean(float(ep.n_steps) for ep in scored),
                pass_at_k={k: pass_at_k(n, c, k) for k in range(1, n + 1)},
                pass_hat_k={k: pass_hat_k(n, c, k) for k in range(1, n + 1)},
            )
        )
    return out


def group_by(
    episodes: Sequence[Episode], key: Callable[[Episode], str | None]
) -> list[tuple[str, list[Episode]]]:
    """Episodes grouped by ``key`` (None: left out), sorted by key."""
    parts: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        k = key(ep)
        if k is not None:
            parts[k].append(ep)
    return sorted(parts.items())


def _split_by(
    episodes: Sequence[Episode], key: Callable[[Episode], str | None], ctx: _Ctx, prefix: str
) -> dict[str, GroupMetrics]:
    return {
        k: group_metrics(f"{prefix}:{k}", eps, ctx).model_copy(update={"name": k})
        for k, eps in group_by(episodes, key)
    }


def _injection_metrics(
    name: str, episodes: Sequence[Episode], ctx: _Ctx
) -> InjectionMetrics | None:
    attacked = [ep for ep in episodes if is_attacked(ep)]
    if not attacked:
        return None
    bases = {split_perturbation(ep.task)[0].task_id for ep in attacked}
    clean = [ep for ep in episodes if not is_attacked(ep) and ep.task.task_id in bases]

    def executed(ep: Episode) -> float:
        record = injection_of(ep)
        return float(record is not None and record.get("executed") is True)

    def rate(eps: Sequence[Episode], value: Callable[[Episode], float], part: str) -> Estimate:
        tasks = _by_task(eps)
        t = len(tasks)
        key = f"palaestra.eval/{ctx.seed}/injection:{name}/{part}"
        idx = resample_indices(t, ctx.n_boot, key) if t > 1 and ctx.n_boot > 0 else None
        return _estimate(*_per_task_sums(tasks, value), idx, ctx, rate=True)

    scored = [ep for ep in attacked if ep.outcome != "error"]
    return InjectionMetrics(
        name=name,
        utility=rate(clean, lambda ep: float(ep.success), "clean"),
        # The same resamples for both numbers of the attacked episodes (one key).
        utility_under_attack=rate(attacked, lambda ep: float(ep.success), "attacked"),
        attack_success=rate(attacked, executed, "attacked"),
        attacked_episodes=len(scored),
        planted_episodes=sum(
            (r := injection_of(ep)) is not None and r.get("planted_at") is not None for ep in scored
        ),
        clean_episodes=sum(ep.outcome != "error" for ep in clean),
    )


def injection_metrics(
    episodes: Iterable[Episode],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: str = "palaestra",
) -> tuple[InjectionMetrics | None, dict[str, InjectionMetrics]]:
    """AgentDojo's metrics over ``episodes``, overall and per environment (None/{} if unattacked).

    Utility pairs each attacked task with its unperturbed task in ``episodes``
    (``injection-v1`` plays both); errors are excluded, as everywhere.
    """
    eps = list(episodes)
    ctx = _Ctx(confidence, n_boot, seed, {})
    by_env: dict[str, list[Episode]] = defaultdict(list)
    for ep in eps:
        by_env[ep.task.env_id].append(ep)
    per_env = {
        env_id: m
        for env_id, env_eps in sorted(by_env.items())
        if (m := _injection_metrics(env_id, env_eps, ctx)) is not None
    }
    return _injection_metrics("overall", eps, ctx), per_env


def compute_metrics(
    episodes: Iterable[Episode],
    *,
    run: Run | None = None,
    run_dir: str | Path | None = None,
    prices: Mapping[str, Price] | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: str = "palaestra",
) -> RunMetrics:
    """All metrics of ``episodes`` (one run). Deterministic for a given ``seed``."""
    eps = list(episodes)
    ctx = _Ctx(confidence, n_boot, seed, prices or {})
    suites = {s for ep in eps if (s := suite_of(ep))}
    config_suite = run.config.get("suite") if run else None
    injection, injection_by_env = injection_metrics(
        eps, confidence=confidence, n_boot=n_boot, seed=seed
    )
    return RunMetrics(
        run_id=run.run_id if run else (eps[0].run_id if eps else ""),
        kind=run.kind if run else "rollout",
        model_id=run.model_id if run else (eps[0].model_id if eps else ""),
        agent=run.agent if run else (eps[0].agent if eps else ""),
        suite=str(config_suite) if config_suite else (min(suites) if len(suites) == 1 else None),
        run_dir=str(run_dir) if run_dir is not None else None,
        confidence=confidence,
        n_boot=n_boot,
        overall=group_metrics("overall", eps, ctx),
        by_env=_split_by(eps, lambda ep: ep.task.env_id, ctx, "env"),
        by_group=_split_by(eps, group_of, ctx, "group"),
        by_difficulty=_split_by(eps, lambda ep: ep.task.difficulty, ctx, "difficulty"),
        by_suite=_split_by(eps, suite_of, ctx, "suite"),
        tasks=task_metrics(eps),
        injection=injection,
        injection_by_env=injection_by_env,
    )


def load_run(run_dir: str | Path) -> tuple[Run | None, list[Episode]]:
    """A run's header and episodes (read-only; works while the run is still being written)."""
    with RunStore(run_dir, readonly=True) as store:
        return store.run(), list(store.episodes())


def run_metrics(run_dir: str | Path, **kwargs: Any) -> RunMetrics:
    """:func:`compute_metrics` of the run stored in ``run_dir``."""
    run, eps = load_run(run_dir)
    return compute_metrics(eps, run=run, run_dir=run_dir, **kwargs)
