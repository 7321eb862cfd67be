"""Paired tests over per-user metrics: scipy's values, known effects, pairing by user id."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recbole_mmkd.reporting.stats import compare, per_user_means
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


def test_compare_equals_scipy_and_detects_planted_effects():
    rng = np.random.default_rng(0)
    users = np.arange(2000)
    base = rng.random(2000)
    shifted = base + 0.05 + rng.normal(0, 0.1, 2000)
    null = base + rng.normal(0, 0.1, 2000)
    ref = [_result("R", 1, users, base)]
    effect = compare([_result("M", 1, users, shifted)], ref, "recall@20")
    assert effect.p_value == pytest.approx(stats.ttest_rel(shifted, base).pvalue)
    assert effect.p_value < 1e-6 and effect.relative_low > 0 and effect.cohens_d > 0
    assert compare([_result("N", 1, users, null)], ref, "recall@20").p_value > 0.05
    assert compare(ref, ref, "recall@20").p_value == 1.0


def _planted(seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.random(3000)
    return base, base + 0.03 + rng.normal(0, 0.2, 3000), base + rng.normal(0, 0.2, 3000)


@pytest.mark.parametrize("test", ["t", "randomisation", "wilcoxon"])
def test_paired_p_values_equal_scipy_and_separate_effect_from_null(test):
    from recbole_mmkd.reporting.stats import paired_p_value

    base, effect, null = _planted()
    p_effect = paired_p_value(effect, base, test=test, n_resamples=2000)
    expected = {
        "t": stats.ttest_rel(effect, base).pvalue,
        "wilcoxon": stats.wilcoxon(effect, base).pvalue,
        "randomisation": stats.permutation_test(
            (effect, base),
            lambda x, y, axis: np.mean(x - y, axis=axis),
            permutation_type="samples",
            vectorized=True,
            n_resamples=2000,
            rng=np.random.default_rng(0),
        ).pvalue,
    }[test]
    assert p_effect == pytest.approx(expected)
    assert p_effect < 0.01
    assert paired_p_value(null, base, test=test, n_resamples=2000) > 0.05
    assert paired_p_value(base, base, test=test) == 1.0


def test_corrections_equal_statsmodels():
    from statsmodels.stats.multitest import multipletests

    from recbole_mmkd.reporting.stats import adjust

    p = [0.01, 0.04, 0.03, 0.5]
    assert np.allclose(adjust(p, correction="holm"), multipletests(p, method="holm")[1])
    assert np.allclose(adjust(p, correction="bh"), multipletests(p, method="fdr_bh")[1])
    assert np.allclose(adjust(p, correction="none"), p)
    with pytest.raises(ValueError, match="correction"):
        adjust(p, correction="bonferroni-ish")


def test_effect_sizes():
    from recbole_mmkd.reporting.stats import cohens_d_paired, relative_improvement_ci

    base, effect, null = _planted()
    point, low, high = relative_improvement_ci(effect, base, n_resamples=500)
    assert point == pytest.approx(effect.mean() / base.mean() - 1)
    assert 0 < low < point < high
    point, low, high = relative_improvement_ci(null, base, n_resamples=500)
    assert low < 0 < high
    diff = np.array([1.0, 2.0, 3.0])
    assert cohens_d_paired(diff, np.zeros(3)) == pytest.approx(2.0)  # mean 2, sd 1
    assert cohens_d_paired(diff, diff - 1) == 0.0


def _seed_runs(model: str, shifts: list[float], users: np.ndarray, base: np.ndarray, rng):
    """One run per seed: every user's value moved by that seed's shift, plus user noise."""
    return [
        _result(model, s, users, base + shift + rng.normal(0, 0.002, len(users)))
        for s, shift in enumerate(shifts)
    ]


def test_an_effect_in_every_user_but_not_across_seeds_is_not_significant_over_seeds():
    rng = np.random.default_rng(3)
    users = np.arange(4000)
    base = rng.random(4000) * 0.2
    # the reference's and the model's runs scatter alike (sd ~0.01); by chance the model's
    # seeds average 0.004 higher, a shift every user shares
    ref = _seed_runs("R", [0.0, 0.01, -0.01, 0.005, -0.005], users, base, rng)
    lucky = _seed_runs("L", [0.012, -0.004, 0.02, -0.008, 0.0], users, base, rng)
    c = compare(lucky, ref, "recall@20")
    assert c.p_value < 1e-6 and c.relative_low > 0  # the users say: different
    assert c.seed_p_value > 0.3 and c.seed_low < 0 < c.seed_high  # re-training says: no
    assert c.seeds_needed > 10 and c.min_detectable > abs(c.relative)
    assert c.n_seeds == (5, 5)


def test_an_effect_consistent_across_seeds_is_significant_over_seeds():
    rng = np.random.default_rng(4)
    users = np.arange(4000)
    base = rng.random(4000) * 0.2
    ref = _seed_runs("R", [0.0, 0.001, -0.001, 0.0005, -0.0005], users, base, rng)
    better = _seed_runs("B", [0.02, 0.021, 0.019, 0.0205, 0.0195], users, base, rng)
    c = compare(better, ref, "recall@20")
    assert c.seed_p_value < 1e-4 and c.seed_low > 0
    assert c.seeds_needed == 2 and c.min_detectable < c.relative
    assert c.seed_p_value == pytest.approx(
        stats.ttest_ind(
            [r.test_per_user["recall@20"].mean() for r in better],
            [r.test_per_user["recall@20"].mean() for r in ref],
            equal_var=False,
        ).pvalue
    )


def test_one_seed_gives_no_seed_level_verdict():
    users = np.arange(50)
    one = compare([_result("A", 1, users, np.full(50, 0.3))],
                  [_result("B", 1, users, np.full(50, 0.2))], "recall@20")  # fmt: skip
    assert np.isnan(one.seed_p_value) and np.isnan(one.seed_low) and np.isnan(one.min_detectable)
    from recbole_mmkd.reporting.stats import adjust_seed_p

    assert np.allclose(adjust_seed_p([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04], equal_nan=True)
