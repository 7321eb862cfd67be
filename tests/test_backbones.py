"""Backbones against their releases: LATTICE's user-item graph, the learning-rate schedule,
MMGCN's depth, trainable feature tables and MMRec's embedding regulariser."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import fast

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.general.lattice import layer_mean, row_normalized_adjacency
from recbole_mmkd.model.losses import emb_norm_reg, l2_reg
from recbole_mmkd.prepare import prepare
from recbole_mmkd.trainer import MMKDTrainer, lr_schedule


def _bipartite(inter: sp.coo_matrix) -> np.ndarray:
    """Dense ``(n_users + n_items)^2`` adjacency of a user-item matrix, users first."""
    n_users, n_items = inter.shape
    dense = np.zeros((n_users + n_items,) * 2)
    dense[:n_users, n_users:] = inter.toarray()
    dense[n_users:, :n_users] = inter.toarray().T
    return dense


def _row_normalized(adjacency: np.ndarray) -> np.ndarray:
    """``D^-1 (A + I)`` by hand."""
    with_loops = adjacency + np.eye(len(adjacency))
    return with_loops / with_loops.sum(1, keepdims=True)


def _symmetric(adjacency: np.ndarray) -> np.ndarray:
    """``D^-1/2 A D^-1/2`` by hand, isolated nodes zero."""
    degree = adjacency.sum(1)
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


def test_row_normalized_adjacency_by_hand():
    # users 0, 1; items 0, 1, 2; u0-i0, u0-i1, u1-i1; item 2 isolated (keeps only its self-loop)
    inter = sp.coo_matrix((np.ones(3), ([0, 0, 1], [0, 1, 1])), shape=(2, 3))
    dense = row_normalized_adjacency(inter).to_dense().numpy()
    assert np.allclose(dense, _row_normalized(_bipartite(inter)))
    assert np.allclose(dense[0], [1 / 3, 0, 1 / 3, 1 / 3, 0])  # u0: itself, i0, i1
    assert np.allclose(dense.sum(1), 1) and not np.allclose(dense, dense.T)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_layer_mean_is_rows_times_embeddings_with_the_right_gradient():
    inter = sp.random(12, 9, density=0.3, random_state=0, format="coo")
    inter.data[:] = 1.0
    coo = row_normalized_adjacency(inter)
    dense = coo.to_dense()
    rng = np.random.default_rng(0)
    ego = torch.tensor(rng.normal(size=(21, 4)), dtype=torch.float32, requires_grad=True)
    weights = torch.tensor(rng.normal(size=(21, 4)), dtype=torch.float32)
    ours = layer_mean(coo.to_sparse_csr(), coo.t().coalesce().to_sparse_csr(), ego, 2)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), ego)
    reference = (ego + dense @ ego + dense @ (dense @ ego)) / 3
    (grad_ref,) = torch.autograd.grad((reference * weights).sum(), ego)
    assert torch.allclose(ours, reference, atol=1e-6)
    assert torch.allclose(grad_ours, grad_ref, atol=1e-6)


@pytest.mark.parametrize(
    ("form", "by_hand"), [("released", _row_normalized), ("symmetric", _symmetric)]
)
def test_lattice_user_item_graph(toy, form, by_hand):
    run = prepare("LATTICE", "toy", overrides=fast(ui_adjacency=form), data_path=toy)
    expected = by_hand(_bipartite(run.train.dataset.inter_matrix(form="coo")))
    assert np.allclose(run.model.adjacency.to_dense().numpy(), expected, atol=1e-6)


def test_lattice_defaults_are_the_released_graph_and_schedule(toy):
    config = prepare("LATTICE", "toy", overrides=fast(), data_path=toy).config
    assert config["ui_adjacency"] == "released"
    assert config["learning_rate_scheduler"] == [0.96, 50]
    assert config["train_features"] is False
    with pytest.raises(ConfigError, match="'ui_adjacency': unknown 'other'"):
        prepare("LATTICE", "toy", overrides=fast(ui_adjacency="other"), data_path=toy)


def _lr_after_fit(toy, **overrides) -> tuple[MMKDTrainer, float]:
    run = prepare("BPR", "toy", overrides=fast(epochs=3, **overrides), data_path=toy)
    trainer = MMKDTrainer(run.config, run.model)
    assert trainer.fit(run.train, run.valid).epochs_run == 3
    return trainer, run.config["learning_rate"]


def test_lr_scheduler_decays_after_every_epoch(toy):
    trainer, lr = _lr_after_fit(toy, learning_rate_scheduler=[0.5, 2])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr * 0.5 ** (3 / 2))


@pytest.mark.parametrize("value", [None, [1, 1]])
def test_no_lr_decay_keeps_the_learning_rate(toy, value):
    trainer, lr = _lr_after_fit(toy, learning_rate_scheduler=value)
    assert (trainer.lr_scheduler is None) == (value is None)
    assert trainer.optimizer.param_groups[0]["lr"] == lr


@pytest.mark.parametrize("value", [[0.96], [-1, 50], [0.96, 0], "0.96", [True, 50]])
def test_bad_lr_scheduler_is_refused_naming_the_key(toy, value):
    with pytest.raises(ConfigError, match="'learning_rate_scheduler'"):
        lr_schedule(value)
    run = prepare("BPR", "toy", overrides=fast(learning_rate_scheduler=value), data_path=toy)
    with pytest.raises(ConfigError, match="'learning_rate_scheduler'"):
        MMKDTrainer(run.config, run.model)


def test_mmgcn_yaml_has_three_layers_per_modality(toy):
    model = prepare("MMGCN", "toy", overrides=fast(), data_path=toy).model
    assert model.n_layers == 3
    assert [len(branch.layers) for branch in model.branches] == [3] * len(model.modalities)


@pytest.mark.parametrize("train", [True, False])
def test_mmgcn_id_tables_train_or_stay_as_mmrec_leaves_them(toy, train):
    run = prepare("MMGCN", "toy", overrides=fast(train_id_tables=train, reg_weight=1.0),
                  data_path=toy)  # fmt: skip
    model = run.model
    tables = ["user_embedding.weight", "item_embedding.weight",
              *(f"branches.{k}.preference" for k in range(len(model.modalities)))]  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.calculate_loss(next(iter(run.train))).backward()
    optimizer.step()
    after = dict(model.named_parameters())
    for name in tables:
        assert torch.equal(after[name], before[name]) != train, name
    assert not torch.equal(
        after["branches.0.layers.0.own.weight"], before["branches.0.layers.0.own.weight"]
    )
    assert sorted(getattr(model, "frozen_parameters", [])) == ([] if train else sorted(tables))


@pytest.mark.parametrize("name", ["BM3", "LATTICE"])
def test_train_features_makes_a_trained_masked_feature_table(toy, name):
    run = prepare(name, "toy", overrides=fast(train_features=True), data_path=toy)
    model = run.model
    tables = dict(model.feature_tables.items())
    assert set(tables) == set(model.modalities)
    assert {id(p) for p in tables.values()} <= {id(p) for p in model.parameters()}
    raw = {m: model.raw_feature(m).clone() for m in model.modalities}
    assert all(torch.equal(tables[m].detach(), raw[m]) for m in model.modalities)
    model.train()
    model.calculate_loss(next(iter(run.train))).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tables.values())
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    for m in model.modalities:
        assert not torch.equal(tables[m].detach(), raw[m])  # the copy moved ...
        assert torch.equal(model.raw_feature(m), raw[m])  # ... the kNN graphs' input did not
    present = torch.ones(model.n_items, dtype=torch.bool)
    present[[3, 7]] = False
    model.set_item_mask(model.modalities[0], present)
    assert not model.modal_feature(model.modalities[0])[[0, 3, 7]].any()


@pytest.mark.parametrize(("name", "trained"), [("BM3", True), ("LATTICE", False)])
def test_feature_tables_by_default_as_validation_chose(toy, name, trained):
    """BM3 trains its copy (MMRec's release, TikTok validation's choice); LATTICE keeps the
    dataset's features (validation preferred them to the release's copy)."""
    model = prepare(name, "toy", overrides=fast(), data_path=toy).model
    assert model.train_features is trained and len(model.feature_tables) == 2 * trained
    tables = [p for p, _ in model.named_parameters() if "feature_tables" in p]
    assert len(tables) == 2 * trained


def test_train_features_refused_where_a_wrapper_replaces_the_features(toy):
    with pytest.raises(ConfigError, match="'train_features'"):
        prepare("SGFD-LATTICE", "toy", overrides=fast(train_features=True), data_path=toy)


def test_mmrec_emb_loss_by_hand():
    first = torch.tensor([[3.0, 4.0], [0.0, 0.0]])  # ||.||_F = 5
    second = torch.tensor([[0.0, 0.0], [6.0, 8.0]])  # ||.||_F = 10
    assert emb_norm_reg(first, second).item() == pytest.approx((5 + 10) / 2)
    assert l2_reg(first, second).item() == pytest.approx((25 + 100) / (2 * 2))
    users, items = torch.randn(7, 4), torch.randn(5, 4)  # BM3's form: over the item count
    assert torch.equal(emb_norm_reg(users, items), (users.norm() + items.norm()) / 5)


def test_bm3_regularises_its_tables_over_the_items_without_the_padding_rows(toy):
    model = prepare("BM3", "toy", overrides=fast(reg_weight=1.0), data_path=toy).model
    batch = {model.USER_ID: torch.tensor([1, 2]), model.ITEM_ID: torch.tensor([1, 3])}
    torch.manual_seed(0)
    regularised = model.calculate_loss(batch)
    model.reg_weight = 0.0
    torch.manual_seed(0)
    plain = model.calculate_loss(batch)
    users, items = model._encode()
    expected = (users[1:].norm() + items[1:].norm()) / (model.n_items - 1)  # MMRec's item count
    torch.testing.assert_close(regularised - plain, expected)


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("squared", lambda rows: sum(r.pow(2).sum() for r in rows) / (2 * len(rows[0]))),
        ("emb_loss", lambda rows: sum(r.norm() for r in rows) / len(rows[0])),  # MMRec's
    ],
)
def test_vbpr_regularises_the_batch_rows_in_either_form(toy, form, expected):
    model = prepare("VBPR", "toy", overrides=fast(regularizer=form, reg_weight=1.0),
                    data_path=toy).model  # fmt: skip
    batch = {model.USER_ID: torch.tensor([1, 2]), model.ITEM_ID: torch.tensor([3, 4]),
             model.NEG_ITEM_ID: torch.tensor([5, 6])}  # fmt: skip
    regularised = model.calculate_loss(batch)
    model.reg_weight = 0.0
    rows = (model._users(batch[model.USER_ID]), model._items(batch[model.ITEM_ID]),
            model._items(batch[model.NEG_ITEM_ID]))  # fmt: skip
    torch.testing.assert_close(regularised - model.calculate_loss(batch), expected(rows))


def test_an_unknown_vbpr_regularizer_is_refused_naming_the_key(toy):
    with pytest.raises(ConfigError, match="'regularizer'"):
        prepare("VBPR", "toy", overrides=fast(regularizer="l1"), data_path=toy)
