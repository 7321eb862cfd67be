"""The per-modality user-item encoder of MMGCN's descendants DualGNN and DRAGON."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.model.graph import propagate


class PreferenceGCN(nn.Module):
    r"""One modality's encoder over the user-item graph: item rows :math:`\mathrm{MLP}(x_i)`
    (Linear to 4d, LeakyReLU, Linear to d), user rows a free preference table :math:`P`
    (Xavier-normal); rows L2-normalised to :math:`X`, then :math:`X + \hat A X + \hat A^2 X`
    over a symmetric normalised adjacency :math:`\hat A` (users first)."""

    def __init__(self, n_users: int, feature_dim: int, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(feature_dim, 4 * dim), nn.LeakyReLU(), nn.Linear(4 * dim, dim)
        )
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, dim)))

    def forward(self, adjacency: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(torch.cat([self.preference, self.mlp(features)]))
        once = propagate(adjacency, x)
        return x + once + propagate(adjacency, once)
