"""Statistics behind the evaluation metrics: pass@k / pass^k, intervals, bootstrap, paired tests.

- pass@k, the chance that at least one of k samples succeeds, with the
  unbiased estimator ``1 - C(n-c, k) / C(n, k)`` of Chen et al. 2021
  ("Evaluating Large Language Models Trained on Code").
- pass^k, the chance that *all* k i.i.d. trials succeed (tau-bench, Yao et
  al. 2024, "τ-bench: A Benchmark for Tool-Agent-User Interaction"), with the
  unbiased estimator ``C(c, k) / C(n, k)``. tau-bench reports it as a curve
  over k; we report it next to the mean success rate, since pass^1 is that mean.
- Wilson score intervals for rates (Wilson 1927): unlike the normal
  approximation they stay inside [0, 1] and do not collapse at 0 or n.
- Task-level (cluster) uncertainty, following Miller 2024 ("Adding Error
  Bars to Evals"): the epochs of one task are correlated, so standard errors
  are cluster-robust and the bootstrap resamples whole tasks.
- Paired comparisons of two runs on the same tasks: the exact McNemar test
  (one epoch) or the exact sign test on per-task success (several epochs),
  and a paired task-level bootstrap for continuous metrics.

Everything is deterministic: bootstrap generators are seeded from strings
(a SHA-256 of the key), never from global state.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k draws without replacement from n trials, c of them successes, succeeds)."""
    _check_nck(n, c, k)
    # C(n-c, k) is 0 when fewer than k failures exist: some draw must succeed.
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k: P(all of k draws without replacement from n trials, c of them successes, succeed)."""
    _check_nck(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_nck(n: int, c: int, k: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")


def z_value(confidence: float) -> float:
    """Two-sided standard normal quantile: 1.959964 for 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for ``successes / n``; None when n is 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds at 0/n and n/n are exactly 0 and 1; float noise must not move them.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def rng_for(key: str) -> np.random.Generator:
    """A numpy generator seeded from a string (stable across machines and processes)."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(seed)


def resample_indices(n_clusters: int, n_boot: int, key: str) -> NDArray[np.int64]:
    """``n_boot`` bootstrap resamples (rows) of ``n_clusters`` cluster indices, seeded by ``key``."""
    return rng_for(key).integers(0, n_clusters, size=(n_boot, n_clusters), dtype=np.int64)


def percentile_ci(replicates: FloatArray, confidence: float) -> tuple[float, float] | None:
    reps = replicates[np.isfinite(replicates)]
    if reps.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(reps, [tail, 100 - tail])
    return float(lo), float(hi)


def ratio_estimate(
    num: Sequence[float],
    den: Sequence[float],
    idx: NDArray[np.int64] | None,
    confidence: float = 0.95,
) -> tuple[float | None, float | None, tuple[float, float] | None]:
    """Mean ``sum(num) / sum(den)`` over clusters, its cluster-robust SE and bootstrap CI.

    ``num[i]`` and ``den[i]`` are cluster ``i``'s totals (a task's successes
    and scored episodes, or its invalid steps and steps). The SE is the
    linearised (sandwich) variance of a ratio estimator with the ``T/(T-1)``
    small-sample factor: with one unit per cluster it is the usual
    ``sd / sqrt(n)``. ``idx`` holds the bootstrap resamples of cluster indices
    (shared by all metrics of a group, so their replicates are comparable).
    """
    y = np.asarray(num, dtype=np.float64)
    w = np.asarray(den, dtype=np.float64)
    total = float(w.sum())
    if y.size == 0 or total <= 0:
        return None, None, None
    mean = float(y.sum()) / total
    t = y.size
    se: float | None = None
    if t > 1:
        resid = y - mean * w
        se = math.sqrt(t / (t - 1) * float((resid**2).sum())) / total
    ci: tuple[float, float] | None = None
    if idx is not None and t > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = y[idx].sum(axis=1) / w[idx].sum(axis=1)
        ci = percentile_ci(reps, confidence)
    return mean, se, ci


def binomial_two_sided(wins: int, losses: int) -> float:
    """Exact two-sided sign test of ``wins`` vs ``losses`` under p = 1/2 (ties already dropped).

    With binary outcomes paired once per task this is the exact McNemar test:
    only the discordant pairs carry information.
    """
    n = wins + losses
    if n == 0:
        return 1.0
    x = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(x + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(
    diff_sums: Sequence[float],
    counts: Sequence[float],
    n_boot: int,
    key: str,
    confidence: float = 0.95,
) -> tuple[float, tuple[float, float] | None, float]:
    """Mean paired difference ``b - a``, its task-level bootstrap CI and a two-sided p-value.

    ``diff_sums[i]`` is task ``i``'s summed ``b - a`` over its ``counts[i]``
    paired epochs; the mean is over pairs, the resampling over tasks. The
    p-value is twice the share of replicates on the far side of zero (the
    percentile-interval inversion), floored at ``1 / n_boot`` when none
    crosses; identical runs give 1.
    """
    d = np.asarray(diff_sums, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    if d.size == 0 or w.sum() <= 0:
        return 0.0, None, 1.0
    delta = float(d.sum() / w.sum())
    if d.size == 1 or n_boot <= 0:  # no resampling: no interval, no bootstrap p-value
        return delta, None, 1.0
    if np.allclose(d, 0.0):
        return delta, (0.0, 0.0), 1.0
    idx = resample_indices(d.size, n_boot, key)
    reps = d[idx].sum(axis=1) / w[idx].sum(axis=1)
    ci = percentile_ci(reps, confidence)
    below = float((reps <= 0).mean())
    above = float((reps >= 0).mean())
    p = min(1.0, 2 * min(below, above))
    return delta, ci, max(p, 1.0 / n_boot)
