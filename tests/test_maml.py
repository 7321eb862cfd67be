"""MAML: chunked full-sort scores equal predict, the released losses on known values, the
release's table clipping and frozen networks."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import fast
from recbole.data.interaction import Interaction

from recbole_mmkd.model.general.maml import clip_rows, off_diagonal_covariance, rank_weighted_hinge
from recbole_mmkd.prepare import prepare


def _build(root, **overrides):
    run = prepare("MAML", "toy", overrides=fast(**overrides), data_path=root)
    return run.model, run.train


def test_clip_rows_shrinks_only_long_rows():
    table = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    assert torch.allclose(clip_rows(table, 1.0), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


def test_off_diagonal_covariance_is_the_signed_sum():
    rows = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # cov [[1, -1], [-1, 1]]
    assert off_diagonal_covariance(rows) == -2.0


def test_rank_weighted_hinge_against_the_closest_negative():
    positive = torch.tensor([1.0, 0.1])
    negatives = torch.tensor([[0.5, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0]])
    # row 0: hinge 1 - 0.5 + 1 = 1.5; impostors: 1 - d + 1 > 0 for d in {0.5} -> 1
    # row 1: no violation, weight ln(1) = 0
    expected = math.log(1 * 10 / 4 + 1) * 1.5
    value = rank_weighted_hinge(positive, negatives, margin=1.0, n_items=10)
    assert torch.isclose(value, torch.tensor(expected))


def test_full_sort_in_chunks_equals_predict_on_every_pair(toy):
    model, _ = _build(toy)
    model.eval_pairs = 2 * model.n_items  # chunks of two users, the last one partial
    with torch.no_grad():  # biases away from their zero start, so a misplaced one shows
        for layer in (model.attention_in, model.attention_out):
            layer.bias.normal_()
    model.eval()
    users = torch.arange(1, model.n_users)
    with torch.no_grad():
        full = model.full_sort_predict(Interaction({model.USER_ID: users}))
        pairs = Interaction(
            {
                model.USER_ID: users.repeat_interleave(model.n_items),
                model.ITEM_ID: torch.arange(model.n_items).repeat(users.shape[0]),
            }
        )
        single = model.predict(pairs).view(users.shape[0], model.n_items)
    assert torch.allclose(full, single, atol=1e-5)


def test_tables_are_clipped_after_every_step_and_items_start_at_features(toy):
    model, train = _build(toy)
    model.train()
    model.on_epoch_start(0)
    with torch.no_grad():
        assert torch.allclose(model.item_embedding.weight, model.features())
        model.user_embedding.weight.mul_(10)  # long rows
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for batch in list(train)[:2]:
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
    model.eval()  # the forward after a step sees clipped tables
    for table in (model.user_embedding.weight, model.item_embedding.weight):
        assert table.norm(dim=1).max() <= 1.0 + 1e-5


@pytest.mark.parametrize("train_networks", [True, False])
def test_the_released_variant_trains_the_tables_alone(toy, train_networks):
    model, train = _build(toy, train_networks=train_networks)
    model.train()
    model.calculate_loss(next(iter(train))).backward()
    assert model.user_embedding.weight.grad.abs().sum() > 0
    network = [model.attention_in.weight, model.projector[0].weight]
    assert all((p.grad is not None) == train_networks for p in network)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"train_neg_sample_args": {"distribution": "none", "sample_num": "none"}},
         "train_neg_sample_args"),
        ({"clip_norm": 0.0}, "clip_norm"),
    ],
)  # fmt: skip
def test_maml_refuses_settings_it_cannot_run(toy, overrides, key):
    with pytest.raises(ValueError, match=key):
        _build(toy, **overrides)
