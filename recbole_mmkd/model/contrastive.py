"""Contrastive terms of the self-supervised backbones (MGCN, LGMRec and those after them):
small pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    anchor: torch.Tensor,
    candidates: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    temperature: float,
    reduction: str = "mean",
    cosine: bool = True,
) -> torch.Tensor:
    r"""InfoNCE of each anchor row against its positive among ``candidates``:
    :math:`-\log \frac{\exp(\cos(a_i, c_{t_i})/\tau)}{\sum_j \exp(\cos(a_i, c_j)/\tau)}`,
    reduced by ``reduction`` (mean or sum). ``targets`` default: row i's positive is candidate i,
    the batch's other rows its negatives (MMRec's ``InfoNCE`` of MGCN and SMORE); LGMRec's
    ``ssl_triple_loss`` gives the full table as candidates, the batch's indices as targets, and
    sums. ``cosine=False`` takes plain dot products instead (SLMRec's fine-and-coarse task)."""
    if cosine:
        anchor, candidates = F.normalize(anchor, dim=-1), F.normalize(candidates, dim=-1)
    logits = anchor @ candidates.T / temperature
    if targets is None:
        targets = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, targets, reduction=reduction)
