"""Parameters a released model never trains (its optimiser never sees them)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def freeze(module: nn.Module, chosen: Callable[[str], bool]) -> list[str]:
    """Stop the gradient of every parameter of ``module`` whose name is ``chosen``; their names
    (a model lists them as ``frozen_parameters``, which the model contract test leaves out)."""
    names = [name for name, _ in module.named_parameters() if chosen(name)]
    for name, param in module.named_parameters():
        param.requires_grad_(name not in names)
    return names
