"""Significance tests and effect sizes over per-user test metrics, paired by user.

Tests and corrections come from scipy and statsmodels; this module only pairs the vectors,
averages seeds and names the choices. Per-user vectors are averaged over seeds before
testing, so the unit of the test is the user (thousands of them) and seed noise is folded
into each user's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from recbole_mmkd.result import RunResult

TESTS = ("t", "randomisation", "wilcoxon")
CORRECTIONS = {"holm": "holm", "bh": "fdr_bh", "none": None}


def per_user_means(results: Iterable[RunResult], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted raw user ids, each user's ``metric`` averaged over the runs' seeds).

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
    return users, np.mean(rows, axis=0)


@dataclass(frozen=True)
class Comparison:
    """A model against a reference on one metric, over seed-averaged per-user values."""

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


def compare(
    model: list[RunResult],
    reference: list[RunResult],
    metric: str,
    *,
    test: str = "t",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Pair ``model``'s and ``reference``'s runs by user (seed-averaged) and test them."""
    users_a, a = per_user_means(model, metric)
    users_b, b = per_user_means(reference, metric)
    if not np.array_equal(users_a, users_b):
        raise ValueError(f"{model[0].model} and {reference[0].model} tested different users")
    relative, low, high = relative_improvement_ci(a, b, seed=seed)
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
    )


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
