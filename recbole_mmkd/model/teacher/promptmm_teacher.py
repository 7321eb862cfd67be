"""PromptMM's multimodal teacher, trained together with its prompt module.

Wei et al., "PromptMM: Multi-Modal Knowledge Distillation for Recommendation with Prompt-Tuning",
WWW 2024; released code HKUDS/PromptMM (``codes/Models.py``: ``Teacher_Model``,
``PromptLearner``; ``codes/main.py``: the teacher phase).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency, propagate
from recbole_mmkd.model.losses import bpr_loss, l2_reg
from recbole_mmkd.model.transposed import register_with_transpose, spmm

PROPAGATIONS = ("released", "lightgcn")
Prompts = tuple[torch.Tensor, torch.Tensor]  # (user prompts, item prompts), each (n, d)
ModalTables = dict[str, tuple[torch.Tensor, torch.Tensor]]  # modality: (user, item) features


def one_sided_graphs(interactions: sp.coo_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The release's ``csr_norm`` of the training matrix R and of its transpose:
    :math:`D_u^{-1/2} R` (users x items) and :math:`D_i^{-1/2} R^\top` (items x users), each
    row scaled by its own degree only (neither row-stochastic nor symmetric), sparse CSR."""

    def scaled(matrix: sp.csr_matrix) -> torch.Tensor:
        degree = np.asarray(matrix.sum(1)).ravel()
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1)), 0.0)
        coo = (sp.diags(inv_sqrt) @ matrix).tocoo().astype(np.float32)
        index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        values = torch.from_numpy(coo.data)
        matrix = torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return matrix.coalesce().to_sparse_csr()

    matrix = interactions.tocsr().astype(np.float32)
    matrix.data[:] = 1.0
    return scaled(matrix), scaled(matrix.T.tocsr())


def pca_axes(features: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and top-``d`` principal axes ``(min(d, rank), F)`` of ``features``, each
    axis's sign making its largest-magnitude token positive (scikit-learn's ``svd_flip``
    rule, which the release gets from ``PCA``), so that tokens averaged over modalities do not
    depend on the signs an SVD happens to return."""
    mean = features.mean(0)
    centered = features - mean
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    axes = vh[:d]
    tokens = centered @ axes.T
    peak = tokens[tokens.abs().argmax(0), torch.arange(axes.shape[0], device=axes.device)]
    return mean, axes * torch.where(peak < 0, -1.0, 1.0).unsqueeze(1)


def project_tokens(features: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor, d: int):
    """Rows of ``features`` on the principal ``axes`` (zero-padded to ``d`` columns)."""
    return F.pad((features - mean) @ axes.T, (0, d - axes.shape[0]))


def pca_tokens(features: torch.Tensor, d: int) -> torch.Tensor:
    """PromptMM's hard item tokens of one modality: its rows on their own top-``d`` principal
    axes (:func:`pca_axes`), zero-padded to ``d`` columns when the features have fewer."""
    return project_tokens(features, *pca_axes(features, d), d)


class PromptModule(nn.Module):
    """PromptMM's prompt: hard item tokens (each modality's PCA tokens, averaged) and user
    tokens (the item tokens propagated to users over the teacher's user graph), each passed
    through a soft prompt ``Linear(d, d)``. The tokens are stored with the state, so a
    student reads exactly the teacher's."""

    def __init__(self, item_tokens: torch.Tensor, user_tokens: torch.Tensor) -> None:
        super().__init__()
        d = item_tokens.shape[1]
        self.register_buffer("user_tokens", user_tokens)
        self.register_buffer("item_tokens", item_tokens)
        self.user_prompt = nn.Linear(d, d)
        self.item_prompt = nn.Linear(d, d)

    def forward(self) -> Prompts:
        return self.user_prompt(self.user_tokens), self.item_prompt(self.item_tokens)


@register_model()
class PromptMMTeacher(MultimodalRecommender):
    r"""PromptMM's teacher: ID graph embeddings plus propagated projected modality features,
    with its prompt module inside, the two trained together (PromptMM's first stage).

    Prompts :math:`(p_u, p_i)` (:class:`PromptModule`) enter twice: the raw features become
    :math:`x^m + \rho_f\,\mathrm{norm}(P P^\top x^m)` (:math:`P` the item prompts, rows
    L2-normalised) before the projection :math:`f^m_i = \mathrm{drop}(W_m \tilde x^m_i + b_m)`,
    and the ID embeddings :math:`\gamma + \rho\,\mathrm{norm}(p)`. Modality features spread item
    -> user -> item: :math:`f^m_u = \hat R f^m_i`, :math:`\bar f^m_i = \hat R' f^m_u`. IDs are
    propagated ``n_layers`` times and averaged over layers. Output :math:`e = e^{id} +
    \text{modal\_rate} \sum_m \mathrm{norm}(f^m)` (users :math:`f^m_u`, items :math:`\bar
    f^m_i`), :math:`s(u, i) = e_u^\top e_i`.

    ``propagation: released`` (the default) is the release's operator: :math:`\hat R = D_u^{-1/2}
    R`, :math:`\hat R' = D_i^{-1/2} R^\top` (each side scaled by its own degree), IDs updated
    in turn (users from items, then items from the new users) with a softmax over the
    embedding dimensions at the last layer. ``lightgcn``: the symmetric
    :math:`D^{-1/2} A D^{-1/2}` for both, IDs as LightGCN. The paper's text gives no teacher
    equations to follow instead (its figure shows a generic modality-aware GNN).

    Loss (the release's teacher phase): BPR on :math:`e`; ``reg_weight`` times the squared
    norms of the batch's rows of :math:`e` over :math:`2|B|`; ``modal_bpr_weight`` times the
    BPR of every modality's own tables; ``feat_reg_weight`` times the squared norms of all
    modality tables over :math:`2 |I|`; ``prompt_weight`` times the BPR of the prompts
    themselves (:math:`p_u^\top p_i`).

    Config: ``embedding_size``, ``n_layers``, ``propagation``, ``modal_rate``,
    ``feature_dropout``, ``reg_weight``, ``feat_reg_weight``, ``modal_bpr_weight``,
    ``prompt`` (false: no prompt module, the teacher alone), ``soft_token_rate``,
    ``feat_soft_token_rate``, ``prompt_weight``.

    Deviations from the release: every modality of the dataset, not image and text alone;
    PCA by a full SVD with scikit-learn's sign rule, not its randomised solver, fitted with
    RecBole's padding row 0 among the items; items that lose a modality (robustness masks)
    get the tokens of their masked features (the release has no masks); the run keeps the
    validation-best state (the release saves the teacher at its early stop on test, patience
    + 1 epochs after its best); interaction-wise batches instead of the release's
    user-uniform ones. The prompt is a submodule, so it is stored with the teacher's state and
    a student reads the trained prompt.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.propagation: str = config["propagation"]
        self.modal_rate: float = config["modal_rate"]
        self.reg_weight: float = config["reg_weight"]
        self.feat_reg_weight: float = config["feat_reg_weight"]
        self.modal_bpr_weight: float = config["modal_bpr_weight"]
        self.soft_token_rate: float = config["soft_token_rate"]
        self.feat_soft_token_rate: float = config["feat_soft_token_rate"]
        self.prompt_weight: float = config["prompt_weight"]
        if self.propagation not in PROPAGATIONS:
            raise ConfigError(
                "config", "propagation", f"unknown {self.propagation!r}",
                f"use one of {PROPAGATIONS}",
            )  # fmt: skip
        self.init_id_embeddings(self.embedding_size)
        self.projections = nn.ModuleDict()
        for modality, dim in self.feature_dims().items():
            self.projections[modality] = nn.Linear(dim, self.embedding_size)
            nn.init.xavier_uniform_(self.projections[modality].weight)
        self.dropout = nn.Dropout(config["feature_dropout"])
        interactions = dataset.inter_matrix(form="coo")
        if self.propagation == "released":
            to_users, to_items = one_sided_graphs(interactions)
            register_with_transpose(self, "to_users_graph", to_users)
            register_with_transpose(self, "to_items_graph", to_items)
        else:
            adjacency = normalized_adjacency(interactions)
            self.register_buffer("adjacency", adjacency, persistent=False)
        self.prompt: PromptModule | None = None
        if config["prompt"]:
            for m in self.modalities:  # stored: a student and a mask read the teacher's axes
                mean, axes = pca_axes(self.raw_feature(m), self.embedding_size)
                self.register_buffer(f"_pca_mean_{m}", mean)
                self.register_buffer(f"_pca_axes_{m}", axes)
            self.prompt = PromptModule(*self.hard_tokens())

    def hard_tokens(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Item tokens (the modalities' PCA tokens of the features as they are now, masks
        included, averaged) and user tokens (those propagated to users)."""
        tokens = [
            project_tokens(self.raw_feature(m), getattr(self, f"_pca_mean_{m}"),
                           getattr(self, f"_pca_axes_{m}"), self.embedding_size)
            for m in self.modalities
        ]  # fmt: skip
        item_tokens = torch.stack(tokens).mean(0)
        return item_tokens, self.hop_to_users(item_tokens)

    def on_mask_change(self) -> None:
        """Items that lose a modality lose what their tokens drew from it."""
        if self.prompt is not None:
            item_tokens, user_tokens = self.hard_tokens()
            self.prompt.item_tokens.copy_(item_tokens)
            self.prompt.user_tokens.copy_(user_tokens)

    def hop_to_users(self, items: torch.Tensor) -> torch.Tensor:
        """Item rows summed into users over this teacher's user graph."""
        if self.propagation == "released":
            return spmm(self.to_users_graph, self.to_users_graph_t, items)
        zeros = items.new_zeros(self.n_users, items.shape[1])
        return propagate(self.adjacency, torch.cat([zeros, items]))[: self.n_users]

    def hop_to_items(self, users: torch.Tensor) -> torch.Tensor:
        """User rows summed into items over this teacher's item graph."""
        if self.propagation == "released":
            return spmm(self.to_items_graph, self.to_items_graph_t, users)
        zeros = users.new_zeros(self.n_items, users.shape[1])
        return propagate(self.adjacency, torch.cat([users, zeros]))[self.n_users :]

    def _id_layers(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.propagation == "lightgcn":
            return lightgcn_layers(self.adjacency, torch.cat([users, items]), self.n_layers).split(
                [self.n_users, self.n_items]
            )
        user_layers, item_layers = [users], [items]
        for layer in range(self.n_layers):
            users = self.hop_to_users(items)
            if layer == self.n_layers - 1:
                users = users.softmax(-1)
            items = self.hop_to_items(users)
            if layer == self.n_layers - 1:
                items = items.softmax(-1)
            user_layers.append(users)
            item_layers.append(items)
        return torch.stack(user_layers).mean(0), torch.stack(item_layers).mean(0)

    def tables(self, prompts: Prompts | None) -> tuple[torch.Tensor, torch.Tensor, ModalTables]:
        """Fused user and item tables and each modality's (user, item) tables, with
        ``prompts`` (the teacher's own, or a student's tuned copy) or none."""
        users, items = self.user_embedding.weight, self.item_embedding.weight
        if prompts is not None:
            users = users + self.soft_token_rate * F.normalize(prompts[0], dim=1)
            items = items + self.soft_token_rate * F.normalize(prompts[1], dim=1)
        user_e, item_e = self._id_layers(users, items)
        modal: ModalTables = {}
        for m, projection in self.projections.items():
            x = self.modal_feature(m)
            if prompts is not None:
                item_prompt = prompts[1]
                x = x + self.feat_soft_token_rate * F.normalize(item_prompt @ (item_prompt.T @ x))
            present = self.item_present(m).unsqueeze(1).to(x.dtype)
            feature = self.dropout(projection(x)) * present
            modal_users = self.hop_to_users(feature)
            modal[m] = (modal_users, self.hop_to_items(modal_users))
            user_e = user_e + self.modal_rate * F.normalize(modal[m][0], dim=1)
            item_e = item_e + self.modal_rate * F.normalize(modal[m][1], dim=1)
        return user_e, item_e, modal

    def own_prompts(self) -> Prompts | None:
        return None if self.prompt is None else self.prompt()

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        user_e, item_e, _ = self.tables(self.own_prompts())
        return user_e, item_e

    def calculate_loss(self, interaction) -> torch.Tensor:
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        prompts = self.own_prompts()
        user_e, item_e, modal = self.tables(prompts)

        def bpr(user_table: torch.Tensor, item_table: torch.Tensor) -> torch.Tensor:
            u = user_table[users]
            return bpr_loss((u * item_table[pos]).sum(-1), (u * item_table[neg]).sum(-1))

        loss = bpr(user_e, item_e)
        loss = loss + self.reg_weight * l2_reg(user_e[users], item_e[pos], item_e[neg])
        for modal_users, modal_items in modal.values():
            loss = loss + self.modal_bpr_weight * bpr(modal_users, modal_items)
            squares = modal_users.pow(2).sum() + modal_items.pow(2).sum()
            loss = loss + self.feat_reg_weight * squares / (2 * self.n_items)
        if prompts is not None:
            loss = loss + self.prompt_weight * bpr(*prompts)
        return loss
