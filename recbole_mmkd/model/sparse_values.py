"""``graph @ dense`` for a sparse ``graph`` whose values need a gradient (LATTICE's learned
item graph): torch's backward forms the dense ``grad @ dense^T`` (items x items: 2.1 GB on
Amazon Clothing's 23,000 items, 40 GB at 100,000) and keeps the graph's entries; here those
entries are computed a block of rows at a time (64 at the least), the same numbers bit for bit
(a block's rows are summed by the same matrix-product kernel as the whole's)."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

MIN_ROWS = 64  # the fewest rows a block of the value gradient takes


class _ValuesMM(torch.autograd.Function):
    """The product with the value gradient in row blocks of about ``block_bytes``."""

    @staticmethod
    def forward(ctx, graph: torch.Tensor, dense: torch.Tensor, block_bytes: int) -> torch.Tensor:
        ctx.save_for_backward(graph, dense)
        ctx.block_bytes = block_bytes
        return torch.sparse.mm(graph, dense)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        graph, dense = ctx.saved_tensors
        grad_dense = torch.sparse.mm(graph.t(), grad) if ctx.needs_input_grad[1] else None
        grad_graph = None
        if ctx.needs_input_grad[0]:
            rows, cols = graph.indices()  # coalesced: rows in order, so a block's are together
            n_rows, n_cols = graph.shape
            # at least MIN_ROWS rows: a single row is a matrix-vector product, whose sums BLAS
            # orders otherwise than a matrix product's
            step = max(MIN_ROWS, ctx.block_bytes // (n_cols * grad.element_size()))
            bounds = torch.arange(0, n_rows + step, step, device=rows.device)
            starts = torch.searchsorted(rows, bounds).tolist()
            values = grad.new_empty(rows.shape[0])
            for b, first in enumerate(range(0, n_rows, step)):
                lo, hi = starts[b], starts[b + 1]
                if lo < hi:
                    block = grad[first : first + step] @ dense.T
                    values[lo:hi] = block[rows[lo:hi] - first, cols[lo:hi]]
            grad_graph = torch.sparse_coo_tensor(
                graph.indices(), values, graph.shape, is_coalesced=True, check_invariants=False
            )
        return grad_graph, grad_dense, None


def values_mm(
    graph: torch.Tensor, dense: torch.Tensor, *, block_bytes: int = 2**27
) -> torch.Tensor:
    """``torch.sparse.mm(graph, dense)`` for a coalesced sparse COO ``graph``; where its values
    need a gradient, that gradient is computed in row blocks of about ``block_bytes`` instead of
    through a dense ``rows x columns`` matrix. Differentiable once."""
    if not graph.requires_grad:
        return torch.sparse.mm(graph, dense)
    return _ValuesMM.apply(graph, dense, block_bytes)
