"""Multimodal datasets: the project layout, its loader and importers of public layouts."""

from recbole_mmkd.data.dataset import MultimodalDataset
from recbole_mmkd.data.files import DataError

__all__ = ["DataError", "MultimodalDataset"]
