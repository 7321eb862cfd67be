"""LightGCN: linear graph convolution over the user-item graph.

He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for Recommendation",
SIGIR 2020.
"""

from __future__ import annotations

import torch

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MMKDRecommender
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency


@register_model()
class LightGCN(MMKDRecommender):
    r"""Embeddings propagated ``n_layers`` times over the normalised graph, layers averaged.

    :math:`E^{(k+1)} = \hat{A} E^{(k)}`, :math:`E = \frac{1}{K+1}\sum_{k=0}^{K} E^{(k)}`,
    :math:`s(u, i) = e_u^\top e_i`.

    Loss: BPR on the propagated embeddings plus
    :math:`\lambda \frac{1}{2|B|}(\|e^{(0)}_u\|^2 + \|e^{(0)}_{i^+}\|^2 + \|e^{(0)}_{i^-}\|^2)`
    on the layer-0 (ego) embeddings, as in the paper and its authors' code. MMRec's LightGCN
    regularises with its ``EmbLoss`` instead, the unsquared Frobenius norms of the three batch
    tables over :math:`|B|` (on TikTok at the start about a fifth of this pull;
    ``bench/mmrec/step_check.py LightGCN``).

    Config: ``embedding_size``, ``n_layers`` (K), ``reg_weight`` (:math:`\lambda`).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.reg_weight: float = config["reg_weight"]
        self.init_id_embeddings(self.embedding_size)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = lightgcn_layers(self.adjacency, ego, self.n_layers)
        return final.split([self.n_users, self.n_items])

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        return loss + self.reg_weight * self.id_reg(interaction)
