"""DA-MRS's distinctive parts on toys whose answers can be written down: the denoised
item-item graphs, the behaviour graph, the pseudo-positives, the feedback weights and the
two alignment losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recbole_mmkd.model.general.damrs import (
    denoised_knn_graphs,
    feedback_weights,
    label_distribution,
    neighbour_discrimination,
    pseudo_positives,
    session_graph,
    symmetric_binary_kl,
)

R = 1 / math.sqrt(2)
# item 0 is the padding row; in modality a, items 1 and 2 point one way, 3 another, 4 between
A = torch.tensor([[0.0, 0.0], [1, 0], [1, 0], [0, 1], [R, R]])
# in modality b, item 4 sits with item 3 only
B = torch.tensor([[0.0, 0.0], [1, 0], [1, 0], [0, 1], [0, 1]])


def test_an_edge_needs_every_modality_at_its_mean_similarity():
    # a's mean similarity over items 1-4 is |sum of unit rows|^2 / 16 = 0.640 (pair 1-4: 0.707
    # passes); b's is 0.5, and b puts 1 and 4 at 0: the pair is noise in b and leaves both graphs
    graphs = denoised_knn_graphs({"a": A, "b": B}, 10)
    block = [[0.0] * 5, [0, 0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0, 0], [0, 0, 0, 0.5, 0.5],
             [0, 0, 0, 0.5, 0.5]]  # fmt: skip
    for graph in graphs.values():
        torch.testing.assert_close(graph.to_dense(), torch.tensor(block))


def test_one_modality_keeps_its_similar_pairs_normalised_by_row_counts():
    dense = denoised_knn_graphs({"a": A}, 10)["a"].to_dense()
    # rows: 1 -> {1, 2, 4}, 2 -> {1, 2, 4}, 3 -> {3, 4}, 4 -> {1, 2, 3, 4}
    assert (dense > 0).sum(1).tolist() == [0, 3, 3, 2, 4]
    assert math.isclose(dense[1, 4].item(), 1 / math.sqrt(3 * 4), rel_tol=1e-6)
    # with k = 1 an item links to itself, its own similarity being the largest
    top1 = denoised_knn_graphs({"a": A}, 1)["a"].to_dense()
    assert top1[3].nonzero().flatten().tolist() == [3] and top1[4].nonzero().flatten().tolist() == [
        4
    ]


def test_behaviour_graph_links_items_sharing_enough_users_and_each_item_to_itself():
    # user 0: items 1, 2, 3; user 1: items 1, 2; user 2: item 3. Items 1-2 share two users.
    pairs = [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 3)]
    rows, cols = zip(*pairs, strict=True)
    inter = sp.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(3, 4))
    expected = [[1.0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 0.5, 0], [0, 0, 0, 1]]
    graph = session_graph(inter, 2, min_shared=2)
    torch.testing.assert_close(graph.to_dense(), torch.tensor(expected))


def test_pseudo_positives_count_the_own_view_twice_then_take_its_own_best_of_the_rest():
    own = torch.tensor([[0.1, 0.4, 0.3, 0.2]])
    total = own + torch.tensor([[0.0, 0.0, 0.5, 0.1]])  # another view prefers item 2
    shared, single = pseudo_positives(own, total, 1)
    # total + own = [0.2, 0.8, 1.1, 0.5]: item 2; own's best of the rest: item 1
    assert shared.tolist() == [[2]] and single.tolist() == [[1]]


def test_pseudo_positives_single_are_the_best_of_own_once_the_shared_are_zeroed():
    generator = torch.Generator().manual_seed(0)
    own = torch.rand(50, 40, generator=generator).softmax(1)
    total = own + torch.rand(50, 40, generator=generator).softmax(1)
    shared, single = pseudo_positives(own, total, 5)
    zeroed = torch.topk(own.scatter(1, shared, 0.0), 5, dim=1).indices  # the release's way
    assert torch.equal(single, zeroed)


def test_neighbour_discrimination_on_three_directions():
    items = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])  # one view
    # anchor item 0: its labels rank item 0 first (shared) and item 1 next (single)
    loss = neighbour_discrimination(items[:, :1], items, n_pseudo_positives=1, temperature=1.0)
    e = math.e
    expected = -math.log(e / (e + 1 + 1 / e)) - math.log(1 / (1 + 1 / e))
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)


def test_feedback_weights_down_weight_disagreeing_views_and_flip_likely_false_pairs():
    users = torch.tensor([[1.0]])
    positive = torch.tensor([[[-2.0]], [[2.0]]])  # the two views disagree on the positive
    negative = torch.tensor([[[1.0]], [[1.0]]])  # both like the negative more, on average
    w_pos, w_neg = feedback_weights(users, positive, negative)
    p = torch.sigmoid(torch.tensor([-2.0, 2.0]))
    mean, variance = p.mean().item(), p.var().item()
    assert math.isclose(w_pos.item(), mean * math.exp(-variance) ** 2, rel_tol=1e-5)
    assert math.isclose(w_neg.item(), p.max().item() - torch.sigmoid(torch.tensor(1.0)).item(),
                        rel_tol=1e-5)  # fmt: skip
    # a pair whose positive is preferred keeps no flipped term
    _, w_neg = feedback_weights(users, -negative, -positive)
    assert w_neg.item() == 0.0


def test_symmetric_kl_of_bernoullis():
    assert symmetric_binary_kl(torch.zeros(3), torch.zeros(3)).item() == 0.0
    value = symmetric_binary_kl(torch.tensor([0.0]), torch.tensor([math.log(3.0)])).item()
    p, q = 0.5, 0.75
    expected = (p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
                + q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)))  # fmt: skip
    assert math.isclose(value, expected, rel_tol=1e-6)


def test_symmetric_kl_stays_finite_where_sigmoids_saturate():
    big = torch.tensor([200.0, -200.0])
    assert torch.isfinite(symmetric_binary_kl(big, -big))
    assert symmetric_binary_kl(big, -big).item() == 400.0  # (1 - 0) * 400 and (0 - 1) * -400


@pytest.mark.parametrize("block_elements", [2**26, 2 * 2 * 30])  # one block; 2-row blocks
def test_neighbour_discrimination_matches_autograd_of_its_formula(block_elements):
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randn(2, 6, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    items = torch.randn(2, 30, 4, dtype=torch.float64, generator=generator, requires_grad=True)

    def formula(anchors: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        similarities = F.normalize(anchors, dim=-1) @ F.normalize(items, dim=-1).transpose(1, 2)
        labels = label_distribution(similarities.detach())
        rows = []
        for view, own in enumerate(labels):
            shared, single = pseudo_positives(own, labels.sum(0), 3)
            scores = torch.exp(similarities[view] / 0.2)
            total = scores.sum(1)
            p_shared = scores.gather(1, shared).sum(1)
            p_single = scores.gather(1, single).sum(1)
            rows.append(-torch.log(p_shared / total + 1e-9)
                        - torch.log(p_single / (total - p_shared) + 1e-9))  # fmt: skip
        return torch.stack(rows).mean()

    fused = neighbour_discrimination(
        anchors, items, n_pseudo_positives=3, temperature=0.2, block_elements=block_elements
    )
    expected = formula(anchors, items)
    assert torch.allclose(fused, expected, rtol=1e-12)
    for got, want in zip(torch.autograd.grad(fused, (anchors, items)),
                         torch.autograd.grad(expected, (anchors, items)), strict=True):  # fmt: skip
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-14)
