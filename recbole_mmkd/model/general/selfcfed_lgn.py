"""SELFCF_ed over LightGCN: self-supervised collaborative filtering with embedding dropout, no
negative samples.

Zhou et al., "SelfCF: A Simple Framework for Self-supervised Collaborative Filtering", ACM
TORS 2023 (released code: enoche/SelfCF; MMRec ``src/models/selfcfed_lgn.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MMKDRecommender
from recbole_mmkd.model.graph import normalized_adjacency


def dropped_adjacency(adjacency: torch.Tensor, rate: float) -> torch.Tensor:
    """``adjacency`` (sparse COO) with each stored entry dropped with probability ``rate``
    and the rest scaled by ``1 / (1 - rate)`` (the release's ``sparse_dropout``)."""
    keep = torch.rand(adjacency._nnz(), device=adjacency.device) >= rate
    index, values = adjacency.indices()[:, keep], adjacency.values()[keep] / (1.0 - rate)
    return torch.sparse_coo_tensor(
        index, values, adjacency.shape, is_coalesced=True, check_invariants=False
    )


def negative_cosine(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of :math:`-\\cos(p, z)` with no gradient through the target ``z``."""
    return -F.cosine_similarity(prediction, target.detach(), dim=-1).mean()


@register_model("SELFCFED_LGN")
class SELFCFED_LGN(MMKDRecommender):
    r"""An online LightGCN encoder whose embeddings, through a linear predictor, regress a
    dropped-out copy of the other side: users predict their positive items, items their users.

    - Online encoder: LightGCN layer mean (``n_layers``) over the normalised graph; in
      training each forward drops the graph's entries at a rate drawn uniformly from [0, 1)
      (:func:`dropped_adjacency`, the release's ``drop_ratio`` 1.0).
    - Targets: the batch's online embeddings, detached, through dropout at ``dropout``.
    - Score :math:`s(u, i) = h(e_u)^\top e_i + e_u^\top h(e_i)`, :math:`h` the predictor,
      over the whole graph: user table :math:`[h(e_u) \| e_u]`, item table :math:`[e_i \|
      h(e_i)]`.

    Loss: :math:`\tfrac12 \mathrm{NegCos}(h(e_u), \tilde e_i) + \tfrac12 \mathrm{NegCos}(h(e_i),
    \tilde e_u) + \lambda\,\tfrac12 (\|e_u\|^2 + \|e_i\|^2)` over the batch's (user, positive)
    pairs (:func:`negative_cosine`; the regulariser summed over the batch's online rows, as
    MMRec's ``L2Loss``). Negative samples are drawn by the sampler and not read.

    Config: ``embedding_size``, ``n_layers``, ``dropout`` (target embedding dropout),
    ``reg_weight`` (:math:`\lambda`).

    Deviations from the release (MMRec ``src/models/selfcfed_lgn.py`` and
    ``common/encoders.py``, e775373): the batch comes from the pairwise sampler (MMRec sets
    ``use_neg_sampling: False``; the positives are the same, the negatives go unread); the
    graph's entries are dropped by a comparison of uniforms (the release: ``floor(1 - rate +
    U)``, the same law).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.dropout: float = config["dropout"]
        self.reg_weight: float = config["reg_weight"]
        self.init_id_embeddings(self.embedding_size)
        self.predictor = nn.Linear(self.embedding_size, self.embedding_size)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo")).to_sparse_coo()
        self.register_buffer("adjacency", adjacency.coalesce(), persistent=False)

    def encode(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN layer mean of the ID embeddings over ``adjacency``: users, items."""
        x = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        layers = [x]
        for _ in range(self.n_layers):
            layers.append(torch.sparse.mm(adjacency, layers[-1]))
        return torch.stack(layers).mean(0).split([self.n_users, self.n_items])

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self.encode(self.adjacency)
        return (
            torch.cat([self.predictor(users), users], dim=1),
            torch.cat([items, self.predictor(items)], dim=1),
        )

    def calculate_loss(self, interaction) -> torch.Tensor:
        rate = float(torch.rand(()))
        users, items = self.encode(dropped_adjacency(self.adjacency, rate))
        u = users[interaction[self.USER_ID]]
        i = items[interaction[self.ITEM_ID]]
        with torch.no_grad():
            u_target, i_target = F.dropout(u, self.dropout), F.dropout(i, self.dropout)
        reg = 0.5 * (u.pow(2).sum() + i.pow(2).sum())
        loss = negative_cosine(self.predictor(u), i_target) / 2
        loss = loss + negative_cosine(self.predictor(i), u_target) / 2
        return loss + self.reg_weight * reg
