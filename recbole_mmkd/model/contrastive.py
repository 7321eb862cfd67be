"""Contrastive terms of the self-supervised backbones (MGCN, LGMRec and those after them):
small pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

DIRECT_MIN_TEMPERATURE = 0.025
"""From this temperature up, cosine scores over it lie in [-40, 40]: float32 ``exp`` of them
neither underflows to 0 nor overflows in a sum over any batch, so :func:`info_nce` sums them
directly (MMRec's form); below it, and for dot products, logsumexp (row maxima first)."""


def info_nce(
    anchor: torch.Tensor, candidates: torch.Tensor, *, temperature: float, cosine: bool = True
) -> torch.Tensor:
    r"""Mean InfoNCE of each anchor row against the candidate row of the same index, the
    batch's other rows its negatives: :math:`-\log \frac{\exp(\cos(a_i, c_i)/\tau)}{\sum_j
    \exp(\cos(a_i, c_j)/\tau)}` (MMRec's ``InfoNCE`` of MGCN and SMORE). ``cosine=False``
    takes plain dot products instead (SLMRec's fine-and-coarse task).

    Computed as :math:`\log \sum_j \exp(s_{ij}) - s_{ii}` with :math:`s = (a/\tau) c^\top`
    (:math:`1/\tau` on the anchors, the positives as row-wise dot products): no batch x batch
    division and no one-hot gradient through the batch x batch scores; cosine scores at
    :data:`DIRECT_MIN_TEMPERATURE` and above without logsumexp's row maxima. Forward +
    backward at batch 2048, d 64, one thread: 1.9x faster than a cross entropy over
    ``a @ c.T / tau`` (``bench/bench_contrastive.py``); the same value up to float rounding."""
    if cosine:
        anchor, candidates = F.normalize(anchor, dim=-1), F.normalize(candidates, dim=-1)
    anchor = anchor / temperature
    positives = (anchor * candidates).sum(-1)
    scores = anchor @ candidates.T
    if not cosine or temperature < DIRECT_MIN_TEMPERATURE:
        return (torch.logsumexp(scores, dim=-1) - positives).mean()
    return (torch.exp(scores).sum(-1).log() - positives).mean()
