"""MultimodalDataset: split from x_label, identity id remapping, features shared by splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fast, write_dataset
from recbole.data import data_preparation

from recbole_mmkd.data import DataError, MultimodalDataset
from recbole_mmkd.prepare import config_for


def _load(root, name="toy", **overrides):
    config = config_for("BPR", name, overrides=fast(**overrides), data_path=root)
    return config, MultimodalDataset(config)


def test_split_and_features(toy):
    _config, data = _load(toy)
    train, valid, test = data.build()
    assert (len(train), len(valid), len(test)) == (240, 40, 40)
    assert data.item_num == 31 and data.user_num == 41  # + padding id 0
    raw = np.load(toy / "toy" / "toy.image.npy")
    image = data.modal_features()["image"]
    assert image.dtype == torch.float32 and image.shape == (31, 8)
    assert torch.equal(image[0], torch.zeros(8))
    # identity remapping: RecBole id = raw id + 1, so feature row r + 1 is raw item r
    for raw_id in (0, 7, 29):
        internal = data.token2id(data.iid_field, str(raw_id))
        assert internal == raw_id + 1
        assert np.allclose(image[internal].numpy(), raw[raw_id])
    # the split copies share the same tensors
    assert train.modal_features()["image"] is image
    assert data.modalities == ["image", "text"]
    labels = data.item_labels
    assert labels[0] == -1 and torch.equal(
        labels[1:], torch.from_numpy(np.load(toy / "toy" / "toy.labels.npy"))
    )


def test_modalities_selected_by_config(toy):
    _, data = _load(toy, modalities=["text"])
    assert data.modalities == ["text"]
    with pytest.raises(KeyError, match="no modality"):
        data.modal_features(["image"])


def test_missing_modality_in_config(toy):
    with pytest.raises(DataError, match=r"toy\.video\.npy"):
        _load(toy, modalities=["video"])


def test_items_without_interactions_are_candidates(tmp_path):
    write_dataset(tmp_path, n_items=50, per_user=4)  # a few of 50 items never occur
    _, data = _load(tmp_path)
    assert data.item_num == 51


def test_dataloaders_mask_history(toy):
    config, data = _load(toy)
    _train, valid, test = data_preparation(config, data)
    assert len(valid.uid_list) == 40 and len(test.uid_list) == 40


def test_tiktok_shipped():
    from conftest import ROOT

    config = config_for("BPR", "tiktok", overrides=fast(), data_path=ROOT / "dataset")
    data = MultimodalDataset(config)
    summary = data.data_summary
    assert summary["items"] == 6710 and summary["users"] == 9308
    assert summary["modalities"] == {"audio": 128, "image": 128}
    assert (summary["train"], summary["dropped_cold_rows"]) == (59541, 10)
    assert summary["valid"] + summary["test"] == 3051 + 6130 - 10
