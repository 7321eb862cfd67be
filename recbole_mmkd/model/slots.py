"""MMRec's modality slots: its models take image features first and text second, and the
TikTok set in MMRec's layout puts its audio features in the text slot, so a model whose
modalities play different parts (one accumulates the others, one comes first in a chain)
follows MMRec by putting image first and every other modality after it, by name."""

from __future__ import annotations

from collections.abc import Iterable


def mmrec_order(modalities: Iterable[str]) -> list[str]:
    """``modalities`` in MMRec's slot order: image first where present, the rest by name."""
    return sorted(modalities, key=lambda m: (m != "image", m))
