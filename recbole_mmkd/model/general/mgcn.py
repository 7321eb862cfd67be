"""MGCN: multi-view graph convolution with behaviour-guided purification of modality features.

Yu et al., "Multi-View Graph Convolutional Network for Multimedia Recommendation", ACM MM 2023
(released code: demonph10/MGCN; MMRec ``src/models/mgcn.py``).
"""

from __future__ import annotations

import torch
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.contrastive import info_nce
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency
from recbole_mmkd.model.item_views import TrainableFeatures, item_item_view, user_item_block
from recbole_mmkd.model.losses import bpr_loss, l2_reg
from recbole_mmkd.model.similarity_graph import weighted_knn_graph
from recbole_mmkd.model.transposed import register_with_transpose


@register_model()
class MGCN(TrainableFeatures, MultimodalRecommender):
    r"""Three views of each item (user-item graph, one item-item graph per modality), fused by
    attention and gated by user-item behaviour.

    - User-item view: :math:`C` = LightGCN layer mean (``n_ui_layers``) of the ID embeddings
      over :math:`D^{-1/2} A D^{-1/2}`.
    - Behaviour-guided purifier: per modality m, :math:`\dot e^m_i = e_i \odot
      \sigma(W_1^m (W_m x^m_i + b_m) + b^m_1)`, the item ID embedding gated by its projected
      features.
    - Item-item view: :math:`\dot e^m_i` propagated ``n_layers`` times over the frozen
      top-``knn_k`` cosine graph of modality m's features, each edge weighted by its similarity
      and normalised by the rows' similarity sums
      (:func:`~recbole_mmkd.model.similarity_graph.weighted_knn_graph`, as released); users
      :math:`\dot e^m_u = \sum_i \hat A_{ui} \dot e^m_i` (the user-item block of the
      normalised graph).
    - Behaviour-aware fuser: attention :math:`\alpha_m = \mathrm{softmax}_m(q^\top
      \tanh(W_q \dot e^m + b_q))` gives the common part :math:`E^c = \sum_m \alpha_m \dot e^m`;
      each modality's specific part :math:`\sigma(W_2^m C + b_2^m) \odot (\dot e^m - E^c)`;
      side :math:`S = (E^c + \sum_m \text{specific}_m) / (M + 1)`.
    - Representation :math:`C + S`; score :math:`s(u, i) = e_u^\top e_i`.

    Loss: :math:`\mathcal{L}_{BPR} + \lambda \frac{1}{2|B|}(\|e_u\|^2 + \|e_{i^+}\|^2 +
    \|e_{i^-}\|^2) + \mu\,[\mathrm{InfoNCE}(S_{i^+}, C_{i^+}) + \mathrm{InfoNCE}(S_u, C_u)]`,
    the regulariser on the final batch rows, InfoNCE over the batch at temperature ``temperature``
    (:func:`~recbole_mmkd.model.contrastive.info_nce`).

    Features: ``train_features: true`` (the default, as released) feeds the projections a
    trainable copy initialised from the dataset's features (MMRec's
    ``nn.Embedding.from_pretrained(feat, freeze=False)``); ``false`` the fixed features. The
    item-item graphs are built once from the dataset's features either way, as released.

    Config: ``embedding_size`` (d), ``n_ui_layers``, ``n_layers`` (item-graph layers), ``knn_k``,
    ``reg_weight`` (:math:`\lambda`), ``cl_weight`` (:math:`\mu`, MMRec's ``cl_loss``),
    ``temperature`` (MMRec: 0.2, hard-coded), ``train_features``, ``feature_norm``; MMRec's
    ``learning_rate_scheduler`` [0.96, 50].

    Deviations from the release (MMRec ``src/models/mgcn.py``, e775373):

    - Any number of modalities: the attention runs over all of them and the side
      representation averages the common part and the M specific parts (the release: image and
      text, :math:`(E^c + \text{sp}_v + \text{sp}_t) / 3`, the same for M = 2).
    - The regulariser divides by the batch's size; the release by ``train_batch_size`` (they
      differ on an epoch's last, smaller batch only).
    - Items masked as missing a modality have zero features and no item-item edges in it (the
      release has no missing-modality mask).

    Beside MMRec: one step from the same parameters on the same batch
    (``bench/mmrec/step_check.py MGCN``) gives losses 0.82344282 and 0.82344437; the item-item
    graphs differ only in the rows of items tied at the ``knn_k``-th similarity (equal
    features: 26 audio, 3 image rows on TikTok), ordered differently by the two top-k
    routines, and with MMRec's graphs (``--their-graphs``) the two steps agree to float
    rounding. Until the kNN edges were weighted by their similarities (as released; before,
    0/1) every graph row differed; the side-by-side run of ``results/reference`` was made
    before that fix.
    """

    feature_projections = "projections"

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.n_layers: int = config["n_layers"]
        self.knn_k: int = config["knn_k"]
        self.reg_weight: float = config["reg_weight"]
        self.cl_weight: float = config["cl_weight"]
        self.temperature: float = config["temperature"]

        d = self.embedding_size
        self.init_id_embeddings(d)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, d) for m, dim in self.feature_dims().items()}
        )
        self.purifiers = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, d), nn.Sigmoid()) for m in self.modalities}
        )
        self.preferences = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, d), nn.Sigmoid()) for m in self.modalities}
        )
        self.query = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        self.init_feature_tables(config["train_features"])

        inter = dataset.inter_matrix(form="coo")
        self.register_buffer("adjacency", normalized_adjacency(inter), persistent=False)
        block = user_item_block(inter)
        register_with_transpose(self, "user_item", block)
        self._build_item_graphs()

    def _build_item_graphs(self) -> None:
        for m in self.modalities:
            graph = weighted_knn_graph(self.raw_feature(m), self.knn_k).to_sparse_csr()
            register_with_transpose(self, f"_graph_{m}", graph)

    def on_mask_change(self) -> None:
        self._build_item_graphs()

    def views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The user-item view :math:`C` and the side view :math:`S`, users then items."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        content = lightgcn_layers(self.adjacency, ego, self.n_ui_layers)
        modal = []
        for m in self.modalities:
            gate = self.purifiers[m](self.projections[m](self.modal_feature(m)))
            items = self.item_embedding.weight * gate
            graph = getattr(self, f"_graph_{m}"), getattr(self, f"_graph_{m}_t")
            user_item = self.user_item, self.user_item_t
            modal.append(item_item_view(graph, user_item, items, self.n_layers))
        stacked = torch.stack(modal)  # (M, users + items, d)
        attention = torch.softmax(self.query(stacked), dim=0)
        common = (attention * stacked).sum(0)
        specific = [self.preferences[m](content) * (e - common)
                    for m, e in zip(self.modalities, modal, strict=True)]  # fmt: skip
        side = (common + sum(specific)) / (len(modal) + 1)
        return content, side

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        content, side = self.views()
        return (content + side).split([self.n_users, self.n_items])

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        content, side = self.views()
        user_e, item_e = (content + side).split([self.n_users, self.n_items])
        u, p, n = user_e[users], item_e[pos], item_e[neg]
        loss = bpr_loss((u * p).sum(-1), (u * n).sum(-1)) + self.reg_weight * l2_reg(u, p, n)
        items = self.n_users + pos
        contrast = info_nce(side[items], content[items], temperature=self.temperature)
        contrast = contrast + info_nce(side[users], content[users], temperature=self.temperature)
        return loss + self.cl_weight * contrast
