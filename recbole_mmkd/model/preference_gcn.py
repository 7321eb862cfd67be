"""The per-modality user-item encoder of MMGCN's descendants DualGNN and DRAGON, and the
parts the two models share."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.cooccurrence import UserCooccurrenceGraph
from recbole_mmkd.model.graph import normalized_adjacency, propagate


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


class PreferenceGraphRecommender(MultimodalRecommender):
    r"""DualGNN's and DRAGON's common part: a :class:`PreferenceGCN` per modality over
    :math:`\hat A = D^{-1/2} A D^{-1/2}`, learnt per-user modality weights :math:`W`
    (``(n_users, M, 1)``, initialised to a softmax of Xavier-normal draws), and the
    :class:`~recbole_mmkd.model.cooccurrence.UserCooccurrenceGraph` of ``user_k`` users, drawn
    again each epoch (the releases' ``pre_epoch_processing``).

    Loss: :math:`-\mathrm{mean} \log_2 \sigma(s_{ui^+} - s_{ui^-}) + \lambda (\sum_m
    \mathrm{mean}(P_{m,u}^2) + \mathrm{mean}(W^2))`, the BPR term in base 2 as released, the
    regulariser on the batch users' preference rows and on the whole user-weight table.

    Config: ``embedding_size`` (d per modality, MMRec's hard-coded ``dim_latent`` 64),
    ``user_k`` (MMRec: 40, hard-coded), ``reg_weight`` (:math:`\lambda`), ``feature_norm``.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.user_k: int = config["user_k"]
        self.reg_weight: float = config["reg_weight"]
        self.encoders = nn.ModuleDict(
            {m: PreferenceGCN(self.n_users, dim, self.embedding_size)
             for m, dim in self.feature_dims().items()}
        )  # fmt: skip
        user_weights = nn.init.xavier_normal_(torch.empty(self.n_users, len(self.modalities), 1))
        self.user_weights = nn.Parameter(torch.softmax(user_weights, dim=1))
        inter = dataset.inter_matrix(form="coo")
        self.register_buffer("adjacency", normalized_adjacency(inter), persistent=False)
        self.user_graph = UserCooccurrenceGraph(inter, self.user_k)

    def encode(self) -> list[torch.Tensor]:
        """Each modality's encoder output, users first."""
        return [self.encoders[m](self.adjacency, self.modal_feature(m)) for m in self.modalities]

    def on_epoch_start(self, epoch: int) -> None:
        self.user_graph.resample()

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        users = interaction[self.USER_ID]
        reg = sum(e.preference[users].pow(2).mean() for e in self.encoders.values())
        reg = reg + self.user_weights.pow(2).mean()
        return loss / math.log(2) + self.reg_weight * reg
