"""LightGCN: linear graph convolution over the user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
SIGIR 2020.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MMKDRecommender
from recbole_mmkd.model.graph import normalized_adjacency, propagate
from recbole_mmkd.model.losses import l2_reg


@register_model()
class LightGCN(MMKDRecommender):
    r"""Embeddings propagated ``n_layers`` times over the normalised graph, layers averaged.

    :math:`E^{(k+1)} = \hat{A} E^{(k)}`, :math:`E = \frac{1}{K+1}\sum_{k=0}^{K} E^{(k)}`,
    :math:`s(u, i) = e_u^\top e_i`.

    Loss: BPR on the propagated embeddings plus
    :math:`\lambda \frac{1}{2|B|}(\|e^{(0)}_u\|^2 + \|e^{(0)}_{i^+}\|^2 + \|e^{(0)}_{i^-}\|^2)`
    on the layer-0 (ego) embeddings, as in the paper.

    Config: ``embedding_size``, ``n_layers`` (K), ``reg_weight`` (:math:`\lambda`).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.reg_weight: float = config["reg_weight"]
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        layers = [ego]
        for _ in range(self.n_layers):
            layers.append(propagate(self.adjacency, layers[-1]))
        final = torch.stack(layers).mean(0)
        return final.split([self.n_users, self.n_items])

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        ego = (
            self.user_embedding(interaction[self.USER_ID]),
            self.item_embedding(interaction[self.ITEM_ID]),
            self.item_embedding(interaction[self.NEG_ITEM_ID]),
        )
        return loss + self.reg_weight * l2_reg(*ego)
