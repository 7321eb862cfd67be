"""Teachers: SGFD's semantic teacher pieces and the label sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fast, write_dataset

from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.data.labels import item_labels, kmeans_labels
from recbole_mmkd.model.teacher.cross_modal_attention import masked_mean
from recbole_mmkd.model.teacher.sgfd_teacher import SemanticTeacher, class_loss, tower_widths
from recbole_mmkd.pipeline import run_one
from recbole_mmkd.prepare import config_for


def test_tower_widths():
    assert tower_widths(4096, 64) == [4096, 1024, 256, 64]
    assert tower_widths(128, 64) == [128, 64]
    assert tower_widths(384, 64) == [384, 96, 64]


def test_class_loss_softmax_quirk():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    label = torch.tensor([0])
    assert class_loss(logits, label, False) == pytest.approx(F.cross_entropy(logits, label).item())
    probs = logits.softmax(-1)
    expected = -torch.log_softmax(probs, -1)[0, 0]  # CE applied to probabilities
    assert class_loss(logits, label, True) == pytest.approx(expected.item())


def test_semantic_teacher_shapes_and_unit_features():
    teacher = SemanticTeacher({"image": 40, "text": 12}, d=8, n_labels=5)
    feats = teacher.features({"image": torch.randn(6, 40), "text": torch.randn(6, 12)})
    assert {m: f.shape for m, f in feats.items()} == {"image": (6, 8), "text": (6, 8)}
    assert torch.allclose(feats["image"].norm(dim=1), torch.ones(6))
    cls, fusion = teacher.losses(feats, torch.tensor([0, 1, 2, 3, 4, 0]), False)
    assert cls > 0 and fusion > 0


def test_kmeans_labels_recover_planted_clusters():
    rng = np.random.default_rng(0)
    centers = np.eye(3) * 10
    rows = np.vstack([np.zeros((1, 3))] + [c + rng.normal(size=(20, 3)) for c in centers])
    labels = kmeans_labels({"x": torch.tensor(rows, dtype=torch.float32)}, k=3, seed=0)
    assert labels[0] == -1
    groups = [set(labels[1 + 20 * g : 21 + 20 * g]) for g in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3


def test_label_sources(toy, tmp_path):
    config = config_for("SGFDTeacher", "toy", overrides=fast(), data_path=toy)
    data = MultimodalDataset(config)
    labels, source = item_labels(data, config)
    assert source.startswith("dataset") and torch.equal(labels, data.item_labels)

    write_dataset(tmp_path, name="nolabels", labels=None)
    config = config_for(
        "SGFDTeacher", "nolabels", overrides=fast(label_clusters=3), data_path=tmp_path
    )
    data = MultimodalDataset(config)
    labels, source = item_labels(data, config)
    assert (
        source.startswith("kmeans (k=3")
        and labels[0] == -1
        and set(labels[1:].tolist()) == {0, 1, 2}
    )
    config["label_source"] = "dataset"
    with pytest.raises(ValueError, match=r"no nolabels\.labels\.npy"):
        item_labels(data, config)


def test_run_result_records_label_source(tmp_path):
    write_dataset(tmp_path, name="nolabels", labels=None)
    result = run_one(
        "SGFDTeacher",
        "nolabels",
        1,
        tmp_path / "r",
        overrides=fast(label_clusters=4),
        data_path=tmp_path,
    )
    assert result.model_info == {
        "label_source": "kmeans (k=4, seed=0, l2-normalised modalities)",
        "n_labels": 4,
    }


def test_masked_mean():
    tokens = torch.tensor([[[1.0], [3.0]], [[5.0], [7.0]], [[2.0], [2.0]]])
    present = torch.tensor([[True, True], [False, True], [False, False]])
    assert masked_mean(tokens, present).squeeze(1).tolist() == [2.0, 7.0, 0.0]


def test_the_released_tower_is_a_linear_chain_then_one_leaky_relu():
    from torch import nn

    from recbole_mmkd.model.teacher.sgfd_teacher import mlp_tower

    released = [type(m) for m in mlp_tower([256, 64, 16], True)]
    assert released == [nn.Linear, nn.Linear, nn.LeakyReLU]
    assert [type(m) for m in mlp_tower([256, 64, 16], False)] == [nn.Linear, nn.Linear]
    interleaved = [type(m) for m in mlp_tower([256, 64, 16], True, layout="interleaved")]
    assert interleaved == [nn.Linear, nn.LeakyReLU, nn.Linear]


def test_the_softmax_quirk_touches_the_class_loss_only():
    torch.manual_seed(0)
    teacher = SemanticTeacher({"a": 8, "b": 8}, 4, 3)
    features = teacher.features({"a": torch.randn(5, 8), "b": torch.randn(5, 8)})
    labels = torch.tensor([0, 1, 2, 0, 1])
    quirk_cls, quirk_fusion = teacher.losses(features, labels, True)
    plain_cls, plain_fusion = teacher.losses(features, labels, False)
    assert torch.equal(quirk_fusion, plain_fusion)  # the release's fusion loss takes logits
    assert not torch.equal(quirk_cls, plain_cls)
    logits = teacher.fusion_classifier(teacher.fuse(features))
    assert torch.allclose(plain_fusion, F.cross_entropy(logits, labels))
