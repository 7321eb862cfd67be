"""MVGAE: multi-modal variational graph auto-encoder, modality experts fused by a product of
Gaussians.

Yi & Chen, "Multi-Modal Variational Graph Auto-Encoder for Recommendation Systems", IEEE TMM
2021 (released code: jing-1/MVGAE; MMRec ``src/models/mvgae.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.mean_graph import mean_adjacency
from recbole_mmkd.model.normalize import normalize_rows
from recbole_mmkd.model.options import check_choice
from recbole_mmkd.model.transposed import register_with_transpose, spmm

MAX_LOGVAR = 10.0
ITEM_INDEXING = ("released", "paper")


def product_of_experts(
    mu: torch.Tensor, logvar: torch.Tensor, *, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gaussian product of independent experts stacked on dim 0: precision-weighted mean
    and the log of the summed precisions' inverse (variances carry ``eps``, as released)."""
    precision = 1.0 / (torch.exp(logvar) + eps)
    mean = (mu * precision).sum(0) / precision.sum(0)
    return mean, torch.log(1.0 / precision.sum(0))


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL of :math:`N(\\mu, \\sigma^2)` from :math:`N(0, I)`, summed over dimensions, mean over
    rows; the log-variance clamped at 10 as released."""
    logvar = logvar.clamp(max=MAX_LOGVAR)
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()


class _MeanConv(nn.Module):
    """:math:`\\mathrm{dropout}_{0.1}(\\mathrm{norm}(\\tilde D^{-1}(A + I) X W + b))`, the
    release's ``BaseModel`` with ``aggr='mean'``; ``graph`` is the adjacency and its stored
    transpose (:func:`~recbole_mmkd.model.transposed.spmm`)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(nn.init.xavier_normal_(torch.empty(n_in, n_out)))
        bound = 1 / math.sqrt(n_in)
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound))

    def forward(self, graph: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = normalize_rows(spmm(*graph, x @ self.weight) + self.bias)
        return F.dropout(out, p=0.1, training=self.training)


def _xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_normal_(layer.weight)
    return layer


class _VariationalGCN(nn.Module):
    """One expert of MVGAE: item features (through a Linear to ``latent``) below user
    preference rows, normalised, ``n_layers`` gated mean-convolutions, then a mean and a
    log-variance head (each a convolution branch plus a Linear skip)."""

    def __init__(self, n_users: int, feature_dim: int, dim: int, *, latent: int, n_layers: int,
                 train_preference: bool) -> None:  # fmt: skip
        super().__init__()
        preference = nn.init.xavier_normal_(torch.empty(n_users, latent))
        if train_preference:
            self.preference = nn.Parameter(preference)
        else:
            self.register_buffer("preference", preference)
        self.mlp = _xavier_linear(feature_dim, latent)
        widths = [latent] + [dim] * n_layers
        self.convs = nn.ModuleList(_MeanConv(a, dim) for a in widths[:-1])
        self.gates = nn.ModuleList(_xavier_linear(dim, dim) for _ in range(n_layers))
        self.mu_conv, self.mu_gate, self.mu_skip = (
            _MeanConv(widths[-1], dim), _xavier_linear(dim, dim), _xavier_linear(widths[-1], dim)
        )  # fmt: skip
        self.logvar_conv, self.logvar_gate, self.logvar_skip = (
            _MeanConv(widths[-1], dim), _xavier_linear(dim, dim), _xavier_linear(widths[-1], dim)
        )  # fmt: skip

    def forward(
        self, graph: tuple[torch.Tensor, torch.Tensor], features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = normalize_rows(torch.cat([self.preference, self.mlp(features)]))
        for conv, gate in zip(self.convs, self.gates, strict=True):
            x = F.leaky_relu(gate(F.leaky_relu(conv(graph, x))))
        mu = self.mu_gate(F.leaky_relu(self.mu_conv(graph, x)))
        mu = mu + F.leaky_relu(self.mu_skip(x))
        logvar = self.logvar_gate(F.leaky_relu(self.logvar_conv(graph, x)))
        return mu, logvar + F.leaky_relu(self.logvar_skip(x))


@register_model()
class MVGAE(MultimodalRecommender):
    r"""A variational graph encoder per modality and one over fixed random item vectors (the
    release's "collaborative" expert); the modality experts multiplied as Gaussians, the result
    multiplied with the collaborative expert (:func:`product_of_experts`).

    - Each expert: :class:`_VariationalGCN` over
      :func:`~recbole_mmkd.model.mean_graph.mean_adjacency` (with self-loops) gives
      :math:`(\mu, \log\sigma^2)` for every node.
    - Training samples :math:`z = \mu + 0.1\,\epsilon\,\sigma`; the representation is
      :math:`\sigma(\mu)` with ``sigmoid_embeddings`` (the release hard-codes its "amazon"
      branch), :math:`\mu` otherwise; score :math:`e_u^\top e_i`.

    Loss, for the fused :math:`z` and each expert's own sample alike:
    :math:`-\sum_B \log_2 \sigma(\sigma(s_{ui^+}) - \sigma(\max_{j \in B} s_{uj^-})) + \beta
    \mathrm{KL}` (:func:`gaussian_kl`, over every user's and item's row, the padding user and
    item left out: the release has neither), :math:`s` dot products of (sigmoided) samples, the
    negative the hardest of the batch's negatives for each user (found without gradient, its
    score then taken again as a row dot product: the gradient of the max, without a backward
    through the batch x batch scores).

    ``item_indexing: released`` (the default) reads the batch's items, in training, as node
    ids, as MMRec's code does (it adds no user offset, so an item id reads a *user* row where
    it is below the number of users; evaluation reads item rows); ``paper`` reads item rows.

    Config: ``embedding_size`` (d), ``latent_size`` (MMRec: 128, hard-coded), ``n_layers``,
    ``beta``, ``sigmoid_embeddings``, ``train_preference`` (false = the release, whose
    preference tables are plain tensors no optimiser updates), ``item_indexing``,
    ``feature_norm``.

    Deviations from the release (MMRec ``src/models/mvgae.py``, e775373): any number of
    modalities; evaluation scores with the current parameters, without dropout (the release:
    the last training batch's :math:`\mu`); the release's unused ``linear_layer1`` skip of
    each gated layer is left out; the collaborative expert's random vectors are drawn once, as
    in the release, and kept as a buffer. ``n_layers`` gated layers are built, each gate
    Xavier-normal (the release builds at most two, whatever ``n_layers`` says, and its second
    gate keeps PyTorch's default initialisation; the default ``n_layers: 1`` is the same in
    both). Under ``item_indexing: released`` an item id reads the node row of that number as
    in the release wherever the id is below the release's user count (every dataset with
    more users than items, TikTok and the Amazon sets among them); above it, this project's
    padding user shifts the row by one.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.beta: float = config["beta"]
        self.sigmoid_embeddings: bool = config["sigmoid_embeddings"]
        self.item_indexing = check_choice("item_indexing", config["item_indexing"], ITEM_INDEXING)
        options = dict(latent=config["latent_size"], n_layers=config["n_layers"],
                       train_preference=config["train_preference"])  # fmt: skip
        self.experts = nn.ModuleDict(
            {m: _VariationalGCN(self.n_users, dim, d, **options)
             for m, dim in self.feature_dims().items()}
        )  # fmt: skip
        self.register_buffer("collaborative", nn.init.xavier_normal_(torch.empty(self.n_items, d)))
        self.collaborative_expert = _VariationalGCN(self.n_users, d, d, **options)
        adjacency = mean_adjacency(dataset.inter_matrix(form="coo"), self_loops=True)
        # the mean is not symmetric: its transpose kept for the products' backward
        register_with_transpose(self, "adjacency", adjacency)
        # the KL's rows: every node but the padding user and item (the release has neither)
        padding = torch.tensor([0, self.n_users])
        real = torch.ones(self.n_users + self.n_items, dtype=torch.bool).index_fill_(0, padding, 0)
        self.register_buffer("real_rows", real.nonzero().squeeze(1), persistent=False)

    def encode(self) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor, torch.Tensor]:
        """Every expert's (mu, logvar), collaborative last, and the fused (mu, logvar)."""
        graph = (self.adjacency, self.adjacency_t)
        own = [self.experts[m](graph, self.modal_feature(m)) for m in self.modalities]
        mu, logvar = product_of_experts(torch.stack([e[0] for e in own]),
                                        torch.stack([e[1] for e in own]))  # fmt: skip
        collaborative = self.collaborative_expert(graph, self.collaborative)
        mu, logvar = product_of_experts(torch.stack([mu, collaborative[0]]),
                                        torch.stack([logvar, collaborative[1]]))  # fmt: skip
        return [*own, collaborative], mu, logvar

    def _embed(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z) if self.sigmoid_embeddings else z

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        _, mu, _ = self.encode()
        return self._embed(mu).split([self.n_users, self.n_items])

    def _reconstruction(self, z: torch.Tensor, interaction: Interaction) -> torch.Tensor:
        z = self._embed(z)
        offset = self.n_users if self.item_indexing == "paper" else 0
        user = z[interaction[self.USER_ID]]
        pos = z[interaction[self.ITEM_ID] + offset]
        neg = z[interaction[self.NEG_ITEM_ID] + offset]
        positive = torch.sigmoid((user * pos).sum(-1))
        with torch.no_grad():  # the max's gradient reaches its argmax row only
            index = (user @ neg.T).argmax(1)
        hardest = torch.sigmoid((user * neg[index]).sum(-1))
        return -F.logsigmoid(positive - hardest).sum() / math.log(2)

    def _sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar.clamp(max=MAX_LOGVAR))
        return mu + 0.1 * torch.randn_like(mu) * std

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        experts, mu, logvar = self.encode()
        loss = 0.0
        for m, lv in [(mu, logvar), *experts]:
            loss = loss + self._reconstruction(self._sample(m, lv), interaction)
            loss = loss + self.beta * gaussian_kl(m[self.real_rows], lv[self.real_rows])
        return loss
