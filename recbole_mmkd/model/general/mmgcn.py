"""MMGCN: one graph convolution network per modality over the user-item graph.

Wei et al., "MMGCN: Multi-modal Graph Convolution Network for Personalized Recommendation of
Micro-video", ACM MM 2019.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.freezing import freeze
from recbole_mmkd.model.mean_graph import mean_adjacency
from recbole_mmkd.model.transposed import register_with_transpose, spmm


class _MMGCNLayer(nn.Module):
    """One MMGCN layer: neighbour aggregation (eq. 1), ID-aware self transform (eq. 5),
    and their concatenation-combination (eq. 6)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.message = nn.Linear(in_dim, in_dim, bias=False)
        self.own = nn.Linear(in_dim, out_dim)
        self.combine = nn.Linear(in_dim + out_dim, out_dim)
        for linear in (self.message, self.own, self.combine):
            nn.init.xavier_normal_(linear.weight)

    def forward(
        self,
        x: torch.Tensor,
        neighbour_mean: Callable[[torch.Tensor], torch.Tensor],
        ids: torch.Tensor,
    ) -> torch.Tensor:
        h = F.leaky_relu(neighbour_mean(self.message(x)))
        own = F.leaky_relu(self.own(x)) + ids
        return F.leaky_relu(self.combine(torch.cat([h, own], dim=1)))


class _ModalityGCN(nn.Module):
    """A modality's branch: user preference vectors and (projected) item features as layer-0
    node features, then ``n_layers`` :class:`_MMGCNLayer`."""

    def __init__(
        self, n_users: int, feature_dim: int, latent_dim: int | None, dim: int, n_layers: int
    ) -> None:
        super().__init__()
        node_dim = latent_dim or feature_dim
        self.projection = nn.Linear(feature_dim, latent_dim) if latent_dim else None
        self.preference = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, node_dim)))
        dims = [node_dim] + [dim] * n_layers
        self.layers = nn.ModuleList(_MMGCNLayer(d_in, d_out) for d_in, d_out in pairwise(dims))

    def forward(
        self,
        features: torch.Tensor,
        present: torch.Tensor,
        neighbour_mean: Callable[[torch.Tensor], torch.Tensor],
        ids: torch.Tensor,
    ) -> torch.Tensor:
        if self.projection is not None:
            features = self.projection(features) * present.unsqueeze(-1).to(features.dtype)
        x = F.normalize(torch.cat([self.preference, features]))
        for layer in self.layers:
            x = layer(x, neighbour_mean, ids)
        return x


@register_model()
class MMGCN(MultimodalRecommender):
    r"""A GCN per modality m over the user-item graph; node representations averaged over
    modalities, :math:`s(u, i) = e_u^\top e_i`.

    Layer 0 of modality m: :math:`x_u = \mathrm{norm}(p^m_u)` (learnt user preference) and
    :math:`x_i = \mathrm{norm}(W^m_0 f^m_i + b^m_0)` (zero for items missing m). Layer l:
    :math:`h_v = \sigma(\mathrm{mean}_{j \in N(v)} W_1 x_j)`,
    :math:`\hat{x}_v = \sigma(W_2 x_v + b_2) + e_v` (shared ID embedding),
    :math:`x_v \leftarrow \sigma(W_3 [h_v \| \hat{x}_v] + b_3)`, with
    :math:`\sigma` = LeakyReLU; :math:`e_v = \frac{1}{|M|}\sum_m x^m_v` after the last layer.

    Loss: BPR plus
    :math:`\lambda \big(\frac{1}{2|B|d}\sum_B (2\|e^{id}_u\|^2 + \|e^{id}_{i^+}\|^2 +
    \|e^{id}_{i^-}\|^2) + \sum_m \mathrm{mean}(P_m^2)\big)` on the ID embeddings of the batch
    and every modality's preference table (MMRec: the image table's alone).

    ``train_id_tables: true`` (the default) trains the ID table and the preference tables, as
    the paper describes them; ``false`` is MMRec's code, which holds them as plain tensors
    (``mmgcn.py`` l. 55, 126, 139) that its optimiser never sees: they keep their random
    initial values, and the regulariser, which reads only them, changes nothing (so MMRec's
    ``reg_weight`` grid is a grid of one point).

    Config: ``embedding_size`` (d), ``n_layers`` (default 3, the released depth),
    ``latent_dim`` (width of the per-modality feature projection and preference vectors; null:
    raw features, no projection), ``reg_weight`` (:math:`\lambda`), ``train_id_tables``.

    Deviations from the release (MMRec ``src/models/mmgcn.py``, weiyinwei/MMGCN):

    - ``n_layers`` sets the depth; both releases hard-code three layers (the layer count they
      are passed, 2, is stored and never read).
    - Every modality is projected to ``latent_dim``; the releases project the visual features
      only.
    - The ID tables start as MMRec's one users-then-items table (Xavier-normal over its joint
      shape), split in two here.

    Cost: every training batch runs the three layers' dense transforms over every node, for
    every modality, as both releases do. On TikTok (16,020 nodes, ``latent_dim`` 256, two
    modalities) that is about 4.8 billion multiply-adds forward per batch, against about 15
    million for LightGCN's two sparse products, so its epoch stays an order of magnitude
    above LightGCN's (``bench/bench_models.py``: 13.3x on TikTok) whatever the message
    passing is made of: the sparse neighbour means are already a small share of it.
    ``latent_dim`` 64 cuts the first layer, the largest, about 16-fold.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.latent_dim: int | None = config["latent_dim"]
        self.reg_weight: float = config["reg_weight"]
        self.train_id_tables: bool = config["train_id_tables"]
        ids = nn.init.xavier_normal_(torch.empty(self.n_users + self.n_items, self.embedding_size))
        users, items = ids.split([self.n_users, self.n_items])
        self.user_embedding = nn.Embedding.from_pretrained(users.clone(), freeze=False)
        self.item_embedding = nn.Embedding.from_pretrained(items.clone(), freeze=False)
        dims = self.feature_dims()
        self.branches = nn.ModuleList(
            _ModalityGCN(self.n_users, dims[m], self.latent_dim, self.embedding_size, self.n_layers)
            for m in self.modalities
        )
        if not self.train_id_tables:
            tables = ("user_embedding.weight", "item_embedding.weight")
            self.frozen_parameters = freeze(
                self, lambda name: name in tables or name.endswith(".preference")
            )
        mean = mean_adjacency(dataset.inter_matrix(form="coo"), self_loops=False)
        register_with_transpose(self, "adjacency", mean)

    def _neighbour_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over graph neighbours, :math:`D^{-1} A x` (isolated nodes get zeros), its
        backward through the stored transpose."""
        return spmm(self.adjacency, self.adjacency_t, x)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        outputs = [
            branch(self.modal_feature(m), self.item_present(m), self._neighbour_mean, ids)
            for m, branch in zip(self.modalities, self.branches, strict=True)
        ]
        return torch.stack(outputs).mean(0).split([self.n_users, self.n_items])

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        u = self.user_embedding(interaction[self.USER_ID])
        pos = self.item_embedding(interaction[self.ITEM_ID])
        neg = self.item_embedding(interaction[self.NEG_ITEM_ID])
        ids = (2 * u.pow(2) + pos.pow(2) + neg.pow(2)).sum() / (2 * u.numel())
        preference = sum(branch.preference.pow(2).mean() for branch in self.branches)
        return loss + self.reg_weight * (ids + preference)
