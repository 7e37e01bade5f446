"""Evaluation metrics: pass@k / pass^k, intervals, bootstrap, paired tests, error handling.

Expected values are computed by hand in the comments, not by the code under test.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from palaestra.env import Task
from palaestra.eval._compare import compare, compare_runs
from palaestra.eval._metrics import Price, RunMetrics, compute_metrics
from palaestra.eval._stats import (
    binomial_two_sided,
    paired_bootstrap,
    pass_at_k,
    pass_hat_k,
    ratio_estimate,
    resample_indices,
    wilson,
)
from palaestra.trajectory import Episode, ErrorInfo, Outcome, Step


def task(seed: int, env: str = "house-v1", split: Any = "test", difficulty: Any = "easy") -> Task:
    return Task(env_id=env, split=split, seed=seed, difficulty=difficulty, instruction="do it")


def episode(
    seed: int,
    attempt: int,
    outcome: Outcome,
    *,
    env: str = "house-v1",
    progress: float | None = None,
    steps: list[Step] | None = None,
    group: str | None = None,
    tokens: tuple[int, int] = (0, 0),
    model: str = "m",
) -> Episode:
    success = outcome == "success"
    return Episode(
        run_id="r",
        task=task(seed, env),
        attempt=attempt,
        agent="a",
        model_id=model,
        outcome=outcome,
        score=1.0 if success else 0.0,
        progress=(1.0 if success else 0.0) if progress is None else progress,
        steps=steps if steps is not None else [Step(index=0)],
        error=ErrorInfo(type="EnvError", message="down") if outcome == "error" else None,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        metadata={"suite": "s-v1", "suite_group": group} if group else {},
    )


def task_runs(results: dict[int, str], env: str = "house-v1") -> list[Episode]:
    """Episodes from a compact spec: {task seed: "SFS"} = success, failure, success over epochs."""
    codes: dict[str, Outcome] = {"S": "success", "F": "failure", "L": "limit", "E": "error"}
    return [
        episode(seed, attempt, codes[c], env=env)
        for seed, outs in results.items()
        for attempt, c in enumerate(outs)
    ]


# ---- pass@k / pass^k ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "at", "hat"),
    [
        # n=5 trials, c=2 successes, k=1: pass@1 = 1 - C(3,1)/C(5,1) = 1 - 3/5 = 0.4;
        # pass^1 = C(2,1)/C(5,1) = 2/5 = 0.4 (both equal the mean at k=1).
        (5, 2, 1, 0.4, 0.4),
        # k=2: pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7; pass^2 = C(2,2)/C(5,2) = 1/10.
        (5, 2, 2, 0.7, 0.1),
        # k=3: pass@3 = 1 - C(3,3)/C(5,3) = 1 - 1/10 = 0.9; pass^3 = C(2,3)/C(5,3) = 0/10 = 0.
        (5, 2, 3, 0.9, 0.0),
        # n=4, c=3, k=2: pass@2 = 1 - C(1,2)/C(4,2) = 1 - 0/6 = 1; pass^2 = C(3,2)/C(4,2) = 3/6.
        (4, 3, 2, 1.0, 0.5),
        # n=4, c=3, k=4: the only draw is all four trials: pass@4 = 1, pass^4 = C(3,4)/1 = 0.
        (4, 3, 4, 1.0, 0.0),
        # n=8, c=4, k=3: pass@3 = 1 - C(4,3)/C(8,3) = 1 - 4/56 = 13/14;
        # pass^3 = C(4,3)/C(8,3) = 4/56 = 1/14.
        (8, 4, 3, 13 / 14, 1 / 14),
        # No success: both 0. All successes: both 1.
        (3, 0, 2, 0.0, 0.0),
        (3, 3, 2, 1.0, 1.0),
    ],
)
def test_pass_k_hand_computed(n: int, c: int, k: int, at: float, hat: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(at)
    assert pass_hat_k(n, c, k) == pytest.approx(hat)


def test_pass_k_matches_brute_force_over_subsets() -> None:
    # Independent definition: over all k-subsets of the n trials, the share with at
    # least one success (pass@k) and with only successes (pass^k).
    for n in range(1, 7):
        for c in range(n + 1):
            trials = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(trials, k))
                assert pass_at_k(n, c, k) == pytest.approx(
                    sum(any(s) for s in subsets) / len(subsets)
                )
                assert pass_hat_k(n, c, k) == pytest.approx(
                    sum(all(s) for s in subsets) / len(subsets)
                )


def test_pass_k_rejects_impossible_arguments() -> None:
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="c <= n"):
        pass_hat_k(3, 4, 1)


def test_pass_k_averaged_over_tasks() -> None:
    # Task 1: 1 success in 3 epochs; task 2: 3 in 3.
    # pass^2: task 1 C(1,2)/C(3,2) = 0, task 2 = 1 -> mean 0.5.
    # pass@2: task 1 1 - C(2,2)/C(3,2) = 1 - 1/3 = 2/3, task 2 = 1 -> mean 5/6.
    # pass^3: 0 and 1 -> 0.5; mean success 4/6.
    m = compute_metrics(task_runs({1: "SFF", 2: "SSS"}), n_boot=200)
    g = m.overall
    assert g.success.value == pytest.approx(4 / 6)
    assert g.pass_hat_k[1].value == pytest.approx(4 / 6)
    assert g.pass_hat_k[2].value == pytest.approx(0.5)
    assert g.pass_at_k[2].value == pytest.approx(5 / 6)
    assert g.pass_hat_k[3].value == pytest.approx(0.5)
    assert set(g.pass_at_k) == {1, 2, 3}
    by_task = {t.task_id: t for t in m.tasks}
    t1 = by_task[task(1).task_id]
    assert (t1.scored, t1.successes) == (3, 1)
    assert t1.pass_at_k[2] == pytest.approx(2 / 3)


# ---- intervals and bootstrap ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "n", "lo", "hi"),
    [
        # Published Wilson score intervals (Newcombe 1998, Stat. Med. 17:857, method 3).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # 0/10: upper = z²/(n + z²) = 3.8415/13.8415 = 0.2775.
        (0, 10, 0.0, 0.2775),
    ],
)
def test_wilson_known_values(s: int, n: int, lo: float, hi: float) -> None:
    got = wilson(s, n)
    assert got is not None
    assert got[0] == pytest.approx(lo, abs=1e-4)
    assert got[1] == pytest.approx(hi, abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson(0, 0) is None
    # Exactly 0 and 1 at the ends (no float noise that would put the mean outside).
    assert wilson(0, 15) == (0.0, pytest.approx(0.2039, abs=1e-4))
    assert wilson(15, 15) == (pytest.approx(0.7961, abs=1e-4), 1.0)


def test_cluster_standard_error_counts_tasks_not_episodes() -> None:
    # 10 tasks x 4 epochs; 5 tasks always succeed, 5 always fail. Mean 0.5.
    # Per task: successes y = 4 or 0, w = 4, residual y - 0.5*w = +-2, sum of squares 40.
    # SE = sqrt(T/(T-1) * 40) / 40 = sqrt(400/9) / 40 = (20/3)/40 = 1/6.
    # (Treating the 40 episodes as independent would give sqrt(.25/40) = 0.079.)
    value, se, _ = ratio_estimate([4.0] * 5 + [0.0] * 5, [4.0] * 10, None)
    assert value == pytest.approx(0.5)
    assert se == pytest.approx(1 / 6)


def test_bootstrap_ci_contains_mean_and_is_seeded() -> None:
    eps = [
        episode(i, a, "failure", progress=((7 * i) % 10) / 10 + 0.03 * a)
        for i in range(12)
        for a in range(3)
    ]
    a = compute_metrics(eps, n_boot=500, seed="one")
    b = compute_metrics(eps, n_boot=500, seed="one")
    c = compute_metrics(eps, n_boot=500, seed="two")
    est = a.overall.progress
    assert est.ci is not None and est.value is not None and est.se is not None
    assert est.ci[0] < est.value < est.ci[1]
    assert a.model_dump_json() == b.model_dump_json()
    assert c.overall.progress.ci != est.ci  # the seed is really used
    # For this smooth case the percentile interval is close to mean +- 1.96 SE.
    assert est.ci[1] - est.ci[0] == pytest.approx(2 * 1.96 * est.se, rel=0.25)


def test_resample_indices_are_stable_across_calls() -> None:
    assert (resample_indices(5, 3, "k") == resample_indices(5, 3, "k")).all()


def test_degenerate_bootstrap_falls_back_to_wilson() -> None:
    # Every task succeeds: the bootstrap interval is [1, 1]; reports show Wilson instead.
    m = compute_metrics(task_runs({i: "S" for i in range(5)}), n_boot=100)
    s = m.overall.success
    assert s.ci == (1.0, 1.0)
    assert s.interval() == s.wilson
    assert s.wilson is not None and s.wilson[0] == pytest.approx(0.5655, abs=1e-4)  # 5/5


# ---- errors, limits, step rates, tools, cost ------------------------------------------------


def test_errors_are_excluded_from_rates_and_counted() -> None:
    # Task 1: S, F; task 2: S, E; task 3: E only.
    eps = task_runs({1: "SF", 2: "SE", 3: "E"})
    g = compute_metrics(eps, n_boot=100).overall
    # Scored: S, F, S -> success 2/3 (errors are not failures).
    assert g.success.value == pytest.approx(2 / 3)
    assert g.success.n == 3
    assert (g.counts.episodes, g.counts.scored, g.counts.error) == (5, 3, 2)
    assert g.counts.error_types == {"env: EnvError": 2}
    assert g.progress.value == pytest.approx(2 / 3)
    # The task that only errored is in no average: pass@1 covers 2 tasks.
    assert g.pass_at_k[1].n_tasks == 2
    # pass@2 needs 2 scored epochs: only task 1 (S, F) -> 1 - C(1,2)/C(2,2) = 1.
    assert g.pass_at_k[2].n_tasks == 1
    assert g.pass_at_k[2].value == pytest.approx(1.0)


def test_limits_are_not_success_and_are_counted_with_reasons() -> None:
    eps = task_runs({1: "L", 2: "S"})
    eps[0] = eps[0].model_copy(update={"limit_reason": "steps"})
    g = compute_metrics(eps, n_boot=0).overall
    assert g.success.value == pytest.approx(0.5)
    assert g.counts.limit == 1
    assert g.counts.limit_reasons == {"steps": 1}


def test_step_rates_and_tool_overuse() -> None:
    def step(i: int, **kw: Any) -> Step:
        return Step(index=i, **kw)

    steps_a = [
        step(0, invalid_action=True, info={"tool_calls": 1, "optimal_tool_calls": 2}),
        step(1, format_error="no Action:", info={"tool_calls": 1, "optimal_tool_calls": 2}),
        step(2, repeated_action=True, info={"tool_calls": 4, "optimal_tool_calls": 2}),
        step(3, info={"tool_calls": 5, "optimal_tool_calls": 2}),
    ]
    steps_b = [step(0, info={"tool_calls": 2, "optimal_tool_calls": 2})]
    eps = [
        episode(1, 0, "success", env="toolqa-v1", steps=steps_a),
        episode(2, 0, "success", env="toolqa-v1", steps=steps_b),
    ]
    g = compute_metrics(eps, n_boot=0).overall
    # 5 steps: 1 invalid, 1 format error, 1 repeated.
    assert g.invalid_action_rate.value == pytest.approx(1 / 5)
    assert g.format_error_rate.value == pytest.approx(1 / 5)
    assert g.loop_rate.value == pytest.approx(1 / 5)
    assert g.counts.episodes_with_invalid == 1
    # Tool calls: the last value of each episode, 5 and 2 -> mean 3.5; optimal 2.
    # Excess max(0, 5-2)=3 and 0 -> 1.5; overuse: 1 of 2 episodes.
    assert g.tools is not None
    assert g.tools.calls.value == pytest.approx(3.5)
    assert g.tools.optimal == pytest.approx(2.0)
    assert g.tools.excess is not None and g.tools.excess.value == pytest.approx(1.5)
    assert g.tools.overuse_rate is not None and g.tools.overuse_rate.value == pytest.approx(0.5)
    assert compute_metrics(task_runs({1: "S"}), n_boot=0).overall.tools is None


def test_cost_from_price_table() -> None:
    eps = [
        episode(1, 0, "success", tokens=(1_000_000, 100_000), model="x"),
        episode(2, 0, "error", tokens=(500_000, 0), model="x"),
    ]
    prices = {"x": Price(input_per_mtok=2.0, output_per_mtok=10.0)}
    u = compute_metrics(eps, prices=prices, n_boot=0).overall.usage
    # Errors still cost: (1.0M + 0.5M) * $2 + 0.1M * $10 = 3 + 1 = $4.
    assert u.cost_usd == pytest.approx(4.0)
    assert u.prompt_tokens == 1_500_000
    missing = compute_metrics(eps, prices={"y": prices["x"]}, n_boot=0).overall.usage
    assert missing.cost_usd is None and missing.unpriced_models == ["x"]


def test_groups_default_to_split_and_use_suite_group() -> None:
    plain = compute_metrics(task_runs({1: "S"}), n_boot=0)
    assert list(plain.by_group) == ["test"]
    assert plain.by_suite == {}
    eps = [episode(1, 0, "success", group="heldin"), episode(2, 0, "failure", group="perturbed")]
    m = compute_metrics(eps, n_boot=0)
    assert set(m.by_group) == {"heldin", "perturbed"}
    assert m.by_group["perturbed"].success.value == 0.0
    assert m.suite == "s-v1" and list(m.by_suite) == ["s-v1"]


def test_metrics_round_trip_through_json() -> None:
    m = compute_metrics(task_runs({1: "SF", 2: "SS", 3: "FE"}), n_boot=50)
    assert RunMetrics.model_validate_json(m.model_dump_json()) == m


# ---- paired comparisons -------------------------------------------------------------------------


def test_sign_test_hand_computed() -> None:
    # 10 wins, 0 losses: two-sided p = 2 * C(10,0) / 2^10 = 2/1024.
    assert binomial_two_sided(10, 0) == pytest.approx(2 / 1024)
    # 6 vs 1: p = 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8/128 = 0.125.
    assert binomial_two_sided(6, 1) == pytest.approx(0.125)
    assert binomial_two_sided(3, 3) == 1.0
    assert binomial_two_sided(0, 0) == 1.0


def test_paired_test_detects_a_real_difference() -> None:
    # One epoch: a fails all 12 tasks, b solves 10 of them -> 10 discordant, all for b.
    a = task_runs(dict.fromkeys(range(12), "F"))
    b = task_runs({i: "S" if i < 10 else "F" for i in range(12)})
    c = compare(a, b, a_name="a", b_name="b", n_boot=500)
    assert c.success is not None
    assert c.success.test == "mcnemar-exact"
    assert (c.success.wins, c.success.losses) == (10, 0)
    assert c.success.p_value == pytest.approx(2 / 1024)
    assert c.success.significant
    assert c.success.delta == pytest.approx(10 / 12)
    assert c.progress is not None and c.progress.significant


def test_paired_test_does_not_flag_a_null_difference() -> None:
    # Same marginal success (6/12) but different tasks: 3 wins and 3 losses -> p = 1.
    a = task_runs({i: "S" if i < 6 else "F" for i in range(12)})
    b = task_runs({i: "S" if 3 <= i < 9 else "F" for i in range(12)})
    c = compare(a, b, n_boot=500)
    assert c.success is not None
    assert (c.success.wins, c.success.losses) == (3, 3)
    assert c.success.p_value == 1.0 and not c.success.significant
    assert c.success.delta == 0.0
    same = compare(a, a, n_boot=500)
    assert same.success is not None and not same.success.significant
    assert same.progress is not None and same.progress.p_value == 1.0


def test_paired_test_over_epochs_uses_tasks_and_drops_errors() -> None:
    # 3 epochs. b better on 7 tasks (2/3 vs 0/3), tied on 1, and one pair dropped by an error.
    a = task_runs({i: "FFF" for i in range(8)})
    b = task_runs({**{i: "SSF" for i in range(7)}, 7: "FFE"})
    c = compare(a, b, n_boot=500)
    assert c.success is not None
    assert c.success.test == "sign-exact"
    assert (c.success.wins, c.success.losses) == (7, 0)
    # p = 2 / 2^7 = 0.015625 < 0.05.
    assert c.success.p_value == pytest.approx(2 / 128)
    assert c.success.significant
    assert c.n_pairs == 8 * 3 - 1 and c.unpaired == 2
    # Mean over the 23 usable pairs: b has 14 successes.
    assert c.success.b == pytest.approx(14 / 23)


def test_paired_bootstrap_delta_and_ci() -> None:
    # Per-task summed differences over 1 pair each: mean 0.25; identical data -> p = 1.
    delta, ci, p = paired_bootstrap([0.0, 0.5, 0.5, 0.0], [1, 1, 1, 1], 500, "k")
    assert delta == pytest.approx(0.25)
    assert ci is not None and ci[0] <= 0.25 <= ci[1]
    assert 0 < p <= 1
    assert paired_bootstrap([0.0, 0.0], [1, 1], 500, "k")[2] == 1.0


def test_compare_runs_splits_by_env() -> None:
    a = task_runs({1: "F", 2: "F"}) + task_runs({1: "S"}, env="maze-v1")
    b = task_runs({1: "S", 2: "S"}) + task_runs({1: "S"}, env="maze-v1")
    scopes = {c.scope: c for c in compare_runs(a, b, n_boot=100)}
    assert {"overall", "env:house-v1", "env:maze-v1", "group:test"} <= set(scopes)
    house = scopes["env:house-v1"].success
    maze = scopes["env:maze-v1"].success
    assert house is not None and house.delta == 1.0
    assert maze is not None and maze.delta == 0.0
    assert scopes["overall"].n_pairs == 3
