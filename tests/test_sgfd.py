"""SGFD over backbones: reduction to the backbone, its loss terms, temperature and labels."""

from __future__ import annotations

import pytest
import torch
from conftest import fast, write_dataset
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.model import get_model
from recbole_mmkd.prepare import config_for

BACKBONES = ["VBPR", "BM3", "GRCN", "LATTICE", "FREEDOM", "MMGCN", "MAML"]


def _setup(model: str, root, **overrides):
    config = config_for(model, "toy", overrides=fast(**overrides), data_path=root)
    init_seed(0, True)
    train, _, _ = data_preparation(config, MultimodalDataset(config))
    return config, train


@pytest.mark.parametrize("backbone", BACKBONES)
def test_sgfd_with_zero_weights_reduces_to_its_backbone(tmp_path, backbone):
    # identity students over L2-normalised features of width d: the backbone sees its raw input
    write_dataset(tmp_path, modalities={"image": 6, "text": 6})
    # the backbone at the settings SGFD-<backbone>.yaml gives it
    fixed = {"BM3": {"train_features": False}, "LATTICE": {"train_features": False},
             "GRCN": {"pruning": False}}.get(backbone, {})  # fmt: skip
    plain_config, train = _setup(backbone, tmp_path, feature_norm="l2", **fixed)
    plain = get_model(backbone)(plain_config, train.dataset)
    sizes = {k: plain_config[k] for k in ("embedding_size", "latent_embedding") if plain_config[k]}
    sgfd = dict(sgfd_dim=6, student_activation=False, ce_weight=0, kd_weight=0, **sizes)
    config, _ = _setup(
        f"SGFD-{backbone}", tmp_path, feature_norm="l2", student_role="input", **sgfd
    )
    wrapped = get_model(f"SGFD-{backbone}")(config, train.dataset)
    missing, unexpected = wrapped.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("students.", "teacher.")) for k in missing)
    with torch.no_grad():
        for student in wrapped.students.values():
            student.weight.copy_(torch.eye(6))
            student.bias.zero_()
    batch = next(iter(train))
    losses = []
    for model in (plain, wrapped):
        torch.manual_seed(1)  # same dropout masks and pruned edges
        model.on_epoch_start(0)
        losses.append(model.calculate_loss(batch))
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    losses[1].backward()
    assert all(p.grad is None for p in wrapped.teacher.parameters())  # teacher untouched
    plain.eval(), wrapped.eval()
    assert torch.allclose(
        plain.full_sort_predict(batch), wrapped.full_sort_predict(batch), atol=1e-5
    )


REPLACEABLE = ["BM3", "GRCN", "LATTICE", "FREEDOM"]


@pytest.mark.parametrize("backbone", REPLACEABLE)
def test_the_released_student_is_the_backbones_projection(toy, backbone):
    plain_config, train = _setup(backbone, toy)
    plain = get_model(backbone)(plain_config, train.dataset)
    sizes = {k: plain_config[k] for k in ("embedding_size", "latent_embedding") if plain_config[k]}
    config, _ = _setup(f"SGFD-{backbone}", toy, ce_weight=0, kd_weight=0, **sizes)
    assert config["student_role"] == "replace"
    model = get_model(f"SGFD-{backbone}")(config, train.dataset)
    projections = getattr(model, model.feature_projections)
    assert all(isinstance(p, torch.nn.Identity) for p in projections.values())
    theirs = getattr(plain, plain.feature_projections)
    for m, student in model.students.items():  # the backbone's own Linear, moved
        assert student.weight.shape == theirs[m].weight.shape
    # no projection parameters are left besides the students'
    names = [n for n, _ in model.named_parameters() if n.startswith(model.feature_projections)]
    assert names == []
    # both weights 0: the loss is the backbone's own, plus nothing
    batch = next(iter(train))
    torch.manual_seed(1)
    model.on_epoch_start(0)
    ours = model.calculate_loss(batch)
    torch.manual_seed(1)
    model.on_epoch_start(0)
    assert torch.equal(ours, get_model(backbone).calculate_loss(model, batch))


@pytest.mark.parametrize("backbone", ["VBPR", "MMGCN"])
def test_backbones_without_per_modality_projections_take_the_input_role(toy, backbone):
    from recbole_mmkd.errors import ConfigError

    config, train = _setup(f"SGFD-{backbone}", toy)
    assert config["student_role"] == "input"  # their SGFD-<backbone>.yaml
    get_model(f"SGFD-{backbone}")(config, train.dataset)
    config, _ = _setup(f"SGFD-{backbone}", toy, student_role="replace")
    with pytest.raises(ConfigError, match="set `student_role: input`"):
        get_model(f"SGFD-{backbone}")(config, train.dataset)


def test_sgfd_loss_adds_weighted_teacher_and_distillation_terms(toy):
    weights = dict(ce_weight=0.3, kd_weight=0.7)
    config, train = _setup("SGFD-VBPR", toy, **weights)
    model = get_model("SGFD-VBPR")(config, train.dataset)
    batch = next(iter(train))
    items = torch.cat([batch[model.ITEM_ID], batch[model.NEG_ITEM_ID]])
    parts = model.distillation_losses(items)
    assert set(parts) == {"class", "fusion", "response", "feature"}
    assert all(torch.isfinite(v) and v > 0 for v in parts.values())
    zero = get_model("SGFD-VBPR")(
        _setup("SGFD-VBPR", toy, ce_weight=0, kd_weight=0)[0], train.dataset
    )
    zero.load_state_dict(model.state_dict())
    expected = zero.calculate_loss(batch) + 0.3 * (parts["class"] + parts["fusion"])
    expected = expected + 0.7 * (parts["response"] + parts["feature"])
    assert torch.allclose(model.calculate_loss(batch), expected)
    model.calculate_loss(batch).backward()
    assert all(p.grad is not None for p in model.teacher.parameters())
    assert all(p.grad is not None for p in model.students.parameters())


def test_sgfd_temperature_schedule_and_label_source(toy, tmp_path):
    config, train = _setup("SGFD-BM3", toy, t_decay=8.0, t_schedule="exponential", t_decay_rate=0.5)
    model = get_model("SGFD-BM3")(config, train.dataset)
    assert model.temperature == 8.0
    model.on_epoch_start(2)
    assert model.temperature == 2.0
    assert model.run_info()["label_source"] == "dataset (toy.labels.npy)"
    write_dataset(tmp_path / "nolabels", labels=None)
    config, train = _setup("SGFD-BM3", tmp_path / "nolabels", label_clusters=3)
    model = get_model("SGFD-BM3")(config, train.dataset)
    assert model.run_info()["label_source"].startswith("kmeans (k=3, seed=0")
    assert model.run_info()["n_labels"] == 3


def test_sgfd_reads_backbone_then_sgfd_then_own_yaml(toy):
    config = config_for("SGFD-GRCN", "toy", data_path=toy)
    assert config["n_routing"] == 3  # GRCN.yaml
    assert config["ce_weight"] == 1.0 and config["t_decay"] == 100  # SGFD-GRCN.yaml over SGFD.yaml
    assert config["student_activation"] is False
    release = {"pruning": False, "has_act": False, "fusion_mode": "concat", "edge_dropout": 0.0,
               "train_batch_size": 1024, "learning_rate": 1e-3, "embedding_size": 128}  # fmt: skip
    assert {k: config[k] for k in release} == release  # SGFD's README command for Office
    assert config_for("SGFD-LATTICE", "toy", data_path=toy)["kd_weight"] == 0.2  # SGFD.yaml


def test_the_parameter_count_leaves_out_the_teacher_inference_does_not_hold(toy):
    from recbole_mmkd.pipeline import inference_params

    plain_config, train = _setup("BM3", toy, train_features=False)  # SGFD's BM3 baseline
    plain = get_model("BM3")(plain_config, train.dataset)
    config, _ = _setup("SGFD-BM3", toy, embedding_size=plain_config["embedding_size"])
    model = get_model("SGFD-BM3")(config, train.dataset)
    teacher = sum(p.numel() for p in model.teacher.parameters())
    assert teacher > 0
    assert inference_params(model) == sum(p.numel() for p in model.parameters()) - teacher
    # the released student is BM3's own projection: inference holds as many as BM3
    assert inference_params(model) == inference_params(plain)


def _sgfd_maml(root, **overrides):
    config, train = _setup("SGFD-MAML", root, **overrides)
    return get_model("SGFD-MAML")(config, train.dataset), train


def test_sgfd_maml_released_kd_terms_keep_the_last_modalitys_response_alone(toy):
    from recbole_mmkd.distill.losses import sgfd_response_kd

    model, _ = _sgfd_maml(toy, released_kd_terms=True)
    items = torch.arange(1, 9)
    parts = model.distillation_losses(items)
    last = model.modalities[-1]
    raw = model.raw_feature(last, items)
    classifier = model.teacher.classifiers[last]
    teacher = model.teacher.features({m: model.raw_feature(m, items) for m in model.modalities})
    expect = sgfd_response_kd(
        classifier(model._student(last, raw)), classifier(teacher[last]), model.temperature
    )
    assert torch.allclose(parts["response"], expect)
    both, _ = _sgfd_maml(toy)
    both.load_state_dict(model.state_dict())
    assert not torch.allclose(both.distillation_losses(items)["response"], expect)


def test_sgfd_maml_as_released_trains_nothing_but_the_tables(toy):
    model, train = _sgfd_maml(toy, train_networks=False)
    model.train()
    model.on_epoch_start(0)
    model.calculate_loss(next(iter(train))).backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained == {"user_embedding.weight", "item_embedding.weight"}


def test_sgfd_maml_distils_each_positive_once_and_every_negative(toy):
    model, train = _sgfd_maml(toy)
    batch = next(iter(train))
    w = model.n_negatives
    positives = batch[model.ITEM_ID].view(w, -1)  # RecBole tiles the pairs once per negative
    assert w > 1 and bool((positives == positives[0]).all())
    items = model.distillation_items(batch)
    assert items.tolist() == positives[0].tolist() + batch[model.NEG_ITEM_ID].tolist()
