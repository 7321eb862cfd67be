"""VBPR: matrix factorisation with a projected content factor.

He and McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback", AAAI 2016.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.losses import bpr_loss, emb_norm_reg, l2_reg
from recbole_mmkd.model.options import check_choice

REGULARIZERS = {"squared": l2_reg, "emb_loss": emb_norm_reg}


@register_model()
class VBPR(MultimodalRecommender):
    r"""VBPR over every modality the dataset has, concatenated into one content vector f_i.

    :math:`s(u, i) = \gamma_u^\top \gamma_i + \theta_u^\top (E f_i) + \beta_i + \beta'^\top f_i`
    (the global and user biases cancel in the pairwise loss). Implemented as a dot product of
    ``[gamma_u, theta_u, 1]`` with ``[gamma_i, E f_i, beta_i + beta'^T f_i]``.

    Loss: BPR plus :math:`\lambda` times a regulariser of the batch's user, positive and
    negative rows (content factor included): ``regularizer: squared`` (the default, the
    paper's :math:`\lambda \lVert\Theta\rVert^2` in LightGCN's batch form, squared norms over
    :math:`2|B|`) or ``emb_loss`` (MMRec's ``EmbLoss``: unsquared Frobenius norms over
    :math:`|B|`; on TikTok at the start the squared form is 44% of the loss, MMRec's 0.1%, so
    one ``reg_weight`` means different objectives under the two; ``bench/mmrec/step_check.py
    VBPR``).

    Config: ``embedding_size`` (d, for both :math:`\gamma` and :math:`E f`), ``reg_weight``,
    ``regularizer``, ``item_bias`` (true: the paper's :math:`\beta_i + \beta'^\top f_i`;
    false: MMRec's variant without the item biases, whose projection's own bias reaches only
    its regulariser), ``feature_norm`` (``none``/``l2``/``standard``, per modality).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.reg_weight: float = config["reg_weight"]
        self.regularizer = REGULARIZERS[
            check_choice("regularizer", config["regularizer"], tuple(REGULARIZERS))
        ]
        self.item_bias: bool = config["item_bias"]
        d = self.embedding_size
        n_features = sum(self.feature_dims().values())
        self.user_embedding = nn.Embedding(self.n_users, 2 * d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        self.projection = nn.Linear(n_features, d, bias=False)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        nn.init.xavier_uniform_(self.projection.weight)
        if self.item_bias:
            self.bias = nn.Embedding(self.n_items, 1)
            self.feature_bias = nn.Linear(n_features, 1, bias=False)
            nn.init.zeros_(self.bias.weight)
            nn.init.zeros_(self.feature_bias.weight)

    def _users(self, users: torch.Tensor | None = None) -> torch.Tensor:
        rows = self.user_embedding.weight if users is None else self.user_embedding(users)
        if self.item_bias:
            rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
        return rows

    def _content(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([self.modal_feature(m, items) for m in self.modalities], dim=-1)

    def _items(self, items: torch.Tensor | None = None) -> torch.Tensor:
        ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        features = self._content(items)
        parts = [ids, self.projection(features)]
        if self.item_bias:
            bias = self.bias.weight if items is None else self.bias(items)
            parts.append(bias + self.feature_bias(features))
        return torch.cat(parts, dim=1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._users(), self._items()

    def calculate_loss(self, interaction) -> torch.Tensor:
        # Rows of the batch only: projecting every item's features per batch is 3x slower.
        u = self._users(interaction[self.USER_ID])
        pos = self._items(interaction[self.ITEM_ID])
        neg = self._items(interaction[self.NEG_ITEM_ID])
        loss = bpr_loss((u * pos).sum(-1), (u * neg).sum(-1))
        return loss + self.reg_weight * self.regularizer(u, pos, neg)
