"""Item-item views of the purifier family (MGCN, SMORE): ID embeddings gated by modality
features, propagated over frozen feature graphs, read by users through the user-item block of
the normalised graph; FREEDOM's weighted mix of feature graphs (FREEDOM, DRAGON, PGL); and the
trainable feature tables (MGCN, SMORE, PGL, BM3, LATTICE: ``train_features``)."""

from __future__ import annotations

import scipy.sparse as sp
import torch
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.graph import bipartite_edges, cached_knn_graph
from recbole_mmkd.model.transposed import spmm

SparsePair = tuple[torch.Tensor, torch.Tensor]
"""A sparse operator and its transpose (:mod:`recbole_mmkd.model.transposed`)."""


def user_item_block(interactions: sp.coo_matrix) -> torch.Tensor:
    """The ``(n_users, n_items)`` block of :math:`D^{-1/2} A D^{-1/2}` (edge weights
    :math:`1/\\sqrt{d_u d_i}`), sparse CSR: MMRec's ``R`` of MGCN and SMORE."""
    edges, weights = bipartite_edges(interactions)
    block = torch.sparse_coo_tensor(edges, weights, interactions.shape, check_invariants=True)
    return block.coalesce().to_sparse_csr()


def item_item_view(
    graph: SparsePair, user_item: SparsePair, items: torch.Tensor, n_layers: int
) -> torch.Tensor:
    """``items`` propagated ``n_layers`` times over the item-item ``graph``, users the
    ``user_item`` block's sums of the result; users first. Each operator is given with its
    :func:`~recbole_mmkd.model.transposed.csr_transpose` (neither is symmetric)."""
    for _ in range(n_layers):
        items = spmm(*graph, items)
    return torch.cat([spmm(*user_item, items), items])


def max_pool_graphs(graphs: list[torch.Tensor]) -> torch.Tensor:
    """SMORE's fusion graph: the union of the graphs' edges, each weighted by the largest of
    its weights among the graphs that have it (sparse COO in, CSR out)."""
    coalesced = [g.coalesce() for g in graphs]
    index = torch.cat([g.indices() for g in coalesced], dim=1)
    values = torch.cat([g.values() for g in coalesced])
    union, position = torch.unique(index, dim=1, return_inverse=True)
    pooled = torch.full((union.shape[1],), float("-inf"), dtype=values.dtype)
    pooled = pooled.scatter_reduce(0, position, values, reduce="amax")
    size = coalesced[0].shape
    return torch.sparse_coo_tensor(union, pooled, size, check_invariants=True).to_sparse_csr()


def masked_rows(
    table: torch.Tensor, present: torch.Tensor, items: torch.Tensor | None = None
) -> torch.Tensor:
    """Rows ``items`` (default: all) of ``table``, zero where ``present`` is False."""
    if items is not None:
        table, present = table[items], present[items]
    return table * present.unsqueeze(-1).to(table.dtype)


class TrainableFeatures:
    """Mixin for a :class:`~recbole_mmkd.model.base.MultimodalRecommender`: with
    ``train_features`` the model reads a trainable copy of each modality's features,
    initialised from the dataset's (MMRec's ``nn.Embedding.from_pretrained(feat,
    freeze=False)``); zero rows for items missing the modality either way. A subclass that
    replaces :meth:`modal_feature` (SGFD's students) cannot train the copy: it is refused."""

    def init_feature_tables(self, train: bool) -> None:
        """Register ``feature_tables`` (empty unless ``train``); no random draws."""
        if train and type(self).modal_feature is not TrainableFeatures.modal_feature:
            raise ConfigError(
                "config",
                "train_features",
                f"{type(self).__name__} replaces the raw features the trainable copy would feed",
                "set `train_features: false`",
            )
        self.train_features = train
        modalities = self.modalities if train else []
        tables = {m: nn.Parameter(self.raw_feature(m).clone()) for m in modalities}
        self.feature_tables = nn.ParameterDict(tables)

    def modal_feature(self, modality: str, items: torch.Tensor | None = None) -> torch.Tensor:
        """The trainable copy of ``modality``'s features if ``train_features``, else the raw
        features; zero rows for items missing it."""
        if not self.train_features:
            return super().modal_feature(modality, items)
        return masked_rows(self.feature_tables[modality], self.item_present(modality), items)


def modality_shares(weights: dict[str, float] | None, modalities: list[str]) -> dict[str, float]:
    """A ``modality_weights`` setting normalised to sum to 1 over ``modalities`` (null: equal
    shares; MMRec's ``mm_image_weight: 0.1`` is ``{image: 0.1, text: 0.9}``)."""
    weights = weights or {m: 1.0 for m in modalities}
    total = sum(weights[m] for m in modalities)
    return {m: weights[m] / total for m in modalities}


def mixed_knn_graph(features: dict[str, torch.Tensor], shares: dict[str, float], k: int):
    """FREEDOM's item-item graph: :math:`\\sum_m \\omega_m S_m` of the normalised top-``k``
    cosine graphs of each modality's ``features`` (memoised constructions), sparse COO."""
    graphs = [w * cached_knn_graph(features[m], k) for m, w in shares.items()]
    return sum(graphs[1:], graphs[0]).coalesce()
