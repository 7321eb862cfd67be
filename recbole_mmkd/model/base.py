"""Base class of the project's models: dot-product scoring with cached representations."""

from __future__ import annotations

import torch
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_mmkd.model.losses import bpr_loss


class MMKDRecommender(GeneralRecommender):
    """A recommender whose ``forward()`` returns user and item representation tables.

    Scores are dot products of the two tables. While the model is in eval mode the tables are
    computed once and reused by every ``predict``/``full_sort_predict`` call of that evaluation
    pass; ``train()`` or ``eval()`` drops them, so each evaluation sees current parameters.
    Subclasses implement :meth:`forward` and :meth:`calculate_loss`.
    """

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self._tables: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def train(self, mode: bool = True) -> MMKDRecommender:
        self._tables = None
        return super().train(mode)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item tables: recomputed in training, cached in eval mode."""
        if self.training:
            return self.forward()
        if self._tables is None:
            self._tables = self.forward()
        return self._tables

    def bpr_batch(
        self, interaction: Interaction
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """BPR loss of a pairwise batch and the batch's user, positive and negative rows."""
        user_e, item_e = self.representations()
        u = user_e[interaction[self.USER_ID]]
        pos = item_e[interaction[self.ITEM_ID]]
        neg = item_e[interaction[self.NEG_ITEM_ID]]
        return bpr_loss((u * pos).sum(-1), (u * neg).sum(-1)), u, pos, neg

    def predict(self, interaction: Interaction) -> torch.Tensor:
        user_e, item_e = self.representations()
        return (user_e[interaction[self.USER_ID]] * item_e[interaction[self.ITEM_ID]]).sum(-1)

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        user_e, item_e = self.representations()
        return user_e[interaction[self.USER_ID]] @ item_e.T
