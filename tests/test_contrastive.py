"""InfoNCE against values written down by hand and against the plain cross entropy it
replaced, on both of its computation paths (shifted exponentials, logsumexp)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_mmkd.model.contrastive import DIRECT_MIN_TEMPERATURE, info_nce


def test_cosine_infonce_by_hand():
    anchors = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    candidates = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # cosines [[1, 0], [0.6, 0.8]]; at temperature 0.5 the logits are twice those
    rows = [-math.log(math.e**2 / (math.e**2 + 1)),
            -math.log(math.e**1.6 / (math.e**1.2 + math.e**1.6))]  # fmt: skip
    loss = info_nce(anchors, candidates, temperature=0.5).item()
    assert math.isclose(loss, sum(rows) / 2, rel_tol=1e-6)


@pytest.mark.parametrize("temperature", [0.2, 0.01])
@pytest.mark.parametrize("cosine", [True, False])
def test_equals_cross_entropy_over_scaled_scores_with_its_gradients(temperature, cosine):
    torch.manual_seed(0)
    a = torch.randn(64, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(64, 8, dtype=torch.float64, requires_grad=True)
    ours = info_nce(a, c, temperature=temperature, cosine=cosine)
    x, y = (F.normalize(a, dim=-1), F.normalize(c, dim=-1)) if cosine else (a, c)
    plain = F.cross_entropy(x @ y.T / temperature, torch.arange(64))
    assert torch.allclose(ours, plain, rtol=1e-10)
    grads = torch.autograd.grad(ours, [a, c])
    for got, want in zip(grads, torch.autograd.grad(plain, [a, c]), strict=True):
        assert torch.allclose(got, want, rtol=1e-8, atol=1e-12)


def test_low_temperature_does_not_overflow():
    # positives at cosine 1, negatives at 0: loss log(1 + e^-100), about 0; summed directly,
    # exp(1 / 0.01) = e^100 would overflow float32 to inf
    rows = torch.eye(2)
    assert DIRECT_MIN_TEMPERATURE > 0.01
    loss = info_nce(rows, rows, temperature=0.01).item()
    assert math.isfinite(loss) and loss < 1e-6
