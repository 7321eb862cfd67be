"""The user-item graph that averages each node's neighbours (PyG's ``aggr='mean'``): MMGCN's and
MVGAE's message passing (not symmetric: their products multiply by its transpose in backward,
:mod:`~recbole_mmkd.model.transposed`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def mean_adjacency(interactions: sp.coo_matrix, *, self_loops: bool) -> torch.Tensor:
    """:math:`D^{-1} A` over users and items (users first; sparse CSR): each node the mean of
    its neighbours, with ``self_loops`` of itself and its neighbours (:math:`\\tilde D^{-1}
    (A + I)`). Without self-loops a node with no neighbour gets a zero row."""
    n_users, n_items = interactions.shape
    n = n_users + n_items
    rows = [interactions.row, interactions.col + n_users]
    cols = [interactions.col + n_users, interactions.row]
    if self_loops:
        rows.append(np.arange(n))
        cols.append(np.arange(n))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    degree = np.bincount(rows, minlength=n).astype(np.float32)
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    values = torch.from_numpy(1.0 / degree[rows])
    graph = torch.sparse_coo_tensor(index, values, (n, n), check_invariants=True)
    return graph.coalesce().to_sparse_csr()
