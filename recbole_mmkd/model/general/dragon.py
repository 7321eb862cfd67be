"""DRAGON: dual representation learning over heterogeneous (user-item) and homogeneous
(user-user, item-item) graphs.

Zhou et al., "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation", ECAI 2023 (released code: hongyurain/DRAGON; MMRec ``src/models/dragon.py``).
"""

from __future__ import annotations

import math

import torch
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.cooccurrence import UserCooccurrenceGraph
from recbole_mmkd.model.graph import cached_knn_graph, normalized_adjacency
from recbole_mmkd.model.preference_gcn import PreferenceGCN


@register_model()
class DRAGON(MultimodalRecommender):
    r"""Per-modality graph encoders over the user-item graph, concatenated, then smoothed over
    an item-item feature graph (items) and a user co-occurrence graph (users).

    - Heterogeneous graph, per modality m: :math:`H_m` =
      :class:`~recbole_mmkd.model.preference_gcn.PreferenceGCN` over :math:`\hat A = D^{-1/2} A
      D^{-1/2}` (user rows a free preference table :math:`P_m`).
    - Items :math:`h_i = [H_1 \| \dots \| H_M]_i`; users :math:`h_u = [w_{u1} H_{1,u} \| \dots \|
      w_{uM} H_{M,u}]` with a learnt per-user weight per modality (initialised to a softmax).
    - Item-item graph :math:`S = \sum_m \omega_m S_m` (normalised top-``knn_k`` cosine graphs of
      the features, built once): :math:`e_i = h_i + S^{L} h_i` (L = ``n_mm_layers``).
    - User-user graph (:class:`~recbole_mmkd.model.cooccurrence.UserCooccurrenceGraph`): each
      user's ``user_k`` users sharing the most training items, weights the softmax of the
      shared counts, resampled each epoch where a user has fewer: :math:`e_u = h_u + \sum_v
      a_{uv} h_v`.
    - Score :math:`s(u, i) = e_u^\top e_i`.

    Loss: :math:`-\mathrm{mean} \log_2 \sigma(s_{ui^+} - s_{ui^-}) + \lambda (\sum_m
    \mathrm{mean}(P_{m,u}^2) + \mathrm{mean}(W^2))`, the BPR term in base 2 as released, the
    regulariser on the batch users' preference rows and on the whole user-weight table.

    Config: ``embedding_size`` (d per modality, MMRec's hard-coded ``dim_latent`` 64),
    ``n_mm_layers``, ``knn_k``, ``modality_weights`` (``{modality: weight}``, null = equal;
    MMRec's ``mm_image_weight: 0.1`` is ``{image: 0.1, text: 0.9}``), ``user_k`` (MMRec: 40,
    hard-coded), ``reg_weight`` (:math:`\lambda`), ``feature_norm``.

    Deviations from the release (MMRec ``src/models/dragon.py``, e775373):

    - The user graph is built here from the training split (MMRec reads
      ``user_graph_dict_file``, written by its ``preprocessing/dualgnn-gen-u-u-matrix.py`` from
      the same split); co-occurrence ties are ordered by user id (the release: ``torch.topk``'s
      order).
    - Evaluation scores with the current parameters; the release scores with the
      representations of the epoch's last training batch, before its optimiser step.
    - Any number of modalities (the release: image and text). Only the released configuration
      is built (``construction: cat``, ``aggr_mode: add``, softmax user weights): the release's
      unused tables and layers (``image_embedding``, ``image_trs``, ``MLP_v``, ``weight_i``,
      ``result_embed``, the dropped-edge graphs its encoders never read) are left out, and the
      features are fixed, as the encoders read them in the release.
    - Items masked as missing a modality have zero features and no item-item edges in it.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_mm_layers: int = config["n_mm_layers"]
        self.knn_k: int = config["knn_k"]
        self.user_k: int = config["user_k"]
        self.reg_weight: float = config["reg_weight"]
        weights = config["modality_weights"] or {m: 1.0 for m in self.modalities}
        total = sum(weights[m] for m in self.modalities)
        self.modality_weights = {m: weights[m] / total for m in self.modalities}

        self.encoders = nn.ModuleDict(
            {m: PreferenceGCN(self.n_users, dim, self.embedding_size)
             for m, dim in self.feature_dims().items()}
        )  # fmt: skip
        user_weights = nn.init.xavier_normal_(torch.empty(self.n_users, len(self.modalities), 1))
        self.user_weights = nn.Parameter(torch.softmax(user_weights, dim=1))

        inter = dataset.inter_matrix(form="coo")
        self.register_buffer("adjacency", normalized_adjacency(inter), persistent=False)
        self.user_graph = UserCooccurrenceGraph(inter, self.user_k)
        self.register_buffer("item_graph", self._item_graph(), persistent=False)

    def _item_graph(self) -> torch.Tensor:
        graphs = [w * cached_knn_graph(self.raw_feature(m), self.knn_k)
                  for m, w in self.modality_weights.items()]  # fmt: skip
        return sum(graphs[1:], graphs[0]).coalesce().to_sparse_csr()

    def on_mask_change(self) -> None:
        self.item_graph = self._item_graph()

    def on_epoch_start(self, epoch: int) -> None:
        """Draw this epoch's user graph (DRAGON's ``pre_epoch_processing``)."""
        self.user_graph.resample()

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [self.encoders[m](self.adjacency, self.modal_feature(m)) for m in self.modalities]
        users = torch.cat(
            [self.user_weights[:, j] * h[: self.n_users] for j, h in enumerate(encoded)], dim=1
        )
        items = torch.cat([h[self.n_users :] for h in encoded], dim=1)
        smoothed = items
        for _ in range(self.n_mm_layers):
            smoothed = torch.sparse.mm(self.item_graph, smoothed)
        return users + self.user_graph(users), items + smoothed

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        users = interaction[self.USER_ID]
        reg = sum(e.preference[users].pow(2).mean() for e in self.encoders.values())
        reg = reg + self.user_weights.pow(2).mean()
        return loss / math.log(2) + self.reg_weight * reg
