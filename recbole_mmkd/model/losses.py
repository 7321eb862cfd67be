"""Loss terms shared by the models: small pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: mean of ``-log sigmoid(s(u, i+) - s(u, i-))``."""
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def l2_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """``sum ||e||^2 / (2 * batch)`` over the given batch embeddings (LightGCN's regulariser)."""
    batch = embeddings[0].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)


def emb_norm_reg(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's ``EmbLoss``: ``sum ||E||_F / n`` over the given embedding matrices, each norm
    unsquared, ``n`` the number of rows of the last one (MMRec's BM3: the full user and item
    tables, so ``n = n_items``)."""
    return sum(e.norm() for e in embeddings) / embeddings[-1].shape[0]
