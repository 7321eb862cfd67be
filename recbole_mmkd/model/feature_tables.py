"""Trainable feature tables (MMRec's ``nn.Embedding.from_pretrained(feat, freeze=False)``),
shared by the backbones that offer them (BM3, LATTICE: ``train_features``)."""

from __future__ import annotations

import torch


def masked_rows(
    table: torch.Tensor, present: torch.Tensor, items: torch.Tensor | None = None
) -> torch.Tensor:
    """Rows ``items`` (default: all) of ``table``, zero where ``present`` is False."""
    if items is not None:
        table, present = table[items], present[items]
    return table * present.unsqueeze(-1).to(table.dtype)
