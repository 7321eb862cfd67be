"""ItemKNNCBF on a toy whose scores can be written down: the shrunk cosine, the top-k cut, and
a user's score as the sum over its training items."""

from __future__ import annotations

import math

import torch
from conftest import fast

from recbole_mmkd.model.general.itemknncbf import shrunk_cosine_knn
from recbole_mmkd.prepare import prepare


def test_shrunk_cosine_keeps_each_items_k_most_similar():
    features = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    dense = shrunk_cosine_knn(features, 2, shrink=1.0).to_dense()
    # item 0 with item 1: 2 / (1 * 2 + 1); with itself: 1 / (1 + 1); item 2 is orthogonal
    assert math.isclose(dense[0, 1].item(), 2 / 3, rel_tol=1e-6)
    assert math.isclose(dense[0, 0].item(), 1 / 2, rel_tol=1e-6)
    assert (dense > 0).sum(1).tolist() == [2, 2, 1]  # item 2's second pick has weight 0
    assert math.isclose(dense[2, 2].item(), 9 / 10, rel_tol=1e-6)


def test_a_users_score_sums_its_items_neighbourhoods(toy):
    model = prepare("ItemKNNCBF", "toy", overrides=fast(), data_path=toy).model.eval()
    users, items = model.forward()
    scores = users @ items.T
    history = model.history.to_dense()
    similarity = model.similarity.to_dense()
    u = 3
    expected = sum(similarity[j] for j in history[u].nonzero().flatten())
    torch.testing.assert_close(scores[u], expected)
