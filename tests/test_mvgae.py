"""MVGAE's parts on toys whose answers can be written down: the product of Gaussian experts,
the KL term, the mean aggregation with self-loops, and the release's item indexing."""

from __future__ import annotations

import math

import torch
from conftest import fast

from recbole_mmkd.model.general.mvgae import gaussian_kl, product_of_experts
from recbole_mmkd.prepare import prepare


def test_product_of_experts_weights_means_by_precision():
    mu = torch.tensor([[0.0], [3.0]])
    logvar = torch.log(torch.tensor([[1.0], [0.5]]))  # precisions 1 and 2
    mean, log_var = product_of_experts(mu, logvar, eps=0.0)
    assert math.isclose(mean.item(), 2.0, rel_tol=1e-6)
    assert math.isclose(log_var.exp().item(), 1 / 3, rel_tol=1e-6)


def test_kl_from_the_standard_normal():
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0.0
    # one dimension, mu = 1, var = e: -0.5 (1 + 1 - 1 - e)
    value = gaussian_kl(torch.ones(1, 1), torch.ones(1, 1)).item()
    assert math.isclose(value, -0.5 * (1 - math.e), rel_tol=1e-6)


def test_released_indexing_reads_item_ids_as_node_ids_in_training(toy):
    model = prepare("MVGAE", "toy", overrides=fast(), data_path=toy).model
    z = torch.randn(model.n_users + model.n_items, model.embedding_size)
    batch = {model.USER_ID: torch.tensor([0]), model.ITEM_ID: torch.tensor([1]),
             model.NEG_ITEM_ID: torch.tensor([2])}  # fmt: skip
    e = torch.sigmoid(z)
    released = model._reconstruction(z, batch)
    expected = -torch.log2(torch.sigmoid(torch.sigmoid(e[0] @ e[1]) - torch.sigmoid(e[0] @ e[2])))
    torch.testing.assert_close(released, expected)
    model.item_indexing = "paper"
    n = model.n_users
    expected = -torch.log2(
        torch.sigmoid(torch.sigmoid(e[0] @ e[n + 1]) - torch.sigmoid(e[0] @ e[n + 2]))
    )
    torch.testing.assert_close(model._reconstruction(z, batch), expected)


def test_the_kl_leaves_out_the_padding_user_and_item(toy):
    model = prepare("MVGAE", "toy", overrides=fast(beta=1.0), data_path=toy).model.eval()
    batch = {model.USER_ID: torch.tensor([1, 2]), model.ITEM_ID: torch.tensor([1, 3]),
             model.NEG_ITEM_ID: torch.tensor([2, 4])}  # fmt: skip
    torch.manual_seed(0)
    with_kl = model.calculate_loss(batch)
    model.beta = 0.0
    torch.manual_seed(0)
    without = model.calculate_loss(batch)
    experts, mu, logvar = model.encode()
    rows = [r for r in range(model.n_users + model.n_items) if r not in (0, model.n_users)]
    expected = sum(gaussian_kl(m[rows], lv[rows]) for m, lv in [(mu, logvar), *experts])
    torch.testing.assert_close(with_kl - without, expected)
