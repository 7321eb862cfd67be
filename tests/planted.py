"""A model for tests that knows the split: it ranks each user's validation items first
(``pick: valid``) or their test items first (``pick: test``). A search that read the test
split would choose ``test``; one on validation only must choose ``valid``."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from recbole_mmkd.data import files
from recbole_mmkd.model.base import MMKDRecommender


class Planted(MMKDRecommender):
    config_names = ("Planted",)

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        data = files.read_interactions(
            files.inter_path(Path(config["data_path"]), config["dataset"])
        )
        train, valid, _ = data.split_sizes
        rows = (
            slice(train, train + valid) if config["pick"] == "valid" else slice(train + valid, None)
        )
        picked = data.frame.iloc[rows]
        scores = torch.zeros(self.n_users, self.n_items)
        scores[picked["userID"].to_numpy() + 1, picked["itemID"].to_numpy() + 1] = 1.0
        self.register_buffer("scores", scores, persistent=False)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scores * self.scale, torch.eye(self.n_items)

    def calculate_loss(self, interaction) -> torch.Tensor:
        return (self.scale - 1).pow(2).sum()


class DiesOnce(MMKDRecommender):
    """A model whose first construction kills its process (a worker lost mid-run, as a
    killed node would be) and whose later ones train: a learnt score per item."""

    config_names = ("DiesOnce",)

    def __init__(self, config, dataset) -> None:
        marker = Path(config["death_marker"])
        if not marker.exists():
            marker.touch()
            os._exit(1)
        super().__init__(config, dataset)
        self.item_score = nn.Parameter(torch.zeros(self.n_items, 1))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones(self.n_users, 1), self.item_score

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        return loss
