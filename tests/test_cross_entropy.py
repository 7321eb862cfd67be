"""The fused cross-entropy over inner products: a known answer, and the value and gradients of
the unfused form."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_mmkd.model.cross_entropy import product_cross_entropy


def test_orthogonal_candidates_give_log_of_their_count():
    anchor = torch.zeros(3, 4)  # every logit 0: a uniform softmax over 5 candidates
    loss = product_cross_entropy(anchor, torch.randn(5, 4), torch.tensor([0, 2, 4]))
    torch.testing.assert_close(loss, torch.full((3,), math.log(5)))


def test_value_and_gradients_are_the_unfused_cross_entropys():
    torch.manual_seed(0)
    anchor = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    table = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 8, 3, 3, 1, 5])
    weights = torch.rand(6, dtype=torch.float64)  # a per-row upstream gradient
    fused = (product_cross_entropy(anchor, table, targets) * weights).sum()
    plain = (F.cross_entropy(anchor @ table.T, targets, reduction="none") * weights).sum()
    torch.testing.assert_close(fused, plain)
    grads = torch.autograd.grad(fused, (anchor, table))
    torch.testing.assert_close(grads, torch.autograd.grad(plain, (anchor, table)))


def test_a_second_backward_through_the_same_graph_is_refused():
    anchor = torch.randn(2, 3, requires_grad=True)
    loss = product_cross_entropy(anchor, torch.randn(4, 3), torch.tensor([1, 2])).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="once"):
        loss.backward()


def test_under_autocast_it_runs_in_float32():
    anchor = torch.randn(4, 3, requires_grad=True)
    table = torch.randn(6, 3, requires_grad=True)
    targets = torch.tensor([0, 5, 2, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = product_cross_entropy(anchor @ torch.eye(3), table, targets).sum()
    loss.backward()
    assert loss.dtype == torch.float32 and anchor.grad.dtype == torch.float32
    plain = F.cross_entropy(anchor.detach() @ table.detach().T, targets, reduction="sum")
    torch.testing.assert_close(loss.detach(), plain, rtol=1e-2, atol=1e-2)
