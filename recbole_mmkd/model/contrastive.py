"""Contrastive terms of the self-supervised backbones (MGCN and those after it): small pure
functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, positive: torch.Tensor, temperature: float) -> torch.Tensor:
    r"""InfoNCE of each row of ``anchor`` against the same row of ``positive``, the batch's
    other rows of ``positive`` its negatives: :math:`\mathrm{mean}_i -\log
    \frac{\exp(\cos(a_i, p_i)/\tau)}{\sum_j \exp(\cos(a_i, p_j)/\tau)}` (one direction; MMRec's
    ``InfoNCE`` in MGCN and SMORE)."""
    logits = F.normalize(anchor, dim=-1) @ F.normalize(positive, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))
