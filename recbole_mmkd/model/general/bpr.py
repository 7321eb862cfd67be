"""BPR-MF: matrix factorisation trained with Bayesian personalised ranking.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
"""

from __future__ import annotations

import torch

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MMKDRecommender
from recbole_mmkd.model.losses import l2_reg


@register_model()
class BPR(MMKDRecommender):
    r"""Matrix factorisation, :math:`s(u, i) = e_u^\top e_i`.

    Loss: :math:`\mathcal{L} = -\frac{1}{|B|}\sum \log\sigma(s(u,i^+) - s(u,i^-))
    + \lambda \frac{1}{2|B|}(\|e_u\|^2 + \|e_{i^+}\|^2 + \|e_{i^-}\|^2)`, LightGCN's form.
    MMRec's BPR regularises with its ``EmbLoss`` (the unsquared Frobenius norms of the three
    batch tables over :math:`|B|`) and starts its tables Xavier-normal, not Xavier-uniform
    (``bench/mmrec/step_check.py BPR``).

    Config: ``embedding_size``, ``reg_weight`` (:math:`\lambda`).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.reg_weight: float = config["reg_weight"]
        self.init_id_embeddings(self.embedding_size)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, u, pos, neg = self.bpr_batch(interaction)
        return loss + self.reg_weight * l2_reg(u, pos, neg)
