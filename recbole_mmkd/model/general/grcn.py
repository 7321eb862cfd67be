"""GRCN: graph-refined convolution over the user-item graph.

Wei et al., "Graph-Refined Convolutional Network for Multimedia Recommendation with Implicit
Feedback", ACM MM 2020.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.bipartite import BipartiteGraph
from recbole_mmkd.model.losses import bpr_loss
from recbole_mmkd.model.normalize import normalize_rows

WEIGHT_MODES = ("confid", "mean", "max")
FUSION_MODES = ("concat", "mean", "id")


def _segment_softmax(scores: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Softmax of edge ``scores`` within each group of edges sharing ``index`` (0..n-1). An
    edge scored ``-inf`` (dropped) gets 0, and a group of dropped edges only gets zeros."""
    peak = scores.new_full((n,), float("-inf"))
    peak = peak.scatter_reduce(0, index, scores.detach(), "amax")
    peak = torch.where(peak.isfinite(), peak, torch.zeros_like(peak))
    exp = (scores - peak.index_select(0, index)).exp()
    total = exp.new_zeros(n).index_add_(0, index, exp)
    return exp / total.clamp_min(torch.finfo(exp.dtype).tiny).index_select(0, index)


@register_model()
class GRCN(MultimodalRecommender):
    r"""GRCN: per-modality routing refines the user-item graph, a GCN of ID embeddings runs on it.

    For each modality m: item features :math:`f_i = \mathrm{norm}(\mathrm{LeakyReLU}(W_m x_i +
    b_m))`; user prototypes :math:`p_u` (normalised parameters) are refined ``n_routing`` times
    by :math:`p_u \leftarrow \mathrm{norm}(p_u + \sum_{i \in N(u)} \mathrm{softmax}_{i \in N(u)}
    (p_u^\top f_i) f_i)`. The affinities :math:`p_u^\top f_i`, softmax-normalised over each
    target node's neighbours, give the edge weights :math:`\alpha^m_{j \to k}` of both
    directions, and the modality's representation is :math:`[p; f] + \sum_j \alpha^m_{j \to k}
    [p; f]_j`. ``weight_mode`` merges modalities into one weight per directed edge:
    ``confid`` :math:`\max_m \alpha^m_{j \to k} s^m_j` with a learnt confidence
    :math:`s^m_j` of the source node, ``mean`` or ``max`` over m; ``pruning`` clips negative
    weights to 0 (removes the edge). The ID embeddings (normalised) are propagated
    ``n_layers`` times over the refined graph by weighted sums, layers summed. Users and items
    are the concatenation (``fusion_mode: concat``) of the ID representation and every
    modality's, or their mean (``mean``), or the ID representation alone (``id``: modalities act
    through the edge weights only); :math:`s(u, i)` is their dot product. ``has_act`` puts a
    LeakyReLU on every neighbour sum (each modality's, each ID layer's, before it is added and
    propagated); ``has_norm: false`` leaves preferences, features and ID embeddings
    unnormalised; ``edge_dropout`` removes that share of the training edges, drawn anew at every
    forward pass in training (every batch), from the softmaxes and from the ID GCN alike.

    Loss: BPR plus ``reg_weight`` times the mean squared entries of the batch's user and
    item (positive and negative) ID embeddings plus those of the batch users' prototypes of
    every modality, as in MMRec, which also adds ``reg_weight`` times the mean square of its
    whole image preference table (about 2e-7 of the loss on TikTok: left out here; the step
    check, ``bench/mmrec/step_check.py GRCN``, agrees to 6e-7 otherwise).
    ``routing: released`` (the YAML default, MMRec's setting) follows both reference
    implementations: their routing sums messages into the *items* of the user-to-item edge
    list, so the users' prototypes receive nothing and routing reduces to normalisation.
    ``routing: paper`` lets users aggregate their items, as the paper describes; it lost
    clearly on TikTok validation (figures in ``GRCN.yaml``).

    Config: ``embedding_size`` (ID dimension), ``latent_embedding`` (per-modality dimension),
    ``n_routing``, ``routing`` (``paper``/``released``), ``n_layers`` (ID GCN layers),
    ``weight_mode`` (``confid``/``mean``/``max``), ``pruning``, ``fusion_mode``
    (``concat``/``mean``/``id``), ``has_act``, ``has_norm``, ``edge_dropout``, ``reg_weight``,
    ``feature_norm``.

    Deviations from the releases (weiyinwei/GRCN ``Model_routing.py`` and SGFD's
    ``GRCN/Model_routing.py``, which share this model): ``fusion_mode: mean`` divides by the
    number of parts (modalities + 1); the release divides by 4 (ID, image, audio, text) and
    fails on a dataset without audio, so the two agree wherever the release runs. Edge dropout
    masks dropped edges in the fixed sparse layout instead of rebuilding the graph (the same
    weights). ``has_norm: false`` fails in both releases (the preference is then never
    bound), so what it does here is this project's reading of the flag. The projection's
    weights start xavier-normal (MMRec), not PyTorch's default; the confidence parameter
    exists under ``confid`` only. BPR uses ``logsigmoid`` (the same value, stable).
    Evaluation is this project's (a fresh eval-mode pass, validation selection, training
    items masked with -inf), not the releases' (the last training batch's tables, the best
    epoch on test).

    Cost: every batch computes each modality's affinities, both softmaxes and the ID GCN over
    all training edges, as the releases do: sampled products for the affinities and the
    weights' gradients, CSR products for the sums (``model/bipartite.py``; torch-geometric's
    ``MessagePassing``, the releases' way, measures 6.1x slower: ``bench/bench_grcn_mp.py``).
    The edges are held in the graph's user-major order, so one direction reorders nothing. On
    TikTok its epoch is 2.3-2.75x LightGCN's (two runs of ``bench/bench_models.py --epochs 2
    --models GRCN`` beside two running searches; 3.38x the same way before that order, sparse
    products into a zeroed output and :func:`~recbole_mmkd.model.normalize.normalize_rows`).
    """

    feature_projections = "projection"

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.latent_size: int = config["latent_embedding"]
        self.n_routing: int = config["n_routing"]
        self.routing: str = config["routing"]
        self.n_layers: int = config["n_layers"]
        self.weight_mode: str = config["weight_mode"]
        self.pruning: bool = config["pruning"]
        self.fusion_mode: str = config["fusion_mode"]
        self.has_act: bool = config["has_act"]
        self.has_norm: bool = config["has_norm"]
        self.edge_dropout: float = config["edge_dropout"]
        self.reg_weight: float = config["reg_weight"]
        if self.fusion_mode not in FUSION_MODES:
            raise ConfigError(
                "config", "fusion_mode", f"unknown {self.fusion_mode!r}",
                f"use one of {FUSION_MODES}",
            )  # fmt: skip
        if self.fusion_mode == "mean" and self.embedding_size != self.latent_size:
            raise ConfigError(
                "config", "fusion_mode",
                f"mean needs embedding_size ({self.embedding_size}) == latent_embedding "
                f"({self.latent_size})", "set them equal, or use fusion_mode concat",
            )  # fmt: skip
        if not 0.0 <= self.edge_dropout < 1.0:
            raise ConfigError(
                "config", "edge_dropout", f"{self.edge_dropout} is outside [0, 1)",
                "give the share of training edges dropped per batch, e.g. 0.1",
            )  # fmt: skip
        if self.routing not in ("paper", "released"):
            raise ConfigError(
                "config", "routing", f"unknown {self.routing!r}", "use 'paper' or 'released'"
            )
        if self.weight_mode not in WEIGHT_MODES:
            raise ConfigError(
                "config",
                "weight_mode",
                f"unknown {self.weight_mode!r}",
                f"use one of {WEIGHT_MODES}",
            )
        interactions = dataset.inter_matrix(form="coo")
        by_user = np.lexsort((interactions.col, interactions.row))  # the graph's user-major order
        self.register_buffer("edge_user", torch.from_numpy(interactions.row[by_user]).long(), False)
        self.register_buffer("edge_item", torch.from_numpy(interactions.col[by_user]).long(), False)
        self._graph: BipartiteGraph | None = None
        n_nodes = self.n_users + self.n_items
        self.id_embedding = nn.Parameter(torch.empty(n_nodes, self.embedding_size))
        nn.init.xavier_normal_(self.id_embedding)
        self.preference = nn.ParameterDict()
        self.projection = nn.ModuleDict()
        for modality, dim in self.feature_dims().items():
            self.preference[modality] = nn.Parameter(torch.empty(self.n_users, self.latent_size))
            self.projection[modality] = nn.Linear(dim, self.latent_size)
            nn.init.xavier_normal_(self.preference[modality])
            nn.init.xavier_normal_(self.projection[modality].weight)
        if self.weight_mode == "confid":
            self.confidence = nn.Parameter(torch.empty(n_nodes, len(self.modalities)))
            nn.init.xavier_normal_(self.confidence)

    @property
    def graph(self) -> BipartiteGraph:
        """The training edges in sparse layouts, rebuilt when the model changes device."""
        if self._graph is None or self._graph.users.device != self.edge_user.device:
            self._graph = BipartiteGraph(self.edge_user, self.edge_item, self.n_users, self.n_items)
        return self._graph

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x) if self.has_act else x

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_rows(x) if self.has_norm else x

    def _modality(
        self, modality: str, *, dropped: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """User and item representations of ``modality``, and its weights of the item-to-user
        and user-to-item direction of every edge (0 on the ``dropped`` ones)."""
        graph = self.graph

        def edge_scores(preference: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
            scores = graph.edge_dot(preference, features)
            return scores if dropped is None else scores.masked_fill(dropped, float("-inf"))

        projected = self.projection[modality](self.modal_feature(modality))
        features = self._norm(F.leaky_relu(projected))
        preference = self._norm(self.preference[modality])
        for _ in range(self.n_routing if self.routing == "paper" else 0):
            affinity = _segment_softmax(
                edge_scores(preference, features), graph.users, self.n_users
            )
            preference = self._norm(preference + graph.to_users(affinity, features))
        scores = edge_scores(preference, features)
        to_user = _segment_softmax(scores, graph.users, self.n_users)
        to_item = _segment_softmax(scores, graph.items, self.n_items)
        users = preference + self._act(graph.to_users(to_user, features))
        items = features + self._act(graph.to_items(to_item, preference))
        return users, items, to_user, to_item

    def _merge_weights(self, weights: torch.Tensor) -> torch.Tensor:
        """One weight per edge from its per-modality (confidence-scaled) ``weights`` ``(E, M)``."""
        merged = weights.mean(1) if self.weight_mode == "mean" else weights.max(1).values
        return merged.relu() if self.pruning else merged

    def parts(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The user and item tables whose concatenation is the representation (the ID part
        and every modality's, or their one fused part): scores sum the parts' dot products."""
        u, i = self.edge_user, self.edge_item
        dropped = None
        if self.training and self.edge_dropout > 0:  # a new draw every batch, as the release
            dropped = torch.rand(u.shape, device=u.device) < self.edge_dropout
        user_parts, item_parts, to_user, to_item = [], [], [], []
        for modality in self.modalities:
            users, items, w_user, w_item = self._modality(modality, dropped=dropped)
            user_parts.append(users)
            item_parts.append(items)
            to_user.append(w_user)
            to_item.append(w_item)
        w_user, w_item = torch.stack(to_user, 1), torch.stack(to_item, 1)
        if self.weight_mode == "confid":  # scaled by the confidence of the message's source
            user_confidence, item_confidence = self.confidence.split([self.n_users, self.n_items])
            w_user = w_user * item_confidence.index_select(0, i)
            w_item = w_item * user_confidence.index_select(0, u)
        w_user, w_item = self._merge_weights(w_user), self._merge_weights(w_item)
        ids = self._norm(self.id_embedding).split([self.n_users, self.n_items])
        users, items = ids
        layer_users, layer_items = ids
        for _ in range(self.n_layers):
            layer_users, layer_items = (
                self._act(self.graph.to_users(w_user, layer_items)),
                self._act(self.graph.to_items(w_item, layer_users)),
            )
            users, items = users + layer_users, items + layer_items
        if self.fusion_mode == "id":
            return [users], [items]
        if self.fusion_mode == "mean":
            count = len(user_parts) + 1
            return [(users + sum(user_parts)) / count], [(items + sum(item_parts)) / count]
        return [users, *user_parts], [items, *item_parts]

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_parts, item_parts = self.parts()
        return torch.cat(user_parts, 1), torch.cat(item_parts, 1)

    def regularizer(self, interaction) -> torch.Tensor:
        """MMRec's: mean squares of the batch's user and item ID rows and of its users'
        preference rows in every modality."""
        users = interaction[self.USER_ID]
        items = torch.cat([interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]])
        reg = self.id_embedding[users].pow(2).mean()
        reg = reg + self.id_embedding[self.n_users + items].pow(2).mean()
        return reg + sum(p[users].pow(2).mean() for p in self.preference.values())

    def calculate_loss(self, interaction) -> torch.Tensor:
        users = interaction[self.USER_ID]
        user_parts, item_parts = self.parts()  # no concatenated tables in training
        scores = [
            sum((u[users] * i[rows]).sum(-1) for u, i in zip(user_parts, item_parts, strict=True))
            for rows in (interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID])
        ]
        return bpr_loss(*scores) + self.reg_weight * self.regularizer(interaction)
