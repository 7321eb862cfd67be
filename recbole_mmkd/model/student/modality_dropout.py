"""MDLightGCN: a LightGCN student with light modality inputs and modality dropout.

The student of the multimodal-recommender-kd design (a cross-modal-attention teacher, a
LightGCN student): He et al., "LightGCN", SIGIR 2020, with whole-modality dropout in training
in the spirit of Neverova et al., "ModDrop", TPAMI 2016. Distilled from a teacher as
``KD-MDLightGCN`` (:mod:`recbole_mmkd.model.student.kd`).
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency


@register_model()
class MDLightGCN(MultimodalRecommender):
    r"""LightGCN whose item inputs add a linear map of each modality the item has.

    Layer-0 item embedding :math:`e^{(0)}_i = \gamma_i + \sum_m \delta^m_i W_m x^m_i`, with
    :math:`\delta^m_i = 0` when item i misses modality m (the item mask) and, in training,
    with probability ``modality_dropout`` independently per item and modality at every step,
    so the student learns to score items whose features are partly missing. Users are ID
    embeddings; propagation and readout are LightGCN's (mean of ``n_layers + 1`` layers),
    :math:`s(u, i) = e_u^\top e_i`.

    Loss: BPR plus :math:`\lambda \frac{1}{2|B|}(\|\gamma_u\|^2 + \|\gamma_{i^+}\|^2 +
    \|\gamma_{i^-}\|^2)` on the batch's ID embeddings (LightGCN's).

    Config: ``embedding_size``, ``n_layers``, ``reg_weight`` (:math:`\lambda`),
    ``modality_dropout``, ``feature_norm``.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.reg_weight: float = config["reg_weight"]
        self.modality_dropout: float = config["modality_dropout"]
        if not 0 <= self.modality_dropout < 1:
            raise ConfigError(
                "config",
                "modality_dropout",
                f"{self.modality_dropout} is outside [0, 1)",
                "give a share below 1 (1 would drop every modality)",
            )
        self.init_id_embeddings(self.embedding_size)
        self.projections = nn.ModuleDict(
            {
                m: nn.Linear(dim, self.embedding_size, bias=False)
                for m, dim in self.feature_dims().items()
            }
        )
        for projection in self.projections.values():
            nn.init.xavier_uniform_(projection.weight)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def item_inputs(self) -> torch.Tensor:
        """Layer-0 item embeddings, with modality dropout when training."""
        items = self.item_embedding.weight
        for m, projection in self.projections.items():
            content = projection(self.modal_feature(m))
            if self.training and self.modality_dropout > 0:
                keep = torch.rand(self.n_items, 1, device=content.device) >= self.modality_dropout
                content = content * keep
            items = items + content
        return items

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_inputs()])
        final = lightgcn_layers(self.adjacency, ego, self.n_layers)
        return final.split([self.n_users, self.n_items])

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        return loss + self.reg_weight * self.id_reg(interaction)
