"""BM3: self-supervised multimodal recommendation without negative sampling.

Zhou et al., "Bootstrap Latent Representations for Multi-modal Recommendation", WWW 2023.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from recbole.utils import InputType
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency
from recbole_mmkd.model.item_views import TrainableFeatures
from recbole_mmkd.model.losses import emb_norm_reg


def _negative_cosine(
    online: torch.Tensor, target: torch.Tensor, *, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """``1 - cos(online, target)``, averaged over the rows where ``keep`` (default: all rows);
    the target is detached. Zero when no row is kept."""
    distance = 1 - F.cosine_similarity(online, target.detach(), dim=-1)
    if keep is None:
        return distance.mean()
    keep = keep.to(distance.dtype)
    return (distance * keep).sum() / keep.sum().clamp_min(1)


@register_model()
class BM3(TrainableFeatures, MultimodalRecommender):
    r"""LightGCN ID embeddings trained by bootstrapping against dropout views, aligned with every
    modality's projected features; no negative samples.

    Encoder: :math:`h_u, h_i` are the layer means of ``n_layers`` LightGCN propagations of the
    ID embeddings, plus a residual :math:`e_i` on items. Each modality :math:`m` has a linear
    projection :math:`h^m_i = W_m f^m_i + b_m`; one linear predictor :math:`p` is shared by
    users, items and modalities. Target views are dropout copies (rate ``dropout``) of the
    encoder outputs, without gradient: :math:`\tilde h = \mathrm{sg}(\mathrm{dropout}(h))`.

    Loss, with :math:`\ell(a, b) = 1 - \cos(a, b)` averaged over the batch's (u, i) pairs:

    .. math::

        \ell(p(h_u), \tilde h_i) + \ell(p(h_i), \tilde h_u)
        + \lambda \frac{\|H_U\|_F + \|H_I\|_F}{|I|}
        + \mu \sum_m \big[\ell(p(h^m_i), \tilde h_i) + \ell(p(h^m_i), \tilde h^m_i)\big]

    (graph reconstruction; MMRec's ``EmbLoss`` on the full encoder tables,
    :func:`~recbole_mmkd.model.losses.emb_norm_reg`: unsquared norms over :math:`|I|`, as
    released, the padding user and item left out; inter-modality alignment and intra-modality
    masked-feature loss). Items whose modality is masked are left out of that modality's two
    terms. Batches hold (user, positive item) pairs only (``train_neg_sample_args: ~``,
    pointwise input).

    Score: :math:`s(u, i) = p(h_u)^\top p(h_i)`, the dot product of the online user and item
    representations, as in MMRec's ``full_sort_predict``. Features enter only the loss, so a
    masked item's features cannot change any score.

    Features: ``train_features: true`` (the default, as released, and TikTok validation's
    choice) feeds the projections a trainable copy initialised from the dataset's features
    (MMRec's ``nn.Embedding.from_pretrained(feat, freeze=False)``;
    :class:`~recbole_mmkd.model.item_views.TrainableFeatures`); ``false`` feeds them the fixed
    features (SGFD's BM3 release, ``freeze=True``). Either way the rows of items missing a
    modality are zero.

    Config: ``embedding_size`` (d, also the projections' output), ``n_layers``, ``dropout``
    (target-view dropout rate), ``reg_weight`` (:math:`\lambda`), ``cl_weight`` (:math:`\mu`),
    ``train_features`` (default true), ``feature_norm``.

    Deviations from the release (MMRec ``src/models/bm3.py``):

    - Items masked as missing a modality are left out of that modality's two loss terms (the
      release has no missing-modality mask).
    - Any number of modalities; the release handles image and text.
    """

    feature_projections = "projections"

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.dropout: float = config["dropout"]
        self.reg_weight: float = config["reg_weight"]
        self.cl_weight: float = config["cl_weight"]
        d = self.embedding_size
        self.init_id_embeddings(d)
        self.predictor = nn.Linear(d, d)
        nn.init.xavier_normal_(self.predictor.weight)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, d) for m, dim in self.feature_dims().items()}
        )
        for projection in self.projections.values():
            nn.init.xavier_normal_(projection.weight)
        self.init_feature_tables(config["train_features"])
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def _encode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder tables before the predictor: LightGCN layer means, item ID residual added."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = lightgcn_layers(self.adjacency, ego, self.n_layers).split(
            [self.n_users, self.n_items]
        )
        return users, items + self.item_embedding.weight

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = self._encode()
        return self.predictor(users), self.predictor(items)

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        user_e, item_e = self._encode()
        u, i = user_e[users], item_e[items]
        # The predictor and dropout act row-wise, so only the batch's rows are computed.
        with torch.no_grad():
            u_target = F.dropout(u, self.dropout)
            i_target = F.dropout(i, self.dropout)
        loss = _negative_cosine(self.predictor(u), i_target)
        loss = loss + _negative_cosine(self.predictor(i), u_target)
        reg = emb_norm_reg(user_e[1:], item_e[1:])  # MMRec's tables: no padding rows
        modal = u.new_zeros(())
        for m in self.modalities:
            latent = self.projections[m](self.modal_feature(m, items))
            online = self.predictor(latent)
            keep = self.item_present(m)[items]
            modal = modal + _negative_cosine(online, i_target, keep=keep)
            modal = modal + _negative_cosine(
                online, F.dropout(latent.detach(), self.dropout), keep=keep
            )
        return loss + self.reg_weight * reg + self.cl_weight * modal
