"""The neighbour-mean graph of MMGCN and MVGAE on a graph small enough to average by hand."""

import numpy as np
import scipy.sparse as sp
import torch

from recbole_mmkd.model.mean_graph import mean_adjacency
from recbole_mmkd.model.transposed import csr_transpose, spmm

# user 0 holds items 0 and 1; user 1 holds item 1; user 2 holds nothing
INTER = sp.coo_matrix((np.ones(3), ([0, 0, 1], [0, 1, 1])), shape=(3, 2))
X = torch.tensor([[1.0], [2.0], [5.0], [3.0], [4.0]])  # users 0, 1, 2, items 0, 1


def test_each_node_averages_its_neighbours_and_an_isolated_node_gets_zero():
    out = torch.sparse.mm(mean_adjacency(INTER, self_loops=False), X).squeeze(1)
    torch.testing.assert_close(out, torch.tensor([(3 + 4) / 2, 4, 0, 1, (1 + 2) / 2]))


def test_with_self_loops_each_node_averages_itself_and_its_neighbours():
    out = torch.sparse.mm(mean_adjacency(INTER, self_loops=True), X).squeeze(1)
    torch.testing.assert_close(out, torch.tensor([(1 + 3 + 4) / 3, (2 + 4) / 2, 5, (3 + 1) / 2,
                                                  (4 + 1 + 2) / 3]))  # fmt: skip


def test_the_stored_transpose_gives_the_gradient_of_the_mean():
    graph = mean_adjacency(INTER, self_loops=False)
    x = X.clone().requires_grad_()
    spmm(graph, csr_transpose(graph), x).pow(2).sum().backward()
    reference = X.clone().requires_grad_()
    (graph.to_dense() @ reference).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, reference.grad)
