"""Cross-modal-attention teacher: modality encoders, attention fusion, graph propagation.

The teacher of the multimodal-recommender-kd design (a LightGCN student with modality dropout
distils from it): modality encoders project each feature to d, multi-head attention lets
each item's modality tokens attend to each other (Vaswani et al., NeurIPS 2017; cross-modal
fusion as in MulT, Tsai et al., ACL 2019), and a LightGCN-style graph network (He et al.,
SIGIR 2020) propagates the fused item representations over the user-item graph.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency


def masked_mean(tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean of ``tokens (n, M, d)`` over the present modalities ``(n, M)``; 0 if none."""
    weights = present.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


@register_model()
class CMATeacher(MultimodalRecommender):
    r"""Cross-modal attention over an item's modality tokens, then graph propagation.

    - Token of modality m: :math:`t^m_i = \mathrm{LeakyReLU}(W_m x^m_i) + \tau_m` (learned
      modality-type embedding :math:`\tau_m`).
    - Fusion: :math:`\tilde t_i = \mathrm{LayerNorm}(t_i + \mathrm{MHA}(t_i, t_i, t_i))` with
      missing modalities masked out of the keys; :math:`c_i` = mean of the present tokens
      (0 for an item with no modality).
    - Graph network: :math:`E^{(0)} = [\gamma_u; \gamma_i + c_i]`, K LightGCN layers over the
      normalised user-item graph, layer mean; :math:`s(u, i) = e_u^\top e_i`.

    Loss: BPR plus :math:`\lambda \frac{1}{2|B|}` times the squared norms of the batch's
    layer-0 ID embeddings.

    Config: ``embedding_size``, ``n_layers`` (K), ``n_heads``, ``attention_dropout``,
    ``reg_weight``.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.reg_weight: float = config["reg_weight"]
        d = self.embedding_size
        self.encoders = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(dim, d), nn.LeakyReLU())
                for m, dim in self.feature_dims().items()
            }
        )
        self.modality_type = nn.Parameter(torch.zeros(len(self.modalities), d))
        nn.init.normal_(self.modality_type, std=0.02)
        self.attention = nn.MultiheadAttention(
            d, config["n_heads"], dropout=config["attention_dropout"], batch_first=True
        )
        self.norm = nn.LayerNorm(d)
        self.init_id_embeddings(d)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def fused_content(self) -> torch.Tensor:
        """``(n_items, d)`` cross-modal fusion of each item's present modalities."""
        tokens = (
            torch.stack([self.encoders[m](self.modal_feature(m)) for m in self.modalities], dim=1)
            + self.modality_type
        )
        present = torch.stack([self.item_present(m) for m in self.modalities], dim=1)
        # An item with no modality would make every key masked (NaN attention): let it attend
        # freely and zero its output below.
        any_present = present.any(1, keepdim=True)
        key_padding = ~present & any_present
        attended, _ = self.attention(tokens, tokens, tokens, key_padding_mask=key_padding)
        return masked_mean(self.norm(tokens + attended), present)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        items = self.item_embedding.weight + self.fused_content()
        return lightgcn_layers(
            self.adjacency, torch.cat([self.user_embedding.weight, items]), self.n_layers
        ).split([self.n_users, self.n_items])

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        return loss + self.reg_weight * self.id_reg(interaction)
