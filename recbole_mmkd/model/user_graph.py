"""User-user co-occurrence graphs (DRAGON; DualGNN's user graph is of the same kind), built
from the training interactions and kept for the process."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp
import torch

_CACHE: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def top_cooccurring_users(
    interactions: sp.coo_matrix, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each user's ``k`` users sharing the most training items with it (itself excluded), most
    shared first, ties by user id: ``(neighbours, counts, n)``, the first two ``(n_users, k)``
    (rows past a user's ``n`` neighbours hold 0), ``n`` how many it has (at most ``k``).
    Memoised in this process by a digest of the interactions and ``k``."""
    matrix = sp.csr_matrix(interactions, dtype=np.float32)
    matrix.data[:] = 1.0
    key = (hashlib.sha1(matrix.indptr.tobytes() + matrix.indices.tobytes()).hexdigest(), k)
    if key not in _CACHE:
        _CACHE[key] = _build(matrix, k)
    return _CACHE[key]


def _build(matrix: sp.csr_matrix, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shared = (matrix @ matrix.T).tocoo()
    off_diagonal = shared.row != shared.col
    rows, cols, counts = (
        shared.row[off_diagonal],
        shared.col[off_diagonal],
        shared.data[off_diagonal],
    )
    order = np.lexsort((cols, -counts, rows))
    rows, cols, counts = rows[order], cols[order], counts[order]
    n_users = matrix.shape[0]
    starts = np.searchsorted(rows, np.arange(n_users))
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < k
    neighbours = np.zeros((n_users, k), dtype=np.int64)
    weights = np.zeros((n_users, k), dtype=np.float32)
    neighbours[rows[keep], rank[keep]] = cols[keep]
    weights[rows[keep], rank[keep]] = counts[keep]
    n = np.bincount(rows[keep], minlength=n_users)
    return torch.from_numpy(neighbours), torch.from_numpy(weights), torch.from_numpy(n)


def pad_by_resampling(
    n: torch.Tensor, k: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Slots ``(n_users, k)`` into each user's neighbour list: ``0..n-1``, then each further slot
    a uniform copy of one of the slots before it (DRAGON's ``topk_sample``: a user with fewer than
    ``k`` neighbours repeats some, drawn from the growing list). Users with none get slot 0
    throughout (their weights are zero)."""
    slots = torch.arange(k).expand(len(n), k).clone()
    for j in range(1, k):
        pad = j >= n
        draw = (torch.rand(len(n), generator=generator) * j).long()
        slots[pad, j] = slots[pad, draw[pad]]
    return slots
