"""LayerGCN's layer refinement on a one-edge graph whose answer can be written down, and its
alternating edge dropout."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from conftest import fast

from recbole_mmkd.model.general.layergcn import refined_layers
from recbole_mmkd.model.graph import normalized_adjacency
from recbole_mmkd.prepare import prepare


def test_each_layer_is_rescaled_by_its_similarity_to_the_ego_layer_and_layers_are_summed():
    adjacency = normalized_adjacency(sp.coo_matrix(np.ones((1, 1))))  # one user, one item
    ego = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # layer 1: A ego = [[1, 1], [1, 0]], both at cosine 1/sqrt(2) to their ego rows;
    # layer 2: A x1 = [[r, 0], [r, r]] (r = 1/sqrt(2)), both at cosine 1: kept as they are
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[r, r], [r, 0.0]]) + torch.tensor([[r, 0.0], [r, r]])
    torch.testing.assert_close(refined_layers(adjacency, ego, 2), expected)


def test_a_node_orthogonal_to_its_neighbourhood_gets_nothing():
    adjacency = normalized_adjacency(sp.coo_matrix(np.ones((1, 1))))
    out = refined_layers(adjacency, torch.eye(2), 1)
    torch.testing.assert_close(out, torch.zeros(2, 2))


def test_training_drops_edges_each_epoch_alternating_draws_and_evaluation_reads_all(toy):
    model = prepare("LayerGCN", "toy", overrides=fast(dropout=0.5), data_path=toy).model
    n_edges = model.edges.shape[1]
    kept = []
    for epoch in range(2):
        torch.manual_seed(0)
        model.on_epoch_start(epoch)
        kept.append(model.train_adjacency.to_dense())
        # half the edges, both directions, renormalised over the kept degrees
        assert (kept[-1] > 0).sum() == 2 * int(n_edges * 0.5)
    assert not torch.equal(
        kept[0], kept[1]
    )  # same seed, another draw: degree-sensitive, then uniform
    model.eval()
    assert (model.adjacency.to_dense() > 0).sum() == 2 * n_edges
