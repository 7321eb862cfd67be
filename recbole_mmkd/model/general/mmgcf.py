"""MMGCF: LightGCN ID embeddings late-fused with projected multimodal item features.

Multimodal Graph Collaborative Filtering, UMAP 2026 (MMRec ``src/models/mmgcf.py``, added in
enoche/MMRec#62).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.edge_dropout import EdgeDropout
from recbole_mmkd.model.graph import lightgcn_layers
from recbole_mmkd.model.options import check_choice

FUSIONS = ("mean", "sum", "concat")
WEIGHTINGS = ("equal", "alpha", "normalized")


@register_model()
class MMGCF(EdgeDropout, MultimodalRecommender):
    r"""LightGCN over the user-item graph; each item's output fused with its projected
    features :math:`f^m_i = W_m x^m_i + b_m`; users are LightGCN's alone.

    ``fusion`` combines a list of tables: ``mean``, ``sum``, or ``concat`` (concatenated, then a
    Linear). ``weighting`` decides the list:

    - ``equal``: the modalities fused first (where there are several), then fused with the ID
      output :math:`e_i`, two tables of equal weight;
    - ``alpha``: :math:`[\alpha e_i, (1-\alpha) f^1_i, \dots]` fused at once, :math:`\alpha =
      \sigma(a)` learnt (from 0.5);
    - ``normalized``: :math:`[M \hat e_i, \hat f^1_i, \dots]` fused at once (hats:
      L2-normalised).

    In training each epoch keeps a ``1 - dropout`` share of the edges, drawn without
    replacement with probability :math:`\propto 1/\sqrt{d_u d_i}`, renormalised; evaluation
    reads the whole graph. Score :math:`e_u^\top \tilde e_i`.

    Loss: BPR :math:`+ \lambda \frac{1}{2|B|}(\|e^{(0)}_u\|^2 + \|e^{(0)}_{i^+}\|^2 +
    \|e^{(0)}_{i^-}\|^2)` on the ego ID rows.

    Config: ``embedding_size`` (d; the feature projections share it, as MMRec requires for
    mean and sum), ``n_ui_layers``, ``fusion``, ``weighting``, ``dropout`` (edges dropped per
    epoch), ``reg_weight`` (:math:`\lambda`).

    Deviations from the release (MMRec ``src/models/mmgcf.py``, e775373): any number of
    modalities; only the concat layers a weighting reads are built (MMRec builds all three,
    the unused ones never trained); MMRec's ``fusion_mode`` is ``fusion`` here and its
    ``feat_embed_dim`` is ``embedding_size``; the kept graph's degrees carry no 1e-7.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.fusion = check_choice("fusion", config["fusion"], FUSIONS)
        self.weighting = check_choice("weighting", config["weighting"], WEIGHTINGS)
        self.dropout: float = config["dropout"]
        self.reg_weight: float = config["reg_weight"]

        self.init_id_embeddings(d)
        self.projections = nn.ModuleDict(
            {m: nn.Linear(dim, d) for m, dim in self.feature_dims().items()}
        )
        n = len(self.modalities)
        if self.weighting == "alpha":
            self.alpha_logit = nn.Parameter(torch.tensor(0.0))
        self.concat = nn.ModuleDict()
        if self.fusion == "concat":
            if self.weighting == "equal":
                if n > 1:
                    self.concat["modalities"] = nn.Linear(n * d, d)
                self.concat["id_and_modalities"] = nn.Linear(2 * d, d)
            else:
                self.concat["all"] = nn.Linear((n + 1) * d, d)

        self.init_edge_dropout(dataset.inter_matrix(form="coo"))

    def on_epoch_start(self, epoch: int) -> None:
        if self.dropout > 0:
            self.keep_edges(1.0 - self.dropout)

    def _fuse(self, tables: list[torch.Tensor], concat: str) -> torch.Tensor:
        if self.fusion == "mean":
            return torch.stack(tables).mean(0)
        if self.fusion == "sum":
            return torch.stack(tables).sum(0)
        return self.concat[concat](torch.cat(tables, dim=-1))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = lightgcn_layers(self.current_adjacency(), ego, self.n_ui_layers).split(
            [self.n_users, self.n_items]
        )
        features = [self.projections[m](self.modal_feature(m)) for m in self.modalities]
        if self.weighting == "alpha":
            alpha = torch.sigmoid(self.alpha_logit)
            return users, self._fuse([alpha * items] + [(1 - alpha) * f for f in features], "all")
        if self.weighting == "normalized":
            tables = [F.normalize(items) * len(features)] + [F.normalize(f) for f in features]
            return users, self._fuse(tables, "all")
        fused = self._fuse(features, "modalities") if len(features) > 1 else features[0]
        return users, self._fuse([items, fused], "id_and_modalities")

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        return loss + self.reg_weight * self.id_reg(interaction)
