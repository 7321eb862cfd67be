"""PromptMM's multimodal teacher.

Wei et al., "PromptMM: Multi-Modal Knowledge Distillation for Recommendation with Prompt-Tuning",
WWW 2024.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency, propagate

Prompts = tuple[torch.Tensor, torch.Tensor]  # (user prompts, item prompts), each (n, d)


@register_model()
class PromptMMTeacher(MultimodalRecommender):
    r"""ID graph embeddings plus one propagation round of each modality's projected features.

    Modality m: item features :math:`f^m_i = W_m x^m_i + p_i` and user features
    :math:`f^m_u = \sum_{i \in N(u)} \hat{A}_{ui} f^m_i` (one round over the normalised
    user-item graph). IDs: LightGCN over :math:`[\gamma_u + p_u; \gamma_i + p_i]`, ``n_layers``
    layers, mean. Output :math:`e = e^{id} + \text{modal\_rate} \sum_m \mathrm{norm}(f^m)`,
    :math:`s(u, i) = e_u^\top e_i`. :math:`p` are the prompts of PromptMM's prompt module
    (zero when the teacher trains alone); the student passes them to :meth:`tables`.

    Loss: BPR plus :math:`\lambda \frac{1}{2|B|}` times the squared norms of the batch's ID
    embeddings.

    Config: ``embedding_size``, ``n_layers``, ``modal_rate``, ``reg_weight``.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.modal_rate: float = config["modal_rate"]
        self.reg_weight: float = config["reg_weight"]
        self.init_id_embeddings(self.embedding_size)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, self.embedding_size) for m, dim in self.feature_dims().items()}
        )
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def tables(
        self, prompts: Prompts | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """Fused user and item tables, and each modality's (user, item) feature tables."""
        users, items = self.user_embedding.weight, self.item_embedding.weight
        if prompts is not None:
            users, items = users + prompts[0], items + prompts[1]
        ids = lightgcn_layers(self.adjacency, torch.cat([users, items]), self.n_layers)
        user_e, item_e = ids.split([self.n_users, self.n_items])
        modal = {}
        for m, projection in self.projections.items():
            present = self.item_present(m).unsqueeze(1).to(items.dtype)
            feature = projection(self.modal_feature(m)) * present
            if prompts is not None:
                feature = feature + prompts[1]
            spread = propagate(self.adjacency, torch.cat([feature.new_zeros(users.shape), feature]))
            modal[m] = (spread[: self.n_users], feature)
            user_e = user_e + self.modal_rate * F.normalize(modal[m][0], dim=1)
            item_e = item_e + self.modal_rate * F.normalize(feature, dim=1)
        return user_e, item_e, modal

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_e, item_e, _ = self.tables()
        return user_e, item_e

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        return loss + self.reg_weight * self.id_reg(interaction)
