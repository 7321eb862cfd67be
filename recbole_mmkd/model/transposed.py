"""Sparse products ``A @ x`` for a non-symmetric ``A`` whose transpose is stored beside it, so
that the backward pass multiplies by it instead of building it: torch's own backward of a CSR
product transposes (and sorts) ``A`` on every call. (A symmetric ``A`` needs no second copy:
:func:`~recbole_mmkd.model.graph.propagate`.)"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from recbole_mmkd.model.graph import csr_mm


def csr_transpose(matrix: torch.Tensor) -> torch.Tensor:
    """:math:`A^\\top` of a sparse COO or CSR ``matrix``, as CSR."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return matrix.to_sparse_coo().t().coalesce().to_sparse_csr()


class _StoredTransposeSpMM(torch.autograd.Function):
    """``A @ x`` whose backward is ``A^T @ grad`` with the stored ``A^T``."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, transpose: torch.Tensor, dense: torch.Tensor):
        ctx.transpose = transpose
        return csr_mm(matrix, dense)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, csr_mm(ctx.transpose, grad)


def register_with_transpose(module: nn.Module, name: str, matrix: torch.Tensor | None) -> None:
    """Register the sparse ``matrix`` as ``module``'s non-persistent buffer ``name`` and its
    :func:`csr_transpose` as ``name_t`` (None for None). The transpose is named in the
    module's ``backward_only_buffers``: only backward passes read it, so what serving holds
    leaves it out (:func:`~recbole_mmkd.pipeline.serving_sizes`)."""
    transpose = None if matrix is None else csr_transpose(matrix)
    module.register_buffer(name, matrix, persistent=False)
    module.register_buffer(f"{name}_t", transpose, persistent=False)
    module.backward_only_buffers = {*getattr(module, "backward_only_buffers", ()), f"{name}_t"}


def spmm(matrix: torch.Tensor, transpose: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` (sparse ``matrix``, ``transpose`` its :func:`csr_transpose`); the same
    values and gradients as ``torch.sparse.mm``; differentiable once."""
    return _StoredTransposeSpMM.apply(matrix, transpose, dense)
