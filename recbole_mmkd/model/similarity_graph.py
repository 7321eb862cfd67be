"""Item-item kNN graphs weighted by their similarities (MGCN's and SMORE's; MMRec's
``build_knn_normalized_graph`` with ``norm_type='sym'``), beside the 0/1 graphs of
:func:`~recbole_mmkd.model.graph.knn_graph` (LATTICE's, FREEDOM's)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbole_mmkd.model.graph import cached_knn_graph


def weighted_knn_graph(features: torch.Tensor, k: int, *, chunk: int = 65536) -> torch.Tensor:
    r"""Each item's ``k`` most similar items by cosine similarity (the edges of
    :func:`~recbole_mmkd.model.graph.cached_knn_graph`: itself included, rows of all-zero
    features without edges), each edge weighted by its similarity :math:`s_{ij}` and
    normalised :math:`d_i^{-1/2} s_{ij} d_j^{-1/2}`, :math:`d_i = \sum_j s_{ij}` over the row's
    edges (a row whose weights do not sum above zero gets zeros). Similarities are computed
    ``chunk`` edges at a time. A coalesced sparse COO tensor."""
    rows, cols = cached_knn_graph(features, k).indices()
    unit = F.normalize(features.float(), dim=1)
    similarity = torch.cat([
        (unit[rows[i : i + chunk]] * unit[cols[i : i + chunk]]).sum(1)
        for i in range(0, len(rows), chunk)
    ]) if len(rows) else unit.new_zeros(0)  # fmt: skip
    n = features.shape[0]
    degree = unit.new_zeros(n).index_add_(0, rows, similarity)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-30).rsqrt(), torch.zeros_like(degree))
    values = (inv_sqrt[rows] * similarity * inv_sqrt[cols]).to(features.dtype)
    index = torch.stack([rows, cols])
    return torch.sparse_coo_tensor(index, values, (n, n), check_invariants=True).coalesce()
