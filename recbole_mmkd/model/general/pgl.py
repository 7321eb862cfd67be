"""PGL: principal graph learning, local mode.

Yu et al., "Mind Individual Information! Principal Graph Learning for Multimedia
Recommendation", AAAI 2025 (released code: demonph10/PGL; MMRec ``src/models/pgl.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.contrastive import info_nce
from recbole_mmkd.model.edge_dropout import EdgeDropout
from recbole_mmkd.model.graph import lightgcn_layers
from recbole_mmkd.model.item_views import TrainableFeatures, mixed_knn_graph, modality_shares


@register_model()
class PGL(EdgeDropout, TrainableFeatures, MultimodalRecommender):
    r"""Users a free table per modality, items their projected features (no item ID table),
    propagated in training over a principal subgraph of the user-item graph and smoothed over a
    FREEDOM-style item-item feature graph.

    - Items :math:`x_i = [\hat W_1 x^1_i \| \dots \| \hat W_M x^M_i]`, each projection
      L2-normalised (:math:`\hat{}`), users :math:`[P_1 \| \dots \| P_M]`.
    - Principal subgraph (the release's ``mode: local``): each epoch keeps ``keep_ratio`` of the
      edges, drawn without replacement with probability :math:`\propto 1/\sqrt{d_u d_i}`,
      renormalised; evaluation reads the whole graph.
    - :math:`e_u, e_i` = LightGCN layer mean (``n_ui_layers``) over that graph; item-item
      :math:`h = S^{L} x` (L = ``n_mm_layers``, :math:`S = \sum_m \omega_m S_m` of normalised
      top-``knn_k`` cosine graphs of the dataset's features, built once); score
      :math:`e_u^\top (e_i + h_i)`.

    Loss: BPR :math:`+ \lambda\,\tfrac12 [\mathrm{InfoNCE}(\delta(e_u), \delta'(e_u)) +
    \mathrm{InfoNCE}(\delta(e_{i^+}), \delta'(e_{i^+}))]` over the batch at temperature 0.2,
    :math:`\delta, \delta'` two independent dropouts at ``dropout``
    (:func:`~recbole_mmkd.model.contrastive.info_nce`). MMRec's grid fixes :math:`\lambda`
    (its ``reg_weight``) at 0.

    Config: ``embedding_size`` (d per modality), ``n_ui_layers``, ``n_mm_layers``, ``knn_k``,
    ``modality_weights`` (null = equal; MMRec's ``mm_image_weight: 0.1`` is ``{image: 0.1,
    text: 0.9}``), ``keep_ratio`` (MMRec: 0.3, hard-coded), ``dropout``, ``reg_weight``
    (:math:`\lambda`), ``train_features``; MMRec's ``learning_rate_scheduler`` [0.96, 50].

    Deviations from the release (MMRec ``src/models/pgl.py``, e775373):

    - ``mode: global`` (a truncated-SVD subgraph through the ``sparsesvd`` package) is not
      built; ``local``, the only mode in MMRec's grid, is.
    - Any number of modalities (the release: image and text); the feature graph is built in
      the process (MMRec caches it in ``mm_adj_freedomdsp_*.pt`` in the data folder); the
      kept graph's degrees carry no 1e-7.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.n_mm_layers: int = config["n_mm_layers"]
        self.knn_k: int = config["knn_k"]
        self.keep_ratio: float = config["keep_ratio"]
        self.reg_weight: float = config["reg_weight"]
        self.dropout = nn.Dropout(config["dropout"])
        self.modality_weights = modality_shares(config["modality_weights"], self.modalities)
        self.init_feature_tables(config["train_features"])

        d = self.embedding_size
        self.user_tables = nn.ParameterDict(
            {m: nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, d)))
             for m in self.modalities}
        )  # fmt: skip
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, d) for m, dim in self.feature_dims().items()}
        )
        self.init_edge_dropout(dataset.inter_matrix(form="coo"))
        self.register_buffer("item_graph", self._item_graph(), persistent=False)

    def _item_graph(self) -> torch.Tensor:
        features = {m: self.raw_feature(m) for m in self.modalities}
        return mixed_knn_graph(features, self.modality_weights, self.knn_k)

    def on_mask_change(self) -> None:
        self.item_graph = self._item_graph()

    def on_epoch_start(self, epoch: int) -> None:
        """Draw this epoch's principal subgraph (PGL's ``pre_epoch_processing``)."""
        self.keep_edges(self.keep_ratio)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        items = torch.cat([F.normalize(self.projections[m](self.modal_feature(m)))
                           for m in self.modalities], dim=1)  # fmt: skip
        users = torch.cat([self.user_tables[m] for m in self.modalities], dim=1)
        smoothed = items
        for _ in range(self.n_mm_layers):
            smoothed = torch.sparse.mm(self.item_graph, smoothed)
        ego = torch.cat([users, items])
        final = lightgcn_layers(self.current_adjacency(), ego, self.n_ui_layers)
        users, items = final.split([self.n_users, self.n_items])
        return users, items + smoothed

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        loss, u, pos, _ = self.bpr_batch(interaction)
        if not self.reg_weight:
            return loss
        cl = info_nce(self.dropout(u), self.dropout(u), temperature=0.2)
        cl = cl + info_nce(self.dropout(pos), self.dropout(pos), temperature=0.2)
        return loss + self.reg_weight * cl / 2
