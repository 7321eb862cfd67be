"""Item-item kNN graphs weighted by their similarities (MGCN's and SMORE's; MMRec's
``build_knn_normalized_graph`` with ``norm_type='sym'``), beside the 0/1 graphs of
:func:`~recbole_mmkd.model.graph.knn_graph` (LATTICE's, FREEDOM's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbole_mmkd.model.graph import cached_knn_graph


def edge_cosines(
    features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, *, chunk_bytes: int = 2**27
) -> torch.Tensor:
    """Cosine similarity of the rows of ``features`` at the two ends of each edge (``rows[e]``,
    ``cols[e]``), the edges' rows gathered about ``chunk_bytes`` at a time: a graph on 4,096-d
    image features never holds all its edges' rows at once (on Amazon Clothing, 230,000 edges
    x 4,096 floats: 3.8 GB a copy). Each row's sum stands alone, so the chunks change no bit.
    Differentiable."""
    unit = F.normalize(features, dim=1)
    if not len(rows):
        return unit.new_zeros(0)
    step = max(1, chunk_bytes // (unit.shape[1] * unit.element_size()))
    return torch.cat([(unit[rows[i : i + step]] * unit[cols[i : i + step]]).sum(1)
                      for i in range(0, len(rows), step)])  # fmt: skip


def weighted_knn_graph(features: torch.Tensor, k: int) -> torch.Tensor:
    r"""Each item's ``k`` most similar items by cosine similarity (the edges of
    :func:`~recbole_mmkd.model.graph.cached_knn_graph`: itself included, rows of all-zero
    features without edges), each edge weighted by its similarity :math:`s_{ij}` and
    normalised :math:`d_i^{-1/2} s_{ij} d_j^{-1/2}`, :math:`d_i = \sum_j s_{ij}` over the row's
    edges (a row whose weights do not sum above zero gets zeros; similarities by
    :func:`edge_cosines`). A coalesced sparse COO tensor."""
    rows, cols = cached_knn_graph(features, k).indices()
    similarity = edge_cosines(features.float(), rows, cols)
    n = features.shape[0]
    degree = similarity.new_zeros(n).index_add_(0, rows, similarity)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), torch.zeros_like(degree))
    values = (inv_sqrt[rows] * similarity * inv_sqrt[cols]).to(features.dtype)
    index = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(index, values, (n, n), check_invariants=True).coalesce()
