"""MAML: multimodal attentive metric learning.

Liu et al., "User Diverse Preference Modeling by Multimodal Attentive Metric Learning", ACM MM
2019; released code liufancs/MAML (``MAML.py``, TensorFlow 1), which SGFD's MAML backbone
(HuilinChenJN/SGFD ``MAML/MAML.py``) extends.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.freezing import freeze

NORM_EPS = 1e-6  # TensorFlow's l2_normalize clamps the squared norm at 1e-12


def clip_rows(table: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Each row scaled to norm at most ``max_norm`` (TensorFlow's per-row ``clip_by_norm``)."""
    return table * (max_norm / table.norm(dim=1, keepdim=True).clamp_min(max_norm))


def off_diagonal_covariance(rows: torch.Tensor) -> torch.Tensor:
    r"""The released covariance loss (CML's): the *signed* sum of the off-diagonal entries of
    :math:`C = \bar X^\top \bar X / n`, :math:`\bar X` the column-centred ``rows``."""
    centred = rows - rows.mean(0, keepdim=True)
    covariance = centred.T @ centred / rows.shape[0]
    return covariance.sum() - covariance.diagonal().sum()


def rank_weighted_hinge(
    positive: torch.Tensor, negatives: torch.Tensor, *, margin: float, n_items: int
) -> torch.Tensor:
    r"""MAML's metric loss, summed over the batch: the hinge
    :math:`[d^+ - \min_j d^-_j + m]_+` against the closest of the W negatives, weighted by the
    WARP-style :math:`\ln(\mathrm{rank} + 1)`, :math:`\mathrm{rank} = \#\{j : d^+ - d^-_j + m
    > 0\} \cdot n_{items} / W` (a weight: no gradient). ``positive`` ``(N,)``, ``negatives``
    ``(N, W)`` distances."""
    hinge = (positive - negatives.min(1).values + margin).clamp_min(0)
    impostors = (positive.unsqueeze(1) - negatives + margin > 0).sum(1)
    weight = torch.log1p(impostors.to(hinge.dtype) * n_items / negatives.shape[1])
    return (weight.detach() * hinge).sum()


@register_model()
class MAML(MultimodalRecommender):
    r"""Users and items in a metric space, each user's view of an item weighted per dimension
    by an attention over the user, the item and the item's features.

    Features: :math:`f_i = \mathrm{clip}(g(\mathrm{norm}([x^1_i; x^2_i; ..])))`, :math:`g` an
    MLP ``hidden_size`` -> ``hidden_size``/2 -> ``hidden_size``/2 -> d, ReLU after all but the
    last layer and an L2 norm before the second and third, clipped to norm ``clip_norm``. Attention
    :math:`a_{ui} = d\,\mathrm{softmax}(\mathrm{ReLU}(W_2\,\mathrm{norm}(\tanh(W_1
    \mathrm{norm}([u; q_i; f_i]) + b_1)) + b_2))` over the d dimensions; distance
    :math:`D(u, i) = \lVert a_{ui} \odot u - a_{ui} \odot q_i \rVert^2`, score :math:`-D`.

    Loss: :func:`rank_weighted_hinge` against the ``train_neg_sample_args`` sample_num (W)
    negatives of each pair, plus ``feature_weight`` :math:`\sum_i \lVert q_i - f_i \rVert^2`
    over all items, plus ``cov_weight`` times :func:`off_diagonal_covariance` of all user and
    item rows. After every optimiser step both tables are clipped row-wise to ``clip_norm``
    (here: before the next forward, training or evaluation, which is the same). Items start at
    their feature projection :math:`f_i`, users from :math:`\mathcal{N}(0, 1/d)`.

    Scores are not dot products, so full-sort evaluation computes the attention of every
    (user, item) pair, in chunks of ``eval_pairs`` pairs, with the first attention layer
    split exactly into per-user and per-item parts (one norm over the concatenation). MAML
    cannot teach a KD student (its tables are not what it scores with).

    Config: ``embedding_size``, ``hidden_size``, ``margin``, ``feature_weight``,
    ``cov_weight``, ``clip_norm``, ``train_networks``, ``eval_pairs``; the number of
    negatives is ``train_neg_sample_args``' ``sample_num``.

    ``train_networks: true`` (the default) trains every parameter, as the paper's model is
    described; ``false`` is the release (both the authors' and SGFD's): its optimiser's
    ``var_list`` holds the two embedding tables alone, so the feature projector and the
    attention keep their random initial values. Deviations: the release's dropouts and its
    attention's l2 regularisers have no effect there (TF1 ``training=False``; a collection no
    loss reads) and are not reproduced; an epoch is every training pair, not the release's
    100 batches; evaluation is this project's (validation selection, full ranking), not the
    release's (test-set selection). RecBole's padding item 0 counts in the rank weight's item
    count and its rows in the feature and covariance losses (one row of thousands).
    """

    dot_product_scores = False  # its tables are not what it scores with

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.hidden_size: int = config["hidden_size"]
        self.margin: float = config["margin"]
        self.feature_weight: float = config["feature_weight"]
        self.cov_weight: float = config["cov_weight"]
        self.clip_norm: float = config["clip_norm"]
        self.eval_pairs: int = config["eval_pairs"]
        self.train_networks: bool = config["train_networks"]
        negatives = config["train_neg_sample_args"] or {}
        count = negatives.get("sample_num")
        self.n_negatives: int = count if isinstance(count, int) else 0
        if self.n_negatives < 1:
            raise ConfigError(
                "config", "train_neg_sample_args",
                "MAML's hinge compares each pair with its closest of several negatives",
                "set train_neg_sample_args: {distribution: uniform, sample_num: 4} (MAML.yaml)",
            )  # fmt: skip
        bounds = (("clip_norm", self.clip_norm, 0), ("hidden_size", self.hidden_size, 1),
                  ("eval_pairs", self.eval_pairs, 0))  # fmt: skip
        for key, value, least in bounds:
            if not value > least:
                raise ConfigError(
                    "config", key, f"{value} is not above {least}", f"give a value above {least}"
                )
        d, hidden = self.embedding_size, self.hidden_size
        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        nn.init.normal_(self.user_embedding.weight, std=d**-0.5)
        nn.init.normal_(self.item_embedding.weight, std=d**-0.5)
        width = sum(self.feature_dims().values())
        self.projector = nn.ModuleList(
            [
                nn.Linear(width, hidden),
                nn.Linear(hidden, hidden // 2),
                nn.Linear(hidden // 2, hidden // 2),
                nn.Linear(hidden // 2, d),
            ]
        )
        self.attention_in = nn.Linear(3 * d, 5 * d)
        self.attention_out = nn.Linear(5 * d, d)
        for linear in (*self.projector, self.attention_in, self.attention_out):
            nn.init.xavier_uniform_(linear.weight)  # TF1 dense defaults
            nn.init.zeros_(linear.bias)
        if not self.train_networks:
            networks = ("projector", "attention_in", "attention_out")
            self.frozen_parameters = freeze(self, lambda name: name.startswith(networks))
        # training steps taken: state a resumed run needs (Snapshot), so in the state dict
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._scoring: tuple[torch.Tensor, ...] | None = None

    def features(self) -> torch.Tensor:
        """:math:`f_i` of every item: the projector over the joint L2-normalised features."""
        x = torch.cat([self.modal_feature(m) for m in self.modalities], 1)
        first, *middle, last = self.projector
        x = F.relu(first(F.normalize(x, dim=1, eps=NORM_EPS)))
        for layer in middle:
            x = F.relu(layer(F.normalize(x, dim=1, eps=NORM_EPS)))
        return clip_rows(last(x), self.clip_norm)

    def attention(
        self, users: torch.Tensor, items: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        """:math:`a_{ui}` for rows of users, items and their features (broadcast together)."""
        joint = torch.cat(torch.broadcast_tensors(users, items, features), -1)
        joint = F.normalize(joint, dim=-1, eps=NORM_EPS)
        hidden = F.normalize(torch.tanh(self.attention_in(joint)), dim=-1, eps=NORM_EPS)
        return self.embedding_size * F.relu(self.attention_out(hidden)).softmax(-1)

    def distance(
        self, users: torch.Tensor, items: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:
        weights = self.attention(users, items, features)
        return (weights * (users - items)).pow(2).sum(-1)

    def _clip_tables(self) -> None:
        """The release's clip after each optimiser step, done before the next forward."""
        if self.steps:
            with torch.no_grad():
                for table in (self.user_embedding.weight, self.item_embedding.weight):
                    table.copy_(clip_rows(table, self.clip_norm))

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == 0 and not self.steps:  # items start at their features, as released
            with torch.no_grad():
                self.item_embedding.weight.copy_(self.features())

    def train(self, mode: bool = True) -> MAML:
        self._clip_tables()
        self._scoring = None
        return super().train(mode)

    def on_mask_change(self) -> None:
        self._scoring = None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        self._clip_tables()
        self.steps += 1
        n = interaction[self.USER_ID].shape[0] // self.n_negatives
        users = self.user_embedding(interaction[self.USER_ID][:n])
        positives = interaction[self.ITEM_ID][:n]
        negatives = interaction[self.NEG_ITEM_ID].view(self.n_negatives, n).T
        features = self.features()
        items = self.item_embedding.weight
        positive = self.distance(users, items[positives], features[positives])
        negative = self.distance(users.unsqueeze(1), items[negatives], features[negatives])
        loss = rank_weighted_hinge(positive, negative, margin=self.margin, n_items=self.n_items)
        loss = loss + self.feature_weight * (items - features).pow(2).sum()
        all_rows = torch.cat([items, self.user_embedding.weight])
        return loss + self.cov_weight * off_diagonal_covariance(all_rows)

    def _scoring_tables(self) -> tuple[torch.Tensor, ...]:
        """Users, items, item features and the per-item part of the first attention layer;
        cached during an evaluation pass."""
        if self._scoring is not None and not self.training:
            return self._scoring
        users, items = self.forward()
        features = self.features()
        d = self.embedding_size
        w_user, w_item, w_feature = self.attention_in.weight.split([d, d, d], dim=1)
        item_part = items @ w_item.T + features @ w_feature.T
        item_sq = items.pow(2).sum(1) + features.pow(2).sum(1)
        tables = (users, items, features, w_user, item_part, item_sq)
        if not self.training:
            self._scoring = tables
        return tables

    def predict(self, interaction: Interaction) -> torch.Tensor:
        users, items, features, *_ = self._scoring_tables()
        u, i = interaction[self.USER_ID], interaction[self.ITEM_ID]
        return -self.distance(users[u], items[i], features[i])

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        users, items, _, w_user, item_part, item_sq = self._scoring_tables()
        user_ids = interaction[self.USER_ID]
        scores = items.new_empty(user_ids.shape[0], self.n_items)
        chunk = max(1, self.eval_pairs // self.n_items)
        for start in range(0, user_ids.shape[0], chunk):
            u = users[user_ids[start : start + chunk]]
            norm = (u.pow(2).sum(1, keepdim=True) + item_sq).clamp_min(NORM_EPS**2).sqrt()
            first = (u @ w_user.T).unsqueeze(1) + item_part.unsqueeze(0)
            hidden = torch.tanh(first / norm.unsqueeze(-1) + self.attention_in.bias)
            logits = self.attention_out(F.normalize(hidden, dim=-1, eps=NORM_EPS))
            weights = self.embedding_size * F.relu(logits).softmax(-1)
            gap = u.unsqueeze(1) - items.unsqueeze(0)
            scores[start : start + chunk] = -(weights * gap).pow(2).sum(-1)
        return scores
