"""For autograd functions whose backward turns a forward buffer into the gradient in place
(the large ``(rows, items)`` ones of LGMRec's and DA-MRS's losses): such a backward runs once,
so ``gradcheck`` and double backward through them are refused."""

from __future__ import annotations

import torch


def saved_once(ctx, name: str) -> tuple[torch.Tensor, ...]:
    """``ctx.saved_tensors`` for a backward that overwrites them; a second backward through
    the same graph is refused (its buffers are spent)."""
    if getattr(ctx, "spent", False):
        raise RuntimeError(f"{name}'s backward runs once per forward (it reuses its buffers)")
    ctx.spent = True
    return ctx.saved_tensors
