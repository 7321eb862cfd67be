"""Significance tests over per-user test metrics, paired by user."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from recbole_mmkd.result import RunResult


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
class PairedComparison:
    model: str
    reference: str
    metric: str
    mean: float
    reference_mean: float
    p_value: float
    n_users: int

    @property
    def relative(self) -> float:
        return self.mean / self.reference_mean - 1 if self.reference_mean else float("nan")


def paired_ttest(
    model: list[RunResult], reference: list[RunResult], metric: str
) -> PairedComparison:
    """Two-sided paired t-test (``scipy.stats.ttest_rel``) of seed-averaged per-user metrics."""
    users_a, a = per_user_means(model, metric)
    users_b, b = per_user_means(reference, metric)
    if not np.array_equal(users_a, users_b):
        raise ValueError(f"{model[0].model} and {reference[0].model} tested different users")
    p = float(stats.ttest_rel(a, b).pvalue) if not np.array_equal(a, b) else 1.0
    return PairedComparison(
        model[0].model, reference[0].model, metric, float(a.mean()), float(b.mean()), p, len(a)
    )
