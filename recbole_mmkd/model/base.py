"""Base class of the project's models: dot-product scoring with cached representations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn

from recbole_mmkd.model.features import normalize_features
from recbole_mmkd.model.losses import bpr_loss, l2_reg


class MMKDRecommender(GeneralRecommender):
    """A recommender whose ``forward()`` returns user and item representation tables.

    Scores are dot products of the two tables. While the model is in eval mode the tables are
    computed once and reused by every ``predict``/``full_sort_predict`` call of that evaluation
    pass; ``train()`` or ``eval()`` drops them, so each evaluation sees current parameters.
    Subclasses implement :meth:`forward` and :meth:`calculate_loss`.
    """

    input_type = InputType.PAIRWISE
    # Capabilities the runner reads before building anything (RecBole's models have none):
    needs_teacher: ClassVar[bool] = False  # distils from a stored teacher run (TeacherRef)
    needs_features: ClassVar[bool] = False  # reads the dataset's item features
    # scores are the inner products of forward()'s tables: false for a model that scores
    # otherwise (MAML's distances), which therefore cannot teach from its stored tables
    dot_product_scores: ClassVar[bool] = True
    # submodules that only training uses (SGFD's teacher): not counted as what inference holds
    training_only: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self._tables: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pinned = False

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def init_id_embeddings(self, dim: int) -> None:
        """``user_embedding`` and ``item_embedding`` tables of width ``dim``, Xavier-uniform."""
        self.user_embedding = nn.Embedding(self.n_users, dim)
        self.item_embedding = nn.Embedding(self.n_items, dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)

    def id_reg(self, interaction: Interaction) -> torch.Tensor:
        """LightGCN's regulariser on the batch's layer-0 ID embeddings (user, pos, neg)."""
        return l2_reg(
            self.user_embedding(interaction[self.USER_ID]),
            self.item_embedding(interaction[self.ITEM_ID]),
            self.item_embedding(interaction[self.NEG_ITEM_ID]),
        )

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before each training epoch (e.g. to resample a graph)."""

    def run_info(self) -> dict:
        """Facts about this run that belong in its RunResult (e.g. which label source)."""
        return {}

    def train(self, mode: bool = True) -> MMKDRecommender:
        self._tables = None
        return super().train(mode)

    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item tables: recomputed in training, cached in eval mode."""
        if self._pinned or (not self.training and self._tables is not None):
            return self._tables
        if self.training:
            return self.forward()
        self._tables = self.forward()
        return self._tables

    @contextmanager
    def one_forward(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Inside the block every :meth:`representations` call shares one ``forward()`` pass
        (a loss made of several terms over the same tables, e.g. a backbone loss plus KD)."""
        self._tables, self._pinned = self.forward(), True
        try:
            yield self._tables
        finally:
            self._tables, self._pinned = None, False

    def bpr_batch(
        self, interaction: Interaction
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """BPR loss of a pairwise batch and the batch's user, positive and negative rows."""
        user_e, item_e = self.representations()
        u = user_e[interaction[self.USER_ID]]
        pos = item_e[interaction[self.ITEM_ID]]
        neg = item_e[interaction[self.NEG_ITEM_ID]]
        return bpr_loss((u * pos).sum(-1), (u * neg).sum(-1)), u, pos, neg

    def predict(self, interaction: Interaction) -> torch.Tensor:
        user_e, item_e = self.representations()
        return (user_e[interaction[self.USER_ID]] * item_e[interaction[self.ITEM_ID]]).sum(-1)

    def full_sort_predict(self, interaction: Interaction) -> torch.Tensor:
        user_e, item_e = self.representations()
        return user_e[interaction[self.USER_ID]] @ item_e.T


class MultimodalRecommender(MMKDRecommender):
    """A recommender over every modality the dataset has, with a per-modality item mask.

    Each modality's features (normalised by ``feature_norm``: none/l2/standard) are a buffer
    that moves with the model. :meth:`set_item_mask` marks items whose feature of a modality
    is missing: :meth:`modal_feature` then returns zeros for them, and :meth:`on_mask_change`
    lets a model rebuild what it derived from features (kNN graphs). Missing-modality
    robustness is evaluated through this mask.
    """

    needs_features = True
    # The ModuleDict of per-modality feature projections, where the model has one (SGFD's
    # student can replace it, as SGFD's release does for BM3 and GRCN).
    feature_projections: ClassVar[str | None] = None

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        features = dataset.modal_features()
        if not features:
            raise ValueError(
                f"{type(self).__name__} needs item features, but dataset "
                f"'{config['dataset']}' has no <name>.<modality>.npy file"
            )
        self.modalities: list[str] = list(features)
        norm = config["feature_norm"] or "none"
        for modality, matrix in features.items():
            if not modality.isidentifier():
                raise ValueError(f"modality name {modality!r} must be a Python identifier")
            self.register_buffer(
                f"_feat_{modality}", normalize_features(matrix, norm), persistent=False
            )
            present = torch.ones(self.n_items, dtype=torch.bool)
            present[0] = False  # padding item
            self.register_buffer(f"_present_{modality}", present, persistent=False)

    def modal_feature(self, modality: str, items: torch.Tensor | None = None) -> torch.Tensor:
        """The features of ``modality`` the model consumes for ``items`` (default: all
        ``n_items`` rows), zero rows for items missing it: the raw features here; feature
        extractors such as SGFD's students override this."""
        return self.raw_feature(modality, items)

    def raw_feature(self, modality: str, items: torch.Tensor | None = None) -> torch.Tensor:
        """The dataset's (normalised) features of ``modality``, zero rows for items missing it.
        Fixed structures built from features (kNN graphs) read these."""
        features, present = getattr(self, f"_feat_{modality}"), self.item_present(modality)
        if items is not None:
            features, present = features[items], present[items]
        return features * present.unsqueeze(-1).to(features.dtype)

    def item_present(self, modality: str) -> torch.Tensor:
        """Boolean ``(n_items,)``: whether each item has ``modality`` (padding item: False)."""
        return getattr(self, f"_present_{modality}")

    def feature_dims(self) -> dict[str, int]:
        """Width of what :meth:`modal_feature` returns, per modality."""
        return self.raw_feature_dims()

    def raw_feature_dims(self) -> dict[str, int]:
        return {m: getattr(self, f"_feat_{m}").shape[1] for m in self.modalities}

    def set_item_mask(self, modality: str, present: torch.Tensor) -> None:
        """Mark which items have ``modality`` (True = present); drops cached representations."""
        if modality not in self.modalities:
            raise KeyError(f"unknown modality {modality!r}; the model has {self.modalities}")
        present = present.to(dtype=torch.bool, device=self.item_present(modality).device).clone()
        if present.shape != (self.n_items,):
            raise ValueError(f"mask needs shape ({self.n_items},), got {tuple(present.shape)}")
        present[0] = False
        getattr(self, f"_present_{modality}").copy_(present)
        self._tables = None
        self.on_mask_change()

    def on_mask_change(self) -> None:
        """Hook for models that derive structure from features; nothing to do by default."""
