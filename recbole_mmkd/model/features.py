"""Preparing dense item features for a model: small pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbole_mmkd.errors import ConfigError

FEATURE_NORMS = ("none", "l2", "standard")


def normalize_features(features: torch.Tensor, mode: str) -> torch.Tensor:
    """Rescale one modality's ``(items, dim)`` matrix; row 0 (padding) stays zero.

    - ``none``: as stored;
    - ``l2``: every row to unit length (raw CNN/audio features have norms of 5-35, which
      swamp freshly initialised ID embeddings);
    - ``standard``: every column to zero mean and unit variance over the real items.
    """
    if mode == "none":
        return features
    if mode == "l2":
        out = F.normalize(features, dim=1)
    elif mode == "standard":
        real = features[1:]
        out = (features - real.mean(0)) / real.std(0).clamp_min(1e-8)
    else:
        raise ConfigError(
            "config", "feature_norm", f"unknown {mode!r}", f"use one of {FEATURE_NORMS}"
        )
    out[0] = 0.0
    return out
