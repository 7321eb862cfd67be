"""Co-occurrence graphs of the training interactions, built in the process and kept for it:
users sharing items (DRAGON's user graph; DualGNN's is of the same kind), and, over the
transposed matrix, items sharing users (DA-MRS's item-item behaviour graph)."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp
import torch

_CACHE: dict[tuple[str, int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def top_cooccurring(
    matrix: sp.spmatrix, k: int, *, min_shared: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's ``k`` rows sharing the most columns with it (itself excluded), most shared
    first, ties by row id, pairs sharing fewer than ``min_shared`` columns left out:
    ``(neighbours, counts, n)``, the first two ``(n_rows, k)`` (slots past a row's ``n``
    neighbours hold 0), ``n`` how many it has (at most ``k``). Users over the interaction
    matrix, items over its transpose. Memoised in this process by a digest of the matrix's
    pattern, ``k`` and ``min_shared``."""
    binary = sp.csr_matrix(matrix, dtype=np.float32)
    binary.data[:] = 1.0
    digest = hashlib.sha1(
        np.asarray(binary.shape).tobytes() + binary.indptr.tobytes() + binary.indices.tobytes()
    ).hexdigest()
    key = (digest, k, min_shared)
    if key not in _CACHE:
        _CACHE[key] = _build(binary, k, min_shared)
    return _CACHE[key]


def _build(
    matrix: sp.csr_matrix, k: int, min_shared: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shared = (matrix @ matrix.T).tocoo()
    off_diagonal = (shared.row != shared.col) & (shared.data >= min_shared)
    rows, cols, counts = (
        shared.row[off_diagonal],
        shared.col[off_diagonal],
        shared.data[off_diagonal],
    )
    order = np.lexsort((cols, -counts, rows))
    rows, cols, counts = rows[order], cols[order], counts[order]
    n_rows = matrix.shape[0]
    starts = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - starts[rows]
    top = rank < k
    neighbours = np.zeros((n_rows, k), dtype=np.int64)
    weights = np.zeros((n_rows, k), dtype=np.float32)
    neighbours[rows[top], rank[top]] = cols[top]
    weights[rows[top], rank[top]] = counts[top]
    n = np.bincount(rows[top], minlength=n_rows)
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
