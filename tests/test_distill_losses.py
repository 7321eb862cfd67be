"""Distillation losses against values computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from recbole_mmkd.distill import losses as L
from recbole_mmkd.distill.schedules import temperature

LN3 = math.log(3)


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def close(value: torch.Tensor, expected: float) -> bool:
    return math.isclose(value.item(), expected, rel_tol=1e-5, abs_tol=1e-6)


def test_logit_kd_is_t_squared_kl():
    # teacher softmax [3/4, 1/4], student [1/2, 1/2]
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert close(L.logit_kd(t([0.0, 0.0]), t([LN3, 0.0]), 1.0), kl)
    # doubling logits and temperature keeps both distributions: only T^2 changes the value
    assert close(L.logit_kd(t([0.0, 0.0]), t([2 * LN3, 0.0]), 2.0), 4 * kl)
    assert close(L.logit_kd(t([LN3, 0.0]), t([LN3, 0.0]), 3.0), 0.0)


def test_sgfd_response_kd_is_l1_between_softened_distributions():
    # |3/4 - 1/2| and |1/4 - 1/2|, mean over the 2 entries; no T^2
    assert close(L.sgfd_response_kd(t([0.0, 0.0]), t([LN3, 0.0]), 1.0), 0.25)
    assert close(L.sgfd_response_kd(t([0.0, 0.0]), t([5 * LN3, 0.0]), 5.0), 0.25)


def test_feature_kd_is_mse():
    assert close(L.feature_kd(t([1.0, 2.0]), t([0.0, 0.0])), 2.5)


def test_ranking_distillation_weights_and_loss():
    weights = L.rd_position_weights(2, 1.0)
    z = 1 + math.exp(-1)
    assert torch.allclose(weights, t(1 / z, math.exp(-1) / z))
    # all scores 0: each pseudo-positive costs log 2, weights sum to 1
    assert close(L.ranking_distillation(t([0.0, 0.0]), weights), math.log(2))
    # one user, scores (1, -1): -(w1 log s(1) + w2 log s(-1))
    log_sigmoid = [-math.log(1 + math.exp(-1)), -math.log(1 + math.e)]
    expected = -(weights[0].item() * log_sigmoid[0] + weights[1].item() * log_sigmoid[1])
    assert close(L.ranking_distillation(t([1.0, -1.0]), weights), expected)
    with pytest.raises(ValueError, match="rd_lambda"):
        L.rd_position_weights(3, 0.0)


def test_rrd_permutation_likelihood():
    # all zero: -log(1/3) - log(1/2) = log 6
    assert close(L.relaxed_ranking_distillation(t([0.0, 0.0]), t([0.0])), math.log(6))
    a, b, c, d = 2.0, 1.0, 0.5, -1.0
    expected = -(a - math.log(math.exp(a) + math.exp(b) + math.exp(c) + math.exp(d)))
    expected -= b - math.log(math.exp(b) + math.exp(c) + math.exp(d))
    assert close(L.relaxed_ranking_distillation(t([a, b]), t([c, d])), expected)
    probs = L.rrd_sampling_weights(3, 1.0)
    assert torch.allclose(probs, torch.exp(-t(1.0, 2.0, 3.0)) / torch.exp(-t(1.0, 2.0, 3.0)).sum())


def test_scaled_cosine_error():
    rows = L.scaled_cosine_error(t([1.0, 0.0], [1.0, 0.0]), t([0.0, 1.0], [1.0, 1.0]), alpha=3.0)
    assert rows.shape == (2,) and rows.tolist() == pytest.approx([1.0, (1 - 2**-0.5) ** 3])


def test_bidirectional_info_nce_and_orthogonality():
    eye = torch.eye(2)
    # S = I: each row's CE is log(1 + e^-1), both directions alike
    assert close(L.bidirectional_info_nce(eye, eye, 1.0), math.log(1 + math.exp(-1)))
    swapped = eye.flip(0)  # positives now score 0 and negatives 1
    assert close(L.bidirectional_info_nce(eye, swapped, 1.0), math.log(1 + math.e))
    assert close(L.orthogonality(t([1.0, 0.0]), t([0.0, 1.0])), 0.0)
    assert close(L.orthogonality(t([1.0, 0.0], [1.0, 0.0]), t([1.0, 1.0], [2.0, 0.0])), 0.75)


def test_losses_pass_gradients_to_both_sides():
    student = torch.randn(4, 5, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    L.sgfd_response_kd(student, teacher, 5.0).backward()
    assert student.grad.abs().sum() > 0 and teacher.grad.abs().sum() > 0


def test_temperature_schedules():
    assert temperature("constant", 50.0, 30, 0.5, 1.0) == 50.0
    assert temperature("exponential", 10.0, 2, 0.5, 1.0) == 2.5
    assert temperature("exponential", 10.0, 10, 0.5, 1.0) == 1.0  # floor
    with pytest.raises(ValueError, match="t_decay"):
        temperature("constant", 0.0, 0, 0.5, 1.0)
    with pytest.raises(ValueError, match="schedule"):
        temperature("cosine", 5.0, 0, 0.5, 1.0)


def test_pairwise_kd_is_bernoulli_kl_of_ranking_probabilities():
    # teacher margin 0 -> p = 1/2; student margin ln 3 -> q = 3/4
    expected = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert close(L.pairwise_kd(t(LN3), t(0.0)), expected)
    assert close(L.pairwise_kd(t(2 * LN3), t(0.0), temperature=2.0), expected)
    assert close(L.pairwise_kd(t(1.0, -2.0), t(1.0, -2.0)), 0.0)


def test_raw_kl_div_matches_the_released_formula():
    # mean of t * (log t - y): (1 * (0 - 1) + e * (1 - 2)) / 2
    assert close(L.raw_kl_div(t(1.0, 2.0), t(1.0, math.e)), (-1 - math.e) / 2)
