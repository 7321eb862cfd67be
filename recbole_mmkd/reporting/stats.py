"""Significance tests and effect sizes over per-user test metrics, at two levels.

- **Users** (:func:`paired_p_value`): per-user vectors averaged over seeds, paired by user.
  It answers "do these trained models differ on these users"; with thousands of users it
  finds differences that a re-training would not reproduce, since the seeds' variance is
  folded into each user's value and then averaged away.
- **Seeds** (:func:`seed_p_value`, :func:`two_level_ci`): the unit is the training run.
  Following Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks"
  (MLSys 2021), who show that the training seed is a source of variance a benchmark must
  sample and that the test-set sample alone understates it, the test is Welch's t over the
  runs' test means (each a mean over the same test users), and the interval of the relative
  change is a two-level bootstrap that resamples seeds within each model and users, paired
  across the models. :func:`min_detectable_effect` says how large a change the seeds could
  detect (power 0.8), :func:`seeds_needed` how many seeds an observed change would need.
  Significance markers, corrections and the README's claims use the seed level.

Tests and corrections come from scipy and statsmodels; this module only pairs the vectors,
averages seeds and names the choices.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from recbole_mmkd.result import RunResult

TESTS = ("t", "randomisation", "wilcoxon")
ALPHA = 0.05  # the level every claim, marker and power figure uses
MAX_SEEDS = 1000  # seeds_needed beyond this reads "inf"
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}


def per_seed_users(results: Iterable[RunResult], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted raw user ids, ``(seeds, users)`` matrix of each run's per-user ``metric``).

    Every run must have tested the same users (same dataset split), else pairing by user is
    undefined and this raises."""
    results = list(results)
    if not results:
        raise ValueError("no RunResults")
    users = np.sort(results[0].test_user_ids)
    rows = []
    for r in results:
        order = np.argsort(r.test_user_ids)
        if not np.array_equal(r.test_user_ids[order], users):
            raise ValueError(f"{r.model} seed {r.seed} tested other users than {results[0].model}")
        if metric not in r.test_per_user:
            raise KeyError(f"{r.model} seed {r.seed} has no per-user {metric!r}")
        rows.append(r.test_per_user[metric][order])
    return users, np.asarray(rows, dtype=float)


def per_user_means(results: Iterable[RunResult], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted raw user ids, each user's ``metric`` averaged over the runs' seeds)."""
    users, matrix = per_seed_users(results, metric)
    return users, matrix.mean(axis=0)


@dataclass(frozen=True)
class Comparison:
    """A model against a reference on one metric: over seed-averaged per-user values
    (``p_value``, ``relative_low/high``, ``cohens_d``) and over seeds (``seed_p_value``,
    ``seed_low/high``, ``min_detectable``, ``seeds_needed``; NaN with fewer than two seeds
    on a side)."""

    model: str
    reference: str
    metric: str
    mean: float
    reference_mean: float
    relative: float
    relative_low: float
    relative_high: float
    cohens_d: float
    p_value: float
    test: str
    n_users: int
    seed_p_value: float
    seed_low: float
    seed_high: float
    min_detectable: float  # relative change the seeds detect with power 0.8 at alpha 0.05
    seeds_needed: float  # seeds per side for power 0.8 at the observed change
    n_seeds: tuple[int, int]


def compare(
    model: list[RunResult],
    reference: list[RunResult],
    metric: str,
    *,
    test: str = "t",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Test ``model``'s runs against ``reference``'s, by user (seed-averaged, paired) and by
    seed (Welch over the runs' means; a two-level bootstrap interval)."""
    users_a, runs_a = per_seed_users(model, metric)
    users_b, runs_b = per_seed_users(reference, metric)
    if not np.array_equal(users_a, users_b):
        raise ValueError(f"{model[0].model} and {reference[0].model} tested different users")
    a, b = runs_a.mean(axis=0), runs_b.mean(axis=0)
    relative, low, high = relative_improvement_ci(a, b, seed=seed)
    means_a, means_b = runs_a.mean(axis=1), runs_b.mean(axis=1)
    seed_low, seed_high = two_level_ci(runs_a, runs_b, seed=seed)
    return Comparison(
        model[0].model,
        reference[0].model,
        metric,
        float(a.mean()),
        float(b.mean()),
        relative,
        low,
        high,
        cohens_d_paired(a, b),
        paired_p_value(a, b, test=test, n_resamples=n_resamples, seed=seed),
        test,
        len(a),
        seed_p_value(means_a, means_b),
        seed_low,
        seed_high,
        min_detectable_effect(means_a, means_b),
        seeds_needed(means_a, means_b),
        (len(means_a), len(means_b)),
    )


def seed_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of Welch's t test of the runs' means ``a`` against ``b`` (one value
    per seed); NaN with fewer than two seeds on a side, 1 when both sides are identical."""
    if min(len(a), len(b)) < 2:
        return float("nan")
    if a.std() == b.std() == 0:  # no seed variance at all: any difference is certain
        return 1.0 if a.mean() == b.mean() else 0.0
    if np.array_equal(np.sort(a), np.sort(b)):
        return 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def two_level_ci(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 2_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the relative change ``mean(a) / mean(b) - 1`` under a two-level
    bootstrap: each resample draws seeds with replacement within each model (rows of the
    ``(seeds, users)`` matrices ``a`` and ``b``) and users with replacement, the same users
    for both models. NaN with fewer than two seeds on a side."""
    if min(len(a), len(b)) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_users = a.shape[1]
    out = []
    for start in range(0, n_resamples, 250):  # memory: 250 x users weights at a time
        size = min(250, n_resamples - start)
        user_w = np.stack([np.bincount(rng.integers(0, n_users, n_users), minlength=n_users)
                           for _ in range(size)])  # fmt: skip
        sides = []
        for runs in (a, b):
            picks = rng.integers(0, len(runs), (size, len(runs)))
            seed_w = np.stack([np.bincount(p, minlength=len(runs)) for p in picks])
            sides.append(((seed_w @ runs) * user_w).sum(axis=1))  # both sides: same user draw
        out.append(sides[0] / len(a) / (sides[1] / len(b)) - 1)
    ratios = np.concatenate(out)
    tail = (1 - level) / 2
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))


def min_detectable_effect(
    a: np.ndarray, b: np.ndarray, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest relative change (to ``mean(b)``) that a two-sample t test over these
    seed counts detects with ``power``, the spread being the pooled standard deviation of the
    runs' means ``a`` and ``b``; NaN with fewer than two seeds on a side. At ``alpha``
    uncorrected: a table's correction over several comparisons needs larger changes."""
    from statsmodels.stats.power import TTestIndPower

    if min(len(a), len(b)) < 2:
        return float("nan")
    d = TTestIndPower().solve_power(nobs1=len(a), ratio=len(b) / len(a), alpha=alpha,
                                    power=power)  # fmt: skip
    return float(d * _pooled_sd(a, b) / b.mean())


def seeds_needed(a: np.ndarray, b: np.ndarray, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds per side a two-sample t test needs to detect the observed change of the runs'
    means ``a`` over ``b`` with ``power`` at ``alpha`` uncorrected (the smallest such count;
    inf for no change or beyond :data:`MAX_SEEDS`, NaN with fewer than two seeds on a
    side)."""
    from statsmodels.stats.power import TTestIndPower

    if min(len(a), len(b)) < 2:
        return float("nan")
    sd, change = _pooled_sd(a, b), abs(a.mean() - b.mean())
    if change == 0:
        return float("inf")
    if sd == 0:
        return 2.0
    analysis = TTestIndPower()
    for n in range(2, MAX_SEEDS + 1):
        if analysis.power(effect_size=change / sd, nobs1=n, alpha=alpha, ratio=1) >= power:
            return float(n)
    return float("inf")


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = len(a), len(b)
    return float(np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)))


def paired_p_value(
    a: np.ndarray, b: np.ndarray, *, test: str = "t", n_resamples: int = 10_000, seed: int = 0
) -> float:
    """Two-sided p-value of a paired test of ``a`` against ``b``: ``t`` (scipy's
    ``ttest_rel``, the default), ``randomisation`` (scipy's ``permutation_test`` flipping
    the sign of each user's difference, statistic = mean difference) or ``wilcoxon``
    (signed-rank; inflated type-I error at thousands of users, Ihemelandu and Ekstrand,
    SIGIR 2023). Identical vectors give 1."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    if np.array_equal(a, b):
        return 1.0
    if test == "t":
        return float(stats.ttest_rel(a, b).pvalue)
    if test == "wilcoxon":
        return float(stats.wilcoxon(a, b).pvalue)
    result = stats.permutation_test(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def adjust(p_values: Iterable[float], *, correction: str = "holm") -> np.ndarray:
    """p-values corrected across the comparisons of one table: ``holm``, ``bh``
    (Benjamini-Hochberg) or ``none``; statsmodels' ``multipletests``."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {tuple(CORRECTIONS)}, got {correction!r}")
    p = np.asarray(list(p_values), dtype=float)
    if CORRECTIONS[correction] is None or p.size == 0:
        return p
    return multipletests(p, method=CORRECTIONS[correction])[1]


def adjust_seed_p(p_values: Iterable[float], *, correction: str = "holm") -> np.ndarray:
    """:func:`adjust` for seed-level p-values, some of which may be NaN (a comparison with a
    single seed on a side): the others are corrected among themselves, NaN stays NaN."""
    p = np.asarray(list(p_values), dtype=float)
    out = np.full_like(p, np.nan)
    known = ~np.isnan(p)
    out[known] = adjust(p[known], correction=correction)
    return out


def relative_improvement_ci(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 2_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Relative improvement ``mean(a) / mean(b) - 1`` and its paired bootstrap percentile
    confidence interval over users (scipy's ``bootstrap``)."""
    point = float(a.mean() / b.mean() - 1)
    result = stats.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x, axis=axis) / np.mean(y, axis=axis) - 1,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)


def cohens_d_paired(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d for paired data (d_z): mean of the differences over their standard
    deviation (ddof 1); 0 when the differences are all equal."""
    diff = a - b
    sd = diff.std(ddof=1)
    return float(diff.mean() / sd) if sd > 0 else 0.0
