"""Cross-entropy over inner products against a whole table, fused: the contrastive term that
dominates LGMRec's epoch (a batch of rows against every user or item)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from recbole_mmkd.model.inplace import saved_once


class _ProductCrossEntropy(torch.autograd.Function):
    """Forward keeps one ``(rows, candidates)`` buffer, the logits; backward turns it into the
    softmax in place, so it runs once (a second backward through the same graph is refused)."""

    @staticmethod
    def forward(ctx, anchor, candidates, targets):
        logits = anchor @ candidates.T
        lse = torch.logsumexp(logits, dim=1)
        ctx.save_for_backward(anchor, candidates, targets, logits, lse)
        return lse - logits.gather(1, targets.unsqueeze(1)).squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        anchor, candidates, targets, logits, lse = saved_once(ctx, "product_cross_entropy")
        probs = logits.sub_(lse.unsqueeze(1)).exp_()  # softmax, in the logits' buffer
        probs.scatter_add_(1, targets.unsqueeze(1), -torch.ones_like(lse).unsqueeze(1))
        probs.mul_(grad.unsqueeze(1))
        return probs @ candidates, probs.T @ anchor, None


def product_cross_entropy(
    anchor: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    r"""Per-row :math:`-\log \mathrm{softmax}(a_i C^\top)_{t_i}` for ``anchor`` ``(B, d)``,
    ``candidates`` ``(N, d)`` and ``targets`` ``(B,)``: the value and gradients of
    ``F.cross_entropy(anchor @ candidates.T, targets, reduction="none")`` with a third of its
    ``(B, N)`` passes (measured on TikTok's users, B 2048, N 9308, d 64, one thread: 0.26 s
    against 0.39 s forward and backward). Temperature and normalisation are the caller's
    (scale ``anchor``). Runs outside autocast, in float32 at least, as autocast runs
    cross-entropy."""
    dtype = torch.promote_types(torch.promote_types(anchor.dtype, candidates.dtype), torch.float32)
    with torch.autocast(anchor.device.type, enabled=False):
        return _ProductCrossEntropy.apply(anchor.to(dtype), candidates.to(dtype), targets)
