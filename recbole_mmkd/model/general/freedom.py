"""FREEDOM: frozen item-item graphs and denoised user-item graphs.

Zhou and Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
Recommendation", ACM MM 2023.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.edge_dropout import EdgeDropout
from recbole_mmkd.model.graph import lightgcn_layers
from recbole_mmkd.model.item_views import mixed_knn_graph, modality_shares
from recbole_mmkd.model.losses import bpr_loss


@register_model()
class FREEDOM(EdgeDropout, MultimodalRecommender):
    r"""LightGCN on a pruned user-item graph plus item IDs smoothed over a frozen kNN graph.

    - Frozen item-item graph :math:`S = \sum_m w_m S_m`, :math:`S_m` the normalised top-k
      cosine graph of modality m's features, built once (rebuilt only when an item mask
      changes).
    - Item ID embeddings propagated ``n_mm_layers`` times over S: :math:`h_i`.
    - Degree-sensitive edge pruning (:class:`~recbole_mmkd.model.edge_dropout.EdgeDropout`):
      at each epoch a share ``dropout`` of the user-item edges is dropped, sampling the kept
      ones with probability :math:`\propto 1/\sqrt{d_u d_i}`; evaluation uses the full graph.
    - :math:`e_u, \bar e_i` = LightGCN (``n_ui_layers``, layer mean) on that graph;
      item representation :math:`e_i = \bar e_i + h_i`; :math:`s(u, i) = e_u^\top e_i`.

    Loss: :math:`\mathcal{L}_{BPR}(e_u, e_{i^+}, e_{i^-})
    + \lambda \sum_m \mathcal{L}_{BPR}(e_u, W_m x^m_{i^+}, W_m x^m_{i^-})`,
    the second term aligning users with each modality's projected features.

    Config: ``embedding_size``, ``knn_k``, ``n_mm_layers``, ``n_ui_layers``, ``dropout``,
    ``reg_weight`` (:math:`\lambda`), ``modality_weights`` (``{modality: weight}``, or null for
    equal weights; MMRec's two-modality ``mm_image_weight: 0.1`` is ``{image: 0.1, text: 0.9}``).
    Unlike MMRec's code, the raw feature tables are not fine-tuned (they are fixed inputs, so
    item masks and distillation see one feature source); only the projections :math:`W_m` learn,
    and they have no bias (a bias cancels in the pairwise loss and would never be trained).
    """

    feature_projections = "projections"

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.knn_k: int = config["knn_k"]
        self.n_mm_layers: int = config["n_mm_layers"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.dropout: float = config["dropout"]
        self.reg_weight: float = config["reg_weight"]
        self.modality_weights = modality_shares(config["modality_weights"], self.modalities)

        d = self.embedding_size
        self.init_id_embeddings(d)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, d, bias=False) for m, dim in self.feature_dims().items()}
        )

        self.init_edge_dropout(dataset.inter_matrix(form="coo"))
        self.register_buffer("item_graph", self._item_graph(), persistent=False)

    def _item_graph(self) -> torch.Tensor:
        features = {m: self.raw_feature(m) for m in self.modalities}
        return mixed_knn_graph(features, self.modality_weights, self.knn_k)

    def on_mask_change(self) -> None:
        self.item_graph = self._item_graph()

    def on_epoch_start(self, epoch: int) -> None:
        if self.dropout > 0:
            self.keep_edges(1.0 - self.dropout)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        smoothed = self.item_embedding.weight
        for _ in range(self.n_mm_layers):
            smoothed = torch.sparse.mm(self.item_graph, smoothed)
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = lightgcn_layers(self.current_adjacency(), ego, self.n_ui_layers).split(
            [self.n_users, self.n_items]
        )
        return users, items + smoothed

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, u, *_ = self.bpr_batch(interaction)
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        for modality, projection in self.projections.items():
            pos_f = projection(self.modal_feature(modality, pos))
            neg_f = projection(self.modal_feature(modality, neg))
            loss = loss + self.reg_weight * bpr_loss((u * pos_f).sum(-1), (u * neg_f).sum(-1))
        return loss
