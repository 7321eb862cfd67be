"""ItemKNNCBF: content-based item kNN, a training-free baseline over the items' features.

Dacrema et al., "Are We Really Making Much Progress? A Worrying Analysis of Recent Neural
Recommendation Approaches", RecSys 2019 (MMRec ``src/models/itemknncbf.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender


def shrunk_cosine_knn(
    features: torch.Tensor, k: int, *, shrink: float, chunk: int = 2048
) -> torch.Tensor:
    """Each item's ``k`` most similar items (itself included) by the shrunk cosine
    :math:`x_i^\\top x_j / (\\|x_i\\| \\|x_j\\| + h)`, the similarities as weights, sparse
    COO ``(n_items, n_items)``; computed ``chunk`` rows at a time."""
    n = features.shape[0]
    norms = features.norm(dim=1)
    rows, cols, values = [], [], []
    for start in range(0, n, chunk):
        block = features[start : start + chunk]
        sim = (block @ features.T) / (norms[start : start + chunk, None] * norms[None] + shrink)
        top = torch.topk(sim, min(k, n), dim=1)
        rows.append(torch.arange(start, start + len(block)).repeat_interleave(top.indices.shape[1]))
        cols.append(top.indices.reshape(-1))
        values.append(top.values.reshape(-1))
    index = torch.stack([torch.cat(rows), torch.cat(cols)])
    graph = torch.sparse_coo_tensor(index, torch.cat(values), (n, n), check_invariants=True)
    return graph.coalesce()


@register_model()
class ItemKNNCBF(MultimodalRecommender):
    r"""Scores :math:`s(u, i) = \sum_{j \in I_u} S_{ji}`, :math:`I_u` the user's training
    items and :math:`S` the top-``knn_k`` shrunk-cosine graph of the items' concatenated
    features (:func:`shrunk_cosine_knn`). Nothing is learnt: the loss is zero, and one epoch
    (MMRec's ``epochs: 1``) only runs the protocol's validation and test. As tables: users
    their rows of the interaction matrix, items their columns of :math:`S` (both ``n_items``
    wide, dense: fine on TikTok-sized data, large beyond).

    Config: ``knn_k``, ``shrink`` (:math:`h`), ``feature_norm`` (MMRec: the raw features).

    Deviations from the release (MMRec ``src/models/itemknncbf.py``, e775373): any number of
    modalities, concatenated in the dataset's order (the release: image then text); the
    release's placeholder parameter (``dummy_embeddings``, which the optimiser needs) is
    ``anchor`` here, listed in ``frozen_parameters``. The dataset's padding item 0 is no
    item's neighbour (its zero row would otherwise stand in for negative similarities).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.knn_k: int = config["knn_k"]
        self.shrink: float = config["shrink"]
        self.anchor = nn.Parameter(torch.zeros(1))
        self.frozen_parameters = ("anchor",)
        inter = dataset.inter_matrix(form="coo").astype(np.float32)
        index = torch.from_numpy(np.vstack([inter.row, inter.col]).astype(np.int64))
        values = torch.from_numpy(inter.data)
        history = torch.sparse_coo_tensor(index, values, inter.shape, check_invariants=True)
        self.register_buffer("history", history.coalesce(), persistent=False)
        self.on_mask_change()

    def on_mask_change(self) -> None:
        features = torch.cat([self.raw_feature(m) for m in self.modalities], dim=1)
        # over the items only: the padding item's zero row would be everyone's 0-similarity
        # neighbour, in place of a negative one the release keeps
        graph = shrunk_cosine_knn(features[1:], self.knn_k, shrink=self.shrink).coalesce()
        index = graph.indices() + 1
        size = (self.n_items, self.n_items)
        shifted = torch.sparse_coo_tensor(index, graph.values(), size, check_invariants=True)
        self.register_buffer("similarity", shifted.coalesce(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.history.to_dense(), self.similarity.to_dense().T

    def calculate_loss(self, interaction) -> torch.Tensor:
        return 0.0 * self.anchor.sum()
