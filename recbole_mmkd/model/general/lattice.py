"""LATTICE: LightGCN with item embeddings smoothed over a learned multimodal item-item graph.

Zhang et al., "Mining Latent Structures for Multimedia Recommendation", ACM MM 2021.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import (
    cached_knn_graph,
    knn_graph,
    lightgcn_layers,
    normalized_adjacency,
)
from recbole_mmkd.model.losses import l2_reg


def _cosine_edges(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of the feature rows at both ends of every edge of ``index`` (2, E)."""
    unit = F.normalize(features, dim=1)
    return (unit[index[0]] * unit[index[1]]).sum(-1)


def _sym_normalize(index: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """Edge values of ``D^-1/2 S D^-1/2``, ``D`` the row sums of ``S``; rows summing to <= 0
    (no edges) get none."""
    degree = values.new_zeros(n).index_add(0, index[0], values)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-12).rsqrt(), torch.zeros_like(degree))
    return inv_sqrt[index[0]] * values * inv_sqrt[index[1]]


@register_model()
class LATTICE(MultimodalRecommender):
    r"""LightGCN on the user-item graph; item embeddings also propagated over a latent item graph.

    Per modality m: projected features :math:`\tilde e^m_i = W_m f^m_i + b_m`, their cosine
    kNN graph :math:`\hat S^m` (the ``knn_k`` largest similarities of each row kept as weights)
    and the fixed kNN graph :math:`\hat A^m` of the raw features, each normalised
    :math:`D^{-1/2} S D^{-1/2}` by row sums. With :math:`\alpha = \mathrm{softmax}(w)` over
    the modalities, the item graph is

    :math:`S = (1-\lambda)\,\mathrm{norm}(\sum_m \alpha_m \hat S^m) + \lambda \sum_m \alpha_m
    \hat A^m`, :math:`h = S^{L} e^{(0)}_I`,

    and the item table is LightGCN's layer mean plus :math:`h / \|h\|`; users are LightGCN's.

    Loss: BPR plus :math:`\lambda_{reg} \frac{1}{2|B|}(\|u\|^2 + \|i^+\|^2 + \|i^-\|^2)` on the
    batch's final rows, as in the paper's code.

    Learned-graph refresh (as MMRec and the authors' code): rebuilt with gradients on the first
    training batch of every epoch (:meth:`on_epoch_start`), which is the only batch whose loss
    reaches the projections and :math:`w`; later batches reuse it detached. Every evaluation
    pass rebuilds it from the current parameters (so the best-validation state is evaluated
    with its own graph), and so does the first forward after :meth:`on_mask_change`. Items
    missing a modality have no edges in that modality's graphs. The kNN is a chunked top-k,
    never a dense ``n_items x n_items`` matrix.

    Config: ``embedding_size``, ``feat_embed_dim`` (projection size), ``knn_k``,
    ``lambda_coeff`` (:math:`\lambda`, weight of the fixed graphs), ``n_mm_layers``
    (:math:`L`, MMRec's ``n_layers``), ``n_ui_layers`` (LightGCN layers, MMRec's
    ``len(weight_size)``), ``reg_weight`` (:math:`\lambda_{reg}`).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.feat_embed_dim: int = config["feat_embed_dim"]
        self.knn_k: int = config["knn_k"]
        self.lambda_coeff: float = config["lambda_coeff"]
        self.n_mm_layers: int = config["n_mm_layers"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.reg_weight: float = config["reg_weight"]
        self.init_id_embeddings(self.embedding_size)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, self.feat_embed_dim) for m, dim in self.feature_dims().items()}
        )
        n_modalities = len(self.modalities)
        # One modality has weight 1: a softmax over a single logit would get no gradient.
        self.modal_weight = (
            nn.Parameter(torch.full((n_modalities,), 1.0 / n_modalities))
            if n_modalities > 1
            else None
        )
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("_item_graph", None, persistent=False)
        self._graph_stale = True
        self._build_original_graphs()

    def _build_original_graphs(self) -> None:
        """Cosine-weighted, normalised kNN graph of each modality's raw features."""
        for m in self.modalities:
            features = self.raw_feature(m)
            index = cached_knn_graph(features, self.knn_k).indices()
            values = _sym_normalize(index, _cosine_edges(features, index), self.n_items)
            graph = torch.sparse_coo_tensor(
                index, values, (self.n_items, self.n_items), check_invariants=True
            )
            self.register_buffer(f"_original_{m}", graph.coalesce(), persistent=False)

    def on_mask_change(self) -> None:
        self._build_original_graphs()
        self._graph_stale = True

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before every epoch: the next batch rebuilds the learned graph."""
        self._graph_stale = True

    def _modal_weights(self) -> torch.Tensor:
        if self.modal_weight is None:
            return self.item_embedding.weight.new_ones(1)
        return torch.softmax(self.modal_weight, dim=0)

    def _build_item_graph(self) -> torch.Tensor:
        """The mixed learned and fixed item-item graph, differentiable in the projections and
        modality weights."""
        weights = self._modal_weights()
        learned_index, learned_values, original_index, original_values = [], [], [], []
        for weight, m in zip(weights, self.modalities, strict=True):
            present = self.item_present(m).unsqueeze(1)
            projected = self.projections[m](self.modal_feature(m)) * present
            with torch.no_grad():  # top-k indices only: chunked, no dense n x n matrix
                index = knn_graph(projected.detach(), self.knn_k).indices()
            learned_index.append(index)
            learned_values.append(weight * _cosine_edges(projected, index))
            original = getattr(self, f"_original_{m}")
            original_index.append(original.indices())
            original_values.append(weight * original.values())
        learned_idx = torch.cat(learned_index, dim=1)
        learned = _sym_normalize(learned_idx, torch.cat(learned_values), self.n_items)
        index = torch.cat([learned_idx, *original_index], dim=1)
        values = torch.cat(
            [(1 - self.lambda_coeff) * learned, self.lambda_coeff * torch.cat(original_values)]
        )
        shape = (self.n_items, self.n_items)
        return torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()

    def _item_graph_for_forward(self) -> torch.Tensor:
        if self.training and not self._graph_stale:
            return self._item_graph
        graph = self._build_item_graph()
        self._item_graph = graph.detach()
        self._graph_stale = False
        return graph

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        item_graph = self._item_graph_for_forward()
        h = self.item_embedding.weight
        for _ in range(self.n_mm_layers):
            h = torch.sparse.mm(item_graph, h)
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = lightgcn_layers(self.adjacency, ego, self.n_ui_layers).split(
            [self.n_users, self.n_items]
        )
        return users, items + F.normalize(h, dim=1)

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, u, pos, neg = self.bpr_batch(interaction)
        return loss + self.reg_weight * l2_reg(u, pos, neg)
