"""User-item graph operators, built once per dataset."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch


def normalized_adjacency(interactions: sp.coo_matrix) -> torch.Tensor:
    """Symmetrically normalised bipartite adjacency ``D^-1/2 A D^-1/2`` as a sparse CSR tensor.

    ``interactions`` is the ``(n_users, n_items)`` training matrix; the result is square over
    ``n_users + n_items`` nodes, users first. Isolated nodes keep zero rows. CSR, because
    ``torch.sparse.mm`` with it is about 1.7x faster than with COO on CPU (forward + backward,
    TikTok, 2 layers; see bench/bench_foundation.py).
    """
    n_users, n_items = interactions.shape
    rows = np.concatenate([interactions.row, interactions.col + n_users])
    cols = np.concatenate([interactions.col + n_users, interactions.row])
    n = n_users + n_items
    degree = np.bincount(rows, minlength=n).astype(np.float32)
    inv_sqrt = np.zeros_like(degree)
    np.divide(1.0, np.sqrt(degree), out=inv_sqrt, where=degree > 0)
    values = inv_sqrt[rows] * inv_sqrt[cols]
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    values_t = torch.from_numpy(values)
    coo = torch.sparse_coo_tensor(index, values_t, (n, n), check_invariants=True).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``, whose backward is ``A @ grad`` (no transpose)."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, dense)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.adjacency, grad)


def propagate(adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """One propagation step over a *symmetric* sparse adjacency (e.g. :func:`normalized_adjacency`).

    Same values and gradients as ``torch.sparse.mm``; about 2x faster forward + backward on CPU,
    because torch's CSR backward transposes the matrix on every call.
    """
    return _SymmetricSpMM.apply(adjacency, dense)
