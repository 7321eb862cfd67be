"""LATTICE: user-item propagation, item embeddings smoothed over a learned multimodal item graph.

Zhang et al., "Mining Latent Structures for Multimedia Recommendation", ACM MM 2021.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import (
    cached_knn_graph,
    knn_graph,
    lightgcn_layers,
    normalized_adjacency,
    self_loop_edges,
)
from recbole_mmkd.model.item_views import TrainableFeatures
from recbole_mmkd.model.losses import l2_reg
from recbole_mmkd.model.similarity_graph import edge_cosines
from recbole_mmkd.model.sparse_values import values_mm
from recbole_mmkd.model.transposed import register_with_transpose, spmm


def _sym_normalize(index: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """Edge values of ``D^-1/2 S D^-1/2``, ``D`` the row sums of ``S``; rows summing to <= 0
    (no edges) get none."""
    degree = values.new_zeros(n).index_add(0, index[0], values)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-12).rsqrt(), torch.zeros_like(degree))
    return inv_sqrt[index[0]] * values * inv_sqrt[index[1]]


def row_normalized_adjacency(interactions: sp.coo_matrix) -> torch.Tensor:
    """``D^-1 (A + I)`` of the bipartite user-item graph (users first), ``D`` the row sums of
    ``A + I``: row ``v`` averages ``v``'s neighbours and ``v`` itself (MMRec's and the authors'
    LATTICE). Not symmetric: propagation is ``A_hat @ E``. A coalesced sparse COO tensor."""
    rows, cols, degree = self_loop_edges(interactions)
    n = degree.shape[0]
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    values = torch.from_numpy(1.0 / degree.astype(np.float32)[rows])  # degree >= 1
    return torch.sparse_coo_tensor(index, values, (n, n), check_invariants=True).coalesce()


def _to_csr(coo: torch.Tensor) -> torch.Tensor:
    """``coo`` in CSR layout (faster products, as :func:`normalized_adjacency`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def layer_mean(
    adjacency: torch.Tensor, transpose: torch.Tensor, ego: torch.Tensor, n_layers: int
) -> torch.Tensor:
    """Mean of ``[E, A E, ..., A^K E]`` for any sparse ``A`` (``transpose`` = ``A^T``)."""
    layers = [ego]
    for _ in range(n_layers):
        layers.append(spmm(adjacency, transpose, layers[-1]))
    return torch.stack(layers).mean(0)


UI_ADJACENCIES = ("released", "symmetric")


@register_model()
class LATTICE(TrainableFeatures, MultimodalRecommender):
    r"""LightGCN-style user-item propagation; item embeddings also propagated over a latent
    item graph.

    Per modality m: projected features :math:`\tilde e^m_i = W_m f^m_i + b_m`, their cosine
    kNN graph :math:`\hat S^m` (the ``knn_k`` largest similarities of each row kept as weights)
    and the fixed kNN graph :math:`\hat A^m` of the raw features, each normalised
    :math:`D^{-1/2} S D^{-1/2}` by row sums. With :math:`\alpha = \mathrm{softmax}(w)` over
    the modalities, the item graph is

    :math:`S = (1-\lambda)\,\mathrm{norm}(\sum_m \alpha_m \hat S^m) + \lambda \sum_m \alpha_m
    \hat A^m`, :math:`h = S^{L} e^{(0)}_I`,

    and the item table is the layer mean :math:`\frac{1}{K+1}\sum_{k=0}^{K} \mathcal{A}^k
    e^{(0)}` of the ID embeddings over the user-item graph (:math:`K` = ``n_ui_layers``) plus
    :math:`h / \|h\|`; users are that mean's rows. ``ui_adjacency: released`` (the default)
    is :math:`\mathcal{A} = D^{-1}(A + I)`, row-normalised with self-loops (MMRec's
    ``get_adj_mat``, the authors' ``codes/utility/load_data.py``); ``symmetric`` is LightGCN's
    :math:`D^{-1/2} A D^{-1/2}` without self-loops (this project's LATTICE before
    ``ui_adjacency`` existed).

    Loss: BPR plus :math:`\lambda_{reg} \frac{1}{2|B|}(\|u\|^2 + \|i^+\|^2 + \|i^-\|^2)` on the
    batch's final rows, as in MMRec's and the authors' ``bpr_loss`` (MMRec imports ``EmbLoss``
    but LATTICE does not use it).

    Features: ``train_features: false`` (the default: TikTok validation preferred it, 0.0873
    against 0.0850) feeds the projections :math:`W_m` the dataset's fixed features; ``true``
    feeds them a trainable copy initialised from those
    features, as MMRec and the authors (``nn.Embedding.from_pretrained(feat, freeze=False)``;
    :class:`~recbole_mmkd.model.item_views.TrainableFeatures`). The fixed graphs
    :math:`\hat A^m` are built from the dataset's features either way (the release builds them
    once, from the initial table), and the rows of items missing a modality are zero.

    Learned-graph refresh (as MMRec and the authors' code): rebuilt with gradients on the first
    training batch of every epoch (:meth:`on_epoch_start`), which is the only batch whose loss
    reaches the projections and :math:`w`; later batches reuse it detached. Every evaluation
    pass rebuilds it from the current parameters (so the best-validation state is evaluated
    with its own graph), and so does the first forward after :meth:`on_mask_change`. Items
    missing a modality have no edges in that modality's graphs. The kNN is a chunked top-k,
    never a dense ``n_items x n_items`` matrix.

    Config: ``embedding_size``, ``feat_embed_dim`` (projection size), ``knn_k``,
    ``lambda_coeff`` (:math:`\lambda`, weight of the fixed graphs), ``n_mm_layers``
    (:math:`L`, MMRec's ``n_layers``), ``n_ui_layers`` (user-item layers, MMRec's
    ``len(weight_size)``), ``ui_adjacency`` (``released``/``symmetric``, default
    ``released``), ``train_features`` (default false), ``reg_weight`` (:math:`\lambda_{reg}`).
    ``LATTICE.yaml`` also sets the released learning-rate schedule
    (``learning_rate_scheduler: [0.96, 50]``, read by the trainer).

    Deviations from the release (MMRec ``src/models/lattice.py``, CRIPAC-DIG/LATTICE):

    - ``train_features: false`` (default, chosen on validation): the raw feature tables are
      fixed; both releases train them.
    - ``ui_adjacency: symmetric`` (not the default): LightGCN's normalisation instead of
      :math:`D^{-1}(A + I)`.
    - The regulariser divides by the batch's rows; both releases divide by the configured
      batch size, which differs on MMRec's last, partial batch of an epoch (the authors'
      sampler draws only full batches).
    - Any number of modalities, :math:`w` initialised equal (the releases: image and text,
      :math:`w = [0.5, 0.5]`, as here for two).
    - Items masked as missing a modality have no edges in its graphs (the releases have no
      missing-modality mask).
    """

    feature_projections = "projections"

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.feat_embed_dim: int = config["feat_embed_dim"]
        self.knn_k: int = config["knn_k"]
        self.lambda_coeff: float = config["lambda_coeff"]
        self.n_mm_layers: int = config["n_mm_layers"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.ui_adjacency: str = config["ui_adjacency"]
        self.reg_weight: float = config["reg_weight"]
        if self.ui_adjacency not in UI_ADJACENCIES:
            raise ConfigError(
                "config",
                "ui_adjacency",
                f"unknown {self.ui_adjacency!r}",
                f"use one of {UI_ADJACENCIES}",
            )
        self.init_id_embeddings(self.embedding_size)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, self.feat_embed_dim) for m, dim in self.feature_dims().items()}
        )
        n_modalities = len(self.modalities)
        # One modality has weight 1: a softmax over a single logit would get no gradient.
        self.modal_weight = (
            nn.Parameter(torch.full((n_modalities,), 1.0 / n_modalities))
            if n_modalities > 1
            else None
        )
        self.init_feature_tables(config["train_features"])
        interactions = dataset.inter_matrix(form="coo")
        if self.ui_adjacency == "released":
            released = _to_csr(row_normalized_adjacency(interactions))
            register_with_transpose(self, "adjacency", released)
        else:  # symmetric: its own transpose
            self.register_buffer("adjacency", normalized_adjacency(interactions), persistent=False)
            self.register_buffer("adjacency_t", None, persistent=False)
        self.register_buffer("_item_graph", None, persistent=False)
        self._graph_stale = True
        self._build_original_graphs()

    def _build_original_graphs(self) -> None:
        """Cosine-weighted, normalised kNN graph of each modality's raw features."""
        for m in self.modalities:
            features = self.raw_feature(m)
            index = cached_knn_graph(features, self.knn_k).indices()
            values = _sym_normalize(index, edge_cosines(features, *index), self.n_items)
            graph = torch.sparse_coo_tensor(
                index, values, (self.n_items, self.n_items), check_invariants=True
            )
            self.register_buffer(f"_original_{m}", graph.coalesce(), persistent=False)

    def on_mask_change(self) -> None:
        self._build_original_graphs()
        self._graph_stale = True

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before every epoch: the next batch rebuilds the learned graph."""
        self._graph_stale = True

    def _ui_layers(self, ego: torch.Tensor) -> torch.Tensor:
        """Mean of ``ego`` and its ``n_ui_layers`` propagations over the user-item graph."""
        if self.adjacency_t is None:
            return lightgcn_layers(self.adjacency, ego, self.n_ui_layers)
        return layer_mean(self.adjacency, self.adjacency_t, ego, self.n_ui_layers)

    def _modal_weights(self) -> torch.Tensor:
        if self.modal_weight is None:
            return self.item_embedding.weight.new_ones(1)
        return torch.softmax(self.modal_weight, dim=0)

    def _build_item_graph(self) -> torch.Tensor:
        """The mixed learned and fixed item-item graph, differentiable in the projections and
        modality weights."""
        weights = self._modal_weights()
        learned_index, learned_values, original_index, original_values = [], [], [], []
        for weight, m in zip(weights, self.modalities, strict=True):
            present = self.item_present(m).unsqueeze(1)
            projected = self.projections[m](self.modal_feature(m)) * present
            with torch.no_grad():  # top-k indices only: chunked, no dense n x n matrix
                index = knn_graph(projected.detach(), self.knn_k).indices()
            learned_index.append(index)
            learned_values.append(weight * edge_cosines(projected, *index))
            original = getattr(self, f"_original_{m}")
            original_index.append(original.indices())
            original_values.append(weight * original.values())
        learned_idx = torch.cat(learned_index, dim=1)
        learned = _sym_normalize(learned_idx, torch.cat(learned_values), self.n_items)
        index = torch.cat([learned_idx, *original_index], dim=1)
        values = torch.cat(
            [(1 - self.lambda_coeff) * learned, self.lambda_coeff * torch.cat(original_values)]
        )
        shape = (self.n_items, self.n_items)
        return torch.sparse_coo_tensor(index, values, shape, check_invariants=True).coalesce()

    def _item_graph_for_forward(self) -> torch.Tensor:
        if self.training and not self._graph_stale:
            return self._item_graph
        graph = self._build_item_graph()
        self._item_graph = graph.detach()
        self._graph_stale = False
        return graph

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        item_graph = self._item_graph_for_forward()
        h = self.item_embedding.weight
        for _ in range(self.n_mm_layers):
            h = values_mm(item_graph, h)
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = self._ui_layers(ego).split([self.n_users, self.n_items])
        return users, items + F.normalize(h, dim=1)

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, u, pos, neg = self.bpr_batch(interaction)
        return loss + self.reg_weight * l2_reg(u, pos, neg)
