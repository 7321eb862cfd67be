"""MultimodalDataset: RecBole ``Dataset`` over the project layout (see :mod:`.files`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from recbole_mmkd.data import files


class MultimodalDataset(Dataset):
    """Interactions with a given train/valid/test split plus dense per-item features.

    - The split comes from ``x_label``; RecBole's filtering and re-splitting are skipped.
    - Ids are remapped as identity: RecBole id = raw id + 1 (0 is RecBole's padding), so every
      item that has features is a ranking candidate, interactions or not.
    - Features are loaded from ``.npy`` once (never through RecBole's ``float_seq`` item
      features, which would be joined into every batch), stored as float32 tensors with a zero
      padding row 0, and shared by the train/valid/test copies that :meth:`build` makes.

    Config keys: ``modalities`` (list of names, or null for all found on disk).
    """

    def _get_preset(self) -> None:
        super()._get_preset()
        # Pre-split data: Dataset.build() then cuts inter_feat by self.file_size_list.
        self.benchmark_filename_list = list(files.SPLIT_NAMES)

    def _load_data(self, token: str, dataset_path: str) -> None:
        data_dir = Path(dataset_path)
        inter = files.inter_path(data_dir, token)
        interactions = files.read_interactions(inter)

        wanted = self.config["modalities"]
        modalities = files.find_modalities(data_dir, token) if wanted is None else list(wanted)
        paths = {m: files.feature_path(data_dir, token, m) for m in modalities}
        arrays = {m: files.read_features(paths[m], m) for m in modalities}
        n_items = files.check_item_count(arrays, paths, interactions.max_item, inter)
        labels_file = files.labels_path(data_dir, token)
        labels = files.read_labels(labels_file, n_items) if labels_file.is_file() else None

        self._raw_user_num = interactions.n_users
        self._raw_item_num = n_items
        self.file_size_list = list(interactions.split_sizes)
        self.data_summary = {
            "users": interactions.n_users,
            "items": n_items,
            **dict(zip(("train", "valid", "test"), interactions.split_sizes, strict=True)),
            "dropped_duplicates": interactions.dropped_duplicates,
            "dropped_cold_rows": interactions.dropped_cold_rows,
            "modalities": {m: int(a.shape[1]) for m, a in arrays.items()},
            "labels": None if labels is None else int(labels.max()) + 1,
        }
        # Row 0 is RecBole's padding item.
        self._features = {
            m: torch.from_numpy(np.concatenate([np.zeros((1, a.shape[1]), np.float32), a]))
            for m, a in arrays.items()
        }
        self._labels = None if labels is None else torch.from_numpy(np.concatenate([[-1], labels]))

        frame = interactions.frame.rename(
            columns={files.USER: self.uid_field, files.ITEM: self.iid_field}
        )
        for field in (self.uid_field, self.iid_field):
            self.set_field_property(field, FeatureType.TOKEN, FeatureSource.INTERACTION, 1)
        self.inter_feat = frame
        self.user_feat = None
        self.item_feat = None

    def _remap_ID_all(self) -> None:
        for field, count in (
            (self.uid_field, self._raw_user_num),
            (self.iid_field, self._raw_item_num),
        ):
            id_token = np.array(["[PAD]", *map(str, range(count))])
            self.field2id_token[field] = id_token
            self.field2token_id[field] = {token: i for i, token in enumerate(id_token)}
            self.inter_feat[field] = self.inter_feat[field].to_numpy() + 1

    @property
    def modalities(self) -> list[str]:
        return list(self._features)

    def modal_features(self, names: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Float32 feature matrices ``(item_num, dim)`` by modality, row 0 the zero padding."""
        names = self.modalities if names is None else names
        missing = [n for n in names if n not in self._features]
        if missing:
            raise KeyError(
                f"dataset '{self.dataset_name}' has no modality {missing}; it has {self.modalities}"
            )
        return {n: self._features[n] for n in names}

    @property
    def item_labels(self) -> torch.Tensor | None:
        """Integer category per item (``-1`` for the padding item), or None without labels."""
        return self._labels
