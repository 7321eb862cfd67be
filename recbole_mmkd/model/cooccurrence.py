"""Co-occurrence graphs of the training interactions, built in the process and kept for it:
users sharing items (DRAGON's user graph; DualGNN's is of the same kind), and, over the
transposed matrix, items sharing users (DA-MRS's item-item behaviour graph)."""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

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


class UserCooccurrenceGraph(nn.Module):
    """DualGNN's and DRAGON's user-user graph: each user reads its ``k`` users sharing the most
    training items, weighted by the softmax of the shared counts, the lists of users with fewer
    padded by :func:`pad_by_resampling`, drawn again by :meth:`resample` (the releases'
    ``topk_sample``, once per epoch). Users sharing nothing with anyone read nothing."""

    def __init__(self, interactions: sp.coo_matrix, k: int) -> None:
        super().__init__()
        self.k = k
        neighbours, counts, n = top_cooccurring(interactions, k)
        self.register_buffer("neighbours", neighbours, persistent=False)
        self.register_buffer("counts", counts, persistent=False)
        self.register_buffer("n_neighbours", n, persistent=False)
        # persistent: the best epoch's draw is restored with the best state (and a teacher's
        # stored state rebuilds its tables), as the releases test each epoch with its own draw
        self.register_buffer("index", neighbours.clone())
        self.register_buffer("weight", counts.clone())
        self._stamp: tuple | None = None
        self._cached: torch.Tensor | None = None
        self.resample()

    def resample(self) -> None:
        slots = pad_by_resampling(self.n_neighbours.cpu(), self.k).to(self.counts.device)
        weights = torch.softmax(self.counts.gather(1, slots), dim=1)
        self.index = self.neighbours.gather(1, slots)
        self.weight = weights * (self.n_neighbours > 0).unsqueeze(1)

    def _matrix(self) -> torch.Tensor:
        """The draw as a sparse CSR ``(n_users, n_users)`` matrix, a slot drawn twice summed,
        built again whenever ``index`` or ``weight`` is replaced (a new draw, a move to another
        device) or changed in place (a restored best state, a test's edit; not an edit through
        ``.data``): one sparse product a batch instead of gathering ``(n_users, k, d)`` rows,
        which with its backward was 0.45 of a DRAGON epoch on TikTok."""
        index, weight = self.index, self.weight
        stale = self._stamp is None or (
            self._stamp[0] is not index
            or self._stamp[1] is not weight
            or self._stamp[2:] != (index._version, weight._version)
        )
        if stale:
            n = len(index)
            rows = torch.arange(n, device=index.device).repeat_interleave(self.k)
            pairs = torch.stack([rows, index.flatten()])
            matrix = torch.sparse_coo_tensor(pairs, weight.flatten(), (n, n), check_invariants=True)
            self._cached = matrix.coalesce().to_sparse_csr()
            self._stamp = (index, weight, index._version, weight._version)
        return self._cached

    def __getstate__(self) -> dict:
        """Without the cached matrix (rebuilt on first use): a sparse CSR tensor cannot be
        deep-copied."""
        return {**super().__getstate__(), "_cached": None, "_stamp": None}

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Each user's weighted sum of its neighbours' rows of ``users`` (in the weights'
        precision: sparse products take one dtype, which autocast does not reconcile)."""
        return torch.sparse.mm(self._matrix(), users.to(self.weight.dtype))
