"""CFDTBD: cross-modal feature disentangling by bidirectional distillation, as released.

The authors' TensorFlow 1.x code (shuaiyangli/CFDTBD at 280bb96, ``Model-art/model-art.py``;
"A:n" below is its line n), read line by line. ``CFDTBD-described`` (``cfdtbd_described.py``)
is this project's earlier reading of the method's description, kept under its own name.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import self_loop_edges
from recbole_mmkd.model.losses import bpr_loss, l2_reg

COMMON_SIGNS = ("apart", "together")
OTHER = "other"  # weight key for a modality the tables do not name (TikTok's audio)
FUSED = "fused"


def self_loop_adjacency(interactions: sp.coo_matrix, left: float, right: float) -> torch.Tensor:
    """``D^left (A + I) D^right`` of the bipartite user-item graph (users first), ``D`` the
    degrees of ``A + I`` (interactions + 1), as a coalesced sparse COO tensor: CFDTBD's
    ``normalized_adj_symetric`` (its ``load_data.py``), asymmetric when ``left != right``."""
    rows, cols, degree = self_loop_edges(interactions)
    n = degree.shape[0]
    degree = degree.astype(np.float64)
    values = (degree[rows] ** left * degree[cols] ** right).astype(np.float32)
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    return torch.sparse_coo_tensor(
        index, torch.from_numpy(values), (n, n), check_invariants=True
    ).coalesce()


def zca_whiten(x: torch.Tensor, *, eps: float = 1e-5) -> torch.Tensor:
    """``x C^{-1/2}`` with ``C = x^T x / n`` (uncentred, every row counted, zero rows too) and
    ``eps`` added to its eigenvalues, so the result's columns have second moment about 1;
    gradients flow through the eigendecomposition (done in float64, whose gradient has
    ``1 / (s_i - s_j)`` terms), as through the release's ``tf.linalg.svd`` (A:347-367)."""
    wide = x.double()
    s, u = torch.linalg.eigh(wide.T @ wide / x.shape[0])
    return (wide @ ((u * (s + eps).rsqrt()) @ u.T)).to(x.dtype)


def part_cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of two parts of the same rows."""
    return F.cosine_similarity(a, b, dim=-1)


@register_model()
class CFDTBD(MultimodalRecommender):
    r"""An ID graph part plus a common and a differential part per modality, each with its
    own user table, scored and trained part by part.

    Modality m: projections without bias or activation of the raw features, ZCA-whitened over
    all items (``whiten``; :func:`zca_whiten`): :math:`z^{m,1} = \mathrm{zca}(X_m W^1_m)`
    (common), :math:`z^{m,2} = \mathrm{zca}(X_m W^2_m)` (differential). Each part stacks its own
    user table on its items and is propagated once over :math:`\hat A_5 = D^{-1/2} (A + I)
    D^{-1/2}`: :math:`h^{m,k} = \hat A_5 [U^{m,k}; z^{m,k}]`. The ID part takes ``n_layers``
    layers over the asymmetric :math:`\hat A_4 = D^{a} (A + I) D^{b}`
    (``id_degree_exponents`` :math:`(a, b)`), last layer only. The fused part is one more
    :math:`\hat A_5` layer over the concatenated modality parts (no new parameters, no mixing
    across them). Scores per part: :math:`s_{id}`, :math:`s_m = h^{m,1}_u \cdot h^{m,1}_i +
    h^{m,2}_u \cdot h^{m,2}_i`, :math:`s_f`; ranking by :math:`s_{id} + \sum_m \lambda_m s_m +
    \lambda_f s_f` (``score_weights``; used for ranking only, A:293-299).

    Loss, over the batch's users u and positive items i (duplicates kept):

    .. math::
        \mathcal{L} = \mathrm{BPR}(s_{id}) + \sum_m \mu_m \mathrm{BPR}(s_m) + \mu_f
        \mathrm{BPR}(s_f) + \text{reg} \Big(R_{id} + \sum_m \nu_m R_m + \nu_f R_f\Big)
        + \text{common} \sum_{a<b} \big(\overline{c(h^{a,1}_u, h^{b,1}_u)}
          + \overline{c(h^{a,1}_i, h^{b,1}_i)}\big)
        + \text{diff} \sum_{a<b} \big(\overline{\sqrt{\cos^2(h^{a,2}_u, h^{b,2}_u) + 10^{-8}}}
          + \text{(items alike)}\big)

    :math:`\mu` = ``bpr_weights``, :math:`\nu` = ``reg_weights``; each :math:`R` is
    :math:`\frac{1}{2B}\sum\|\cdot\|^2` of the batch rows: layer-0 ID rows (:math:`R_{id}`),
    the modality's user-table rows and whitened item rows of both parts (:math:`R_m`), the
    propagated fused rows (:math:`R_f`). The common-part term :math:`c` is ``common_sign``:

    - ``apart`` (the release, A:232-234, 315): :math:`c = \cos`, minimised, so each user's and
      item's common parts of two modalities are driven to opposite directions. This is the
      default because it is what produced the published figures. Read charitably it is
      consistent: each common part is only ever scored against its own kind, so
      anti-parallel parts carry the same information up to sign, while the differential term
      drives the other parts to orthogonality.
    - ``together``: :math:`c = 1 - \cos`, the direction the authors' README states ("bringing
      common features closer together"); the paper's formula could not be read here.

    The differential term drives :math:`|\cos|` of two modalities' differential parts to 0
    (orthogonal). There is no teacher and no temperature: the "bidirectional distillation" is
    these two terms.

    Per-modality weights are read by modality name; the release has ``image`` and ``text``,
    and any other modality (TikTok's audio, which MMRec puts in the text slot) takes the
    ``other`` entry. Defaults: the release's Art values (A:32-42).

    Config: ``embedding_size``, ``n_layers``, ``id_degree_exponents``, ``whiten``,
    ``score_weights``, ``bpr_weights``, ``reg_weights`` (each a mapping over the modality
    names, ``other`` and ``fused``), ``reg_weight`` (the release's ``decay``),
    ``common_weight`` (``eit_cfd``), ``common_sign``, ``diff_weight`` (``eit_dfd``).

    Deviations from the release:

    - Model selection on validation Recall@20 with full ranking (this project's protocol); the
      release ranks each test item among 99 sampled negatives and picks its epoch by test
      HR@5 + NDCG@5, every 10 epochs.
    - Batches of interactions (RecBole's sampler: one negative outside the user's training
      items); the release draws 2048 distinct users, one positive each, and its evaluation
      reseeds the RNG (A:102), so every 10-epoch block repeats the same training triples:
      not reproduced.
    - Any number of modalities (pairs summed in the two terms); a missing modality's rows are
      zero, as the release's items without features.
    - The cosine clamps norms at 1e-8 (the release divides without a guard).
    - The whitening is recomputed per forward pass over all items, as in the release; its
      eigendecomposition runs in float64 (the release's SVD runs in float32).
    - The release whitens Taobao's text parts not at all; here ``whiten`` covers all parts.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        d: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.whiten: bool = config["whiten"]
        self.reg_weight: float = config["reg_weight"]
        self.common_weight: float = config["common_weight"]
        self.diff_weight: float = config["diff_weight"]
        self.common_sign: str = config["common_sign"]
        if self.common_sign not in COMMON_SIGNS:
            raise ConfigError(
                "common_sign", self.common_sign, "unknown", f"use one of {', '.join(COMMON_SIGNS)}"
            )
        weights = {k: config[k] for k in ("score_weights", "bpr_weights", "reg_weights")}
        self.score_weights, self.bpr_weights, self.reg_weights = (
            self._part_weights(key, table) for key, table in weights.items()
        )
        self.init_id_embeddings(d)
        dims = self.feature_dims()
        self.projections = nn.ModuleDict()
        self.user_tables = nn.ModuleDict()
        for m in self.modalities:
            for k in (1, 2):
                projection = nn.Linear(dims[m], d, bias=False)
                nn.init.xavier_uniform_(projection.weight)
                table = nn.Embedding(self.n_users, d)
                nn.init.xavier_uniform_(table.weight)
                self.projections[f"{m}_{k}"], self.user_tables[f"{m}_{k}"] = projection, table
        interactions = dataset.inter_matrix(form="coo")
        left, right = config["id_degree_exponents"]
        self.register_buffer(
            "id_graph", self_loop_adjacency(interactions, left, right), persistent=False
        )
        self.register_buffer(
            "part_graph", self_loop_adjacency(interactions, -0.5, -0.5), persistent=False
        )

    def _part_weights(self, key: str, table: dict) -> dict[str, float]:
        """``table`` resolved per modality (its own name, else ``other``) and ``fused``."""
        needed = [FUSED, *(OTHER for m in self.modalities if m not in table)]
        missing = sorted({k for k in needed if k not in table})
        if missing:
            raise ConfigError(
                key, str(table), f"has no entry for {', '.join(missing)}",
                f"give {', '.join(missing)} a weight (the modalities here: {self.modalities})",
            )  # fmt: skip
        return {m: float(table.get(m, table.get(OTHER))) for m in [*self.modalities, FUSED]}

    def items_of_parts(self) -> dict[str, torch.Tensor]:
        """Each modality part's item rows before propagation (``<modality>_1`` common,
        ``<modality>_2`` differential): projected, whitened features."""
        parts = {}
        for name, projection in self.projections.items():
            projected = projection(self.modal_feature(name.rsplit("_", 1)[0]))
            parts[name] = zca_whiten(projected) if self.whiten else projected
        return parts

    def part_tables(
        self,
    ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, torch.Tensor]]:
        """Propagated (users, items) of every part (``id``, each modality's ``<m>_1`` and
        ``<m>_2``, ``fused``), and the whitened item rows the regulariser reads."""
        split = [self.n_users, self.n_items]
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        for _ in range(self.n_layers):
            ego = torch.sparse.mm(self.id_graph, ego)
        tables = {"id": tuple(ego.split(split))}
        items = self.items_of_parts()
        spread = {
            name: torch.sparse.mm(self.part_graph, torch.cat([self.user_tables[name].weight, z]))
            for name, z in items.items()
        }
        for name, h in spread.items():
            tables[name] = tuple(h.split(split))
        fused = torch.sparse.mm(self.part_graph, torch.cat(list(spread.values()), dim=1))
        tables[FUSED] = tuple(fused.split(split))
        return tables, items

    def _scored_parts(self, tables) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The parts as scored: ``id``, each modality (its common and differential parts side
        by side) and ``fused``."""
        scored = {"id": tables["id"], FUSED: tables[FUSED]}
        for m in self.modalities:
            (u1, i1), (u2, i2) = tables[f"{m}_1"], tables[f"{m}_2"]
            scored[m] = (torch.cat([u1, u2], dim=1), torch.cat([i1, i2], dim=1))
        return scored

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User rows scaled by their part's score weight, so that the dot product is the
        release's weighted sum of part scores."""
        scored = self._scored_parts(self.part_tables()[0])
        weight = {"id": 1.0, **self.score_weights}
        users = torch.cat([weight[p] * u for p, (u, _) in scored.items()], dim=1)
        items = torch.cat([i for _, i in scored.values()], dim=1)
        return users, items

    def calculate_loss(self, interaction) -> torch.Tensor:
        user, pos, neg = (interaction[k] for k in (self.USER_ID, self.ITEM_ID, self.NEG_ITEM_ID))
        tables, whitened = self.part_tables()
        bpr_weight = {"id": 1.0, **self.bpr_weights}
        loss = sum(
            bpr_weight[part] * bpr_loss((u[user] * i[pos]).sum(-1), (u[user] * i[neg]).sum(-1))
            for part, (u, i) in self._scored_parts(tables).items()
        )
        reg = l2_reg(self.user_embedding(user), self.item_embedding(pos), self.item_embedding(neg))
        for m in self.modalities:
            rows = [self.user_tables[f"{m}_{k}"](user) for k in (1, 2)]
            rows += [whitened[f"{m}_{k}"][j] for k in (1, 2) for j in (pos, neg)]
            reg = reg + self.reg_weights[m] * l2_reg(*rows)
        fused_u, fused_i = tables[FUSED]
        reg = reg + self.reg_weights[FUSED] * l2_reg(fused_u[user], fused_i[pos], fused_i[neg])
        common, differential = self.disentangling_terms(tables, user, pos)
        return (
            loss
            + self.reg_weight * reg
            + self.common_weight * common
            + self.diff_weight * differential
        )

    def disentangling_terms(
        self, tables, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(common-part term, differential-part term) over the batch's ``users`` and positive
        ``items``, each summed over the pairs of modalities."""
        common = differential = self.item_embedding.weight.new_zeros(())
        for a, b in combinations(self.modalities, 2):
            for rows, side in ((users, 0), (items, 1)):
                cos = part_cosines(tables[f"{a}_1"][side][rows], tables[f"{b}_1"][side][rows])
                common = common + (cos if self.common_sign == "apart" else 1 - cos).mean()
                cos = part_cosines(tables[f"{a}_2"][side][rows], tables[f"{b}_2"][side][rows])
                differential = differential + (cos.pow(2) + 1e-8).sqrt().mean()
        return common, differential
