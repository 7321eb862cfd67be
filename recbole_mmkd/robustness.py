"""Missing-modality robustness: test metrics when a share of items lose a modality."""

from __future__ import annotations

import torch

from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.trainer import MMKDTrainer


def missing_items(n_items: int, share: float, seed: int) -> torch.Tensor:
    """Boolean ``(n_items,)``: True for the ``round(share * (n_items - 1))`` items (padding 0
    excluded) that lose a modality. One seeded permutation serves every share, so the sets
    are nested: the items missing at 25% also miss at 50%."""
    if not 0 <= share <= 1:
        raise ValueError(f"robustness share must be in [0, 1], got {share}")
    order = torch.randperm(n_items - 1, generator=torch.Generator().manual_seed(seed)) + 1
    missing = torch.zeros(n_items, dtype=torch.bool)
    missing[order[: round(share * (n_items - 1))]] = True
    return missing


def robustness_curve(
    trainer: MMKDTrainer, model: MultimodalRecommender, test_data, shares: list[float], seed: int
) -> list[dict]:
    """Test means for every (modality, share of items without it); one row each, the model's
    masks restored afterwards. Share 0 is the unmasked test."""
    rows = []
    for modality in model.modalities:
        original = model.item_present(modality).clone()
        for share in shares:
            missing = missing_items(model.n_items, share, seed).to(original.device)
            model.set_item_mask(modality, original & ~missing)
            means = trainer.evaluate_full(test_data, per_user=False).means
            rows.append({"modality": modality, "share": share, **means})
        model.set_item_mask(modality, original)
    return rows
