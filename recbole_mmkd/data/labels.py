"""Item category labels for methods that need them (SGFD's semantic teacher).

Sources, chosen by the ``label_source`` config key:

- ``dataset``: ``NAME.labels.npy`` (ml-100k-mm: first genre);
- ``kmeans``: k-means clusters of the items' features, each modality L2-normalised per row and
  the modalities concatenated, ``label_clusters`` clusters, seeded by ``label_seed`` (a fixed
  seed by default, so every run seed sees the same labels: they are a property of the data);
- ``auto`` (default): ``dataset`` when the dataset has labels, else ``kmeans``.

Every RunResult records the source used in ``model_info["label_source"]``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from recbole_mmkd.errors import ConfigError

LABEL_SOURCES = ("auto", "dataset", "kmeans")


def kmeans_labels(features: dict[str, torch.Tensor], k: int, seed: int) -> np.ndarray:
    """Cluster id per item row (row 0, the padding item, is excluded and gets -1)."""
    blocks = [F.normalize(f[1:].float(), dim=1) for f in features.values()]
    data = torch.cat(blocks, dim=1).cpu().numpy()
    clusters = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(data)
    return np.concatenate([[-1], clusters]).astype(np.int64)


def item_labels(dataset, config) -> tuple[torch.Tensor, str]:
    """``(labels per RecBole item id, -1 for padding; description of the source)``."""
    source = config["label_source"] or "auto"
    if source not in LABEL_SOURCES:
        raise ConfigError(
            "config", "label_source", f"unknown {source!r}", f"use one of {LABEL_SOURCES}"
        )
    if source in ("auto", "dataset") and dataset.item_labels is not None:
        return dataset.item_labels, f"dataset ({dataset.dataset_name}.labels.npy)"
    if source == "dataset":
        raise ConfigError(
            "config",
            "label_source",
            f"'dataset' but {dataset.dataset_name} has no {dataset.dataset_name}.labels.npy",
            "use label_source: kmeans (or auto)",
        )
    k, seed = config["label_clusters"], config["label_seed"]
    labels = kmeans_labels(dataset.modal_features(), k, seed)
    return torch.from_numpy(labels), f"kmeans (k={k}, seed={seed}, l2-normalised modalities)"
