"""SLMRec: self-supervised learning for multimedia recommendation, fine-and-coarse task.

Tao et al., "Self-supervised Learning for Multimedia Recommendation", IEEE TMM 2022
(released code: zltao/SLMRec; MMRec ``src/models/slmrec.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.contrastive import info_nce
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency
from recbole_mmkd.model.slots import mmrec_order


def _xavier_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(layer.weight)
    return layer


@register_model()
class SLMRec(MultimodalRecommender):
    r"""One LightGCN per item source (ID embeddings, and each modality's projected features),
    the user side always the user ID table; sources fused by concatenation and a Linear per
    side, trained by in-batch InfoNCE plus SLMRec's fine-and-coarse (FAC) alignment.

    - Sources: :math:`G_s` = LightGCN layer mean (``n_layers``) over :math:`D^{-1/2} A D^{-1/2}`
      of :math:`[E_u; X_s]`, :math:`X_{id} = E_i`, :math:`X_m = W_m \hat x^m` (features
      L2-normalised, Xavier Linear).
    - Fusion: :math:`e_u = W_U [G_{id} \| G_1 \| \dots]_u`, :math:`e_i = W_I [\dots]_i`; score
      :math:`e_u^\top e_i` (the release returns its sigmoid, the same ranking).
    - FAC: a chain of spaces over the batch's positive items, :math:`z_1 = g_1(G_{id,i})`, each
      next :math:`z_{k+1} = g_{k+1}(z_k)`, the last of width d/2 where there are several;
      modality k is contrasted in space k with its head :math:`f_k(G_{k,i})` by
      in-batch :func:`~recbole_mmkd.model.contrastive.info_nce` of dot products (no
      normalisation) at ``ssl_temp``. With two modalities,
      ``released_audio_level: true`` (the default) puts between the two spaces the release's
      unsupervised acoustic level (its contrast is commented out in MMRec, its projection
      ``g_iv_iva`` still applied); ``false`` the chain without it.

    Loss: in-batch :func:`~recbole_mmkd.model.contrastive.info_nce` (cosine) of :math:`e_u`
    against :math:`e_{i^+}` at ``temperature`` :math:`+ \alpha \sum_k \mathrm{FAC}_k`;
    regularisation is Adam's ``weight_decay`` (MMRec: 1e-4).

    Config: ``embedding_size`` (MMRec's ``recdim``), ``n_layers`` (``layer_num``),
    ``temperature`` (``temp``), ``ssl_temp``, ``ssl_alpha`` (:math:`\alpha`),
    ``released_audio_level``, ``chain_order``, ``weight_decay``.

    Deviations from the release (MMRec ``src/models/slmrec.py``, e775373):

    - Only the FAC task: MMRec's FD and FM tasks read ``data.input.dataset`` and an acoustic
      projection it never builds, so they cannot run there. Only the concat fusion
      (``mm_fusion_mode``, MMRec's setting).
    - Any number of modalities along the chain, in ``chain_order`` (null, the default: MMRec's
      slot order, :func:`~recbole_mmkd.model.slots.mmrec_order`, image first and the others by
      name; the release: image, then text, and TikTok's audio sits in its text slot).
    - Evaluation scores with the current parameters; the release with the tables of the
      epoch's last training batch. MMRec's ``reg`` (in its grid) is read by no line of its
      SLMRec; the adjacency's degrees carry no 1e-8.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.temperature: float = config["temperature"]
        self.ssl_temp: float = config["ssl_temp"]
        self.ssl_alpha: float = config["ssl_alpha"]
        self.released_audio_level: bool = config["released_audio_level"]
        self.chain_order: list[str] = config["chain_order"] or mmrec_order(self.modalities)
        if sorted(self.chain_order) != sorted(self.modalities):
            raise ConfigError(
                "config", "chain_order",
                f"is {self.chain_order}, not an order of the dataset's {self.modalities}",
                f"list each of {self.modalities} once, or null for MMRec's order (image first)",
            )  # fmt: skip

        self.init_id_embeddings(d)
        self.projections = nn.ModuleDict(
            {m: _xavier_linear(dim, d) for m, dim in self.feature_dims().items()}
        )
        n_sources = len(self.modalities) + 1
        self.user_fusion = _xavier_linear(n_sources * d, d)
        self.item_fusion = _xavier_linear(n_sources * d, d)
        widths = [d] * len(self.modalities)
        if len(widths) > 1:
            widths[-1] = d // 2  # the coarse level
        self.chain = nn.ModuleList(_xavier_linear(d, w) for w in widths)
        heads = zip(self.chain_order, widths, strict=True)
        self.heads = nn.ModuleDict({m: _xavier_linear(d, w) for m, w in heads})
        with_audio_level = self.released_audio_level and len(self.modalities) == 2
        self.audio_level = _xavier_linear(d, d) if with_audio_level else None
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.register_buffer("adjacency", adjacency, persistent=False)

    def sources(self) -> list[torch.Tensor]:
        """Each source's LightGCN output, users first: ID, then the modalities."""
        items = [self.item_embedding.weight]
        items += [self.projections[m](F.normalize(self.modal_feature(m))) for m in self.modalities]
        users = self.user_embedding.weight
        return [
            lightgcn_layers(self.adjacency, torch.cat([users, x]), self.n_layers) for x in items
        ]

    def _fuse(self, sources: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = torch.cat(sources, dim=1).split([self.n_users, self.n_items])
        return self.user_fusion(users), self.item_fusion(items)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fuse(self.sources())

    def fac(self, sources: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """The fine-and-coarse alignment of the batch's ``items``."""
        rows = [s[self.n_users :][items] for s in sources]
        z, loss = rows[0], 0.0
        sources = dict(zip(["id", *self.modalities], rows, strict=True))
        for k, (m, level) in enumerate(zip(self.chain_order, self.chain, strict=True)):
            if self.audio_level is not None and k == 1:
                z = self.audio_level(z)
            z = level(z)
            head = self.heads[m](sources[m])
            loss = loss + info_nce(z, head, temperature=self.ssl_temp, cosine=False)
        return loss

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        user, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
        sources = self.sources()
        users, items = self._fuse(sources)
        main = info_nce(users[user], items[pos], temperature=self.temperature)
        return main + self.ssl_alpha * self.fac(sources, pos)
