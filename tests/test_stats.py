"""Paired tests over per-user metrics: scipy's values, known effects, pairing by user id."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recbole_mmkd.report.stats import paired_ttest, per_user_means
from recbole_mmkd.result import RunResult


def _result(model: str, seed: int, users: np.ndarray, values: np.ndarray) -> RunResult:
    return RunResult(
        dataset="d", model=model, seed=seed, config_hash="h", config={}, valid_metric="recall@20",
        best_epoch=0, epochs_run=1, valid_curve=[], best_valid={}, test={}, n_params=0,
        train_seconds=0, valid_seconds=0, test_seconds=0, n_test_users=len(users),
        data_summary={}, environment={}, test_user_ids=users,
        test_per_user={"recall@20": values},
    )  # fmt: skip


def test_per_user_means_align_users_across_seeds():
    users = np.array([3, 1, 2])
    runs = [
        _result("A", 1, users, np.array([0.3, 0.1, 0.2])),
        _result("A", 2, users[::-1], np.array([0.4, 0.2, 0.0])),  # users 2, 1, 3
    ]
    ids, means = per_user_means(runs, "recall@20")
    assert ids.tolist() == [1, 2, 3]
    assert np.allclose(means, [0.15, 0.3, 0.15])
    with pytest.raises(ValueError, match="other users"):
        per_user_means([runs[0], _result("A", 3, np.array([1, 2, 4]), np.zeros(3))], "recall@20")


def test_paired_ttest_equals_scipy_and_detects_planted_effects():
    rng = np.random.default_rng(0)
    users = np.arange(2000)
    base = rng.random(2000)
    shifted = base + 0.05 + rng.normal(0, 0.1, 2000)
    null = base + rng.normal(0, 0.1, 2000)
    ref = [_result("R", 1, users, base)]
    effect = paired_ttest([_result("M", 1, users, shifted)], ref, "recall@20")
    assert effect.p_value == pytest.approx(stats.ttest_rel(shifted, base).pvalue)
    assert effect.p_value < 1e-6 and effect.relative > 0
    assert paired_ttest([_result("N", 1, users, null)], ref, "recall@20").p_value > 0.05
    assert paired_ttest(ref, ref, "recall@20").p_value == 1.0
