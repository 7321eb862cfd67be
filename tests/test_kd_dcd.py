"""DCD, Dual Correction Distillation: the hand-computed values of docs/releases/kd_methods.md
section 4.5, the refresh period, the draws, the settings it refuses, and a student using it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recbole_mmkd.distill.dcd import (
    WEIGHT_FLOOR,
    DualCorrectionDistillation,
    discrepancy_weights,
    draw_positions,
    student_ranks,
)
from recbole_mmkd.distill.losses import relaxed_ranking_distillation, relaxed_ranking_rows
from recbole_mmkd.distill.methods import RelaxedRankingDistillation
from recbole_mmkd.errors import ConfigError

RRD = dict(rrd_top_n=2, rrd_k=1, rrd_l=1, rrd_temperature=1.0, kd_shared_items=False)
SETTINGS = dict(
    dcd_top_m=4,
    dcd_k=1,
    dcd_eps=2.0,
    dcd_update_every=3,
    dcd_icd_weight=0.0,
    dcd_rkd_weight=0.0,
    **RRD,
)
LIST_SCORES = [0.1, 0.9, 0.3, 0.5]  # section 4.5: the student's scores of the list a, b, c, d


def _example(**overrides) -> DualCorrectionDistillation:
    """Section 4.5: user 1's teacher list is items 1..4 (a, b, c, d); 5 users, 5 items, 0 is
    padding, no training interactions."""
    teacher_users = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]])
    teacher_items = torch.tensor([[0.0, 0.0], [4.0, 0.0], [3.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    return DualCorrectionDistillation(
        teacher_users=teacher_users,
        teacher_items=teacher_items,
        seen=sp.csr_matrix((5, 5)),
        n_items=5,
        **{**SETTINGS, **overrides},
    )


def _example_student() -> tuple[torch.Tensor, torch.Tensor]:
    """Student tables giving user 1 the scores ``LIST_SCORES`` on items 1..4."""
    user_e = torch.zeros(5, 2)
    user_e[1, 0] = 1.0
    item_e = torch.zeros(5, 2)
    item_e[1:, 0] = torch.tensor(LIST_SCORES)
    return user_e, item_e


def test_discrepancy_weights_match_the_hand_computed_example():
    w_plus, w_minus = discrepancy_weights(torch.tensor([LIST_SCORES]), eps=2.0)
    assert student_ranks(torch.tensor([LIST_SCORES])).tolist() == [[3, 0, 2, 1]]
    assert w_plus[0].tolist() == pytest.approx([0.905148, 0, 0, 0], abs=1e-6)
    assert w_minus[0].tolist() == pytest.approx([0, 0.462117, 0, 0.761594], abs=1e-6)
    floored, _ = discrepancy_weights(torch.tensor([LIST_SCORES]), eps=2.0, floor=WEIGHT_FLOOR)
    assert floored[0].tolist() == pytest.approx([0.905148, 1e-5, 1e-5, 1e-5], abs=1e-6)
    with pytest.raises(ValueError, match="positive"):
        discrepancy_weights(torch.tensor([LIST_SCORES]), eps=0.0)


def test_relaxed_ranking_rows_are_the_release_formula_per_row():
    value = relaxed_ranking_rows(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, -1.0]]))
    assert value.shape == (1,) and math.isclose(value.item(), 3.034129, rel_tol=1e-5)
    interesting, uninteresting = torch.randn(7, 3), torch.randn(7, 5)
    assert torch.allclose(
        relaxed_ranking_rows(interesting, uninteresting).sum(),
        7 * relaxed_ranking_distillation(interesting, uninteresting),
    )


def test_over_estimation_draws_follow_the_weights_and_under_estimations_keep_teacher_order():
    torch.manual_seed(0)
    w_plus, w_minus = discrepancy_weights(torch.tensor([LIST_SCORES]), 2.0, floor=WEIGHT_FLOOR)
    rows = 40_000
    under, over = draw_positions(w_plus.expand(rows, -1), w_minus.expand(rows, -1), 1)
    assert (under == 0).float().mean() > 0.999  # a: the only under-estimated entry
    share = torch.bincount(over[:, 0], minlength=4).float() / rows
    assert share[1].item() == pytest.approx(0.377636, abs=0.01)  # b
    assert share[3].item() == pytest.approx(0.622364, abs=0.01)  # d
    under, over = draw_positions(torch.rand(500, 9) + 0.1, torch.rand(500, 9) + 0.1, 4)
    assert (under.diff(dim=1) > 0).all()  # sorted, hence also distinct
    assert all(len(set(row)) == 4 for row in over.tolist())  # without replacement


def test_loss_with_one_draw_is_one_of_the_two_hand_computed_values_divided_by_the_rows():
    torch.manual_seed(0)
    kd = _example()
    user_e, item_e = _example_student()
    values = {
        round(kd.loss(user_e, item_e, torch.tensor([1]), torch.tensor([[1, 2]])).item(), 5)
        for _ in range(200)
    }
    assert values == {0.91302, 1.1711}  # over = d: log(1 + e^0.4); over = b: log(1 + e^0.8)
    assert kd.user_w_plus[1].tolist() == pytest.approx([0.905148, 1e-5, 1e-5, 1e-5], abs=1e-6)
    assert kd.user_w_minus[1].tolist() == pytest.approx([1e-5, 0.462117, 1e-5, 0.761594], abs=1e-6)
    # two batch rows of the same user: the user counts once, the sum is divided by B = 2
    halves = {
        round(kd.loss(user_e, item_e, torch.tensor([1, 1]), torch.tensor([[1, 2]] * 2)).item(), 5)
        for _ in range(200)
    }
    assert halves == {round(0.913015 / 2, 5), round(1.171101 / 2, 5)}


def test_item_side_and_rrd_terms_add_with_their_weights():
    user_e, item_e = _example_student()
    users, items = torch.tensor([1, 3]), torch.tensor([[1, 2], [4, 2]])
    plain, both = _example(), _example(dcd_icd_weight=0.5, dcd_rkd_weight=0.25)
    assert plain.rrd is None and isinstance(both.rrd, RelaxedRankingDistillation)
    torch.manual_seed(1)
    total = both.loss(user_e, item_e, users, items)
    torch.manual_seed(1)  # the same draws, in the same order
    ucd = plain.loss(user_e, item_e, users, items) * 2
    picked_under, picked_over = both.sample(torch.tensor([1, 4]), side="item")
    item_rows = item_e[torch.tensor([1, 4])]
    icd = relaxed_ranking_rows(
        (item_rows.unsqueeze(1) * user_e[picked_under]).sum(-1),
        (item_rows.unsqueeze(1) * user_e[picked_over]).sum(-1),
    ).sum()
    rrd = both.rrd.loss(user_e, item_e, users, items)
    assert torch.allclose(total, (ucd + 0.5 * icd) / 2 + 0.25 * rrd)


def test_student_ranks_are_refreshed_only_every_update_every_epochs():
    torch.manual_seed(0)
    kd = _example(dcd_icd_weight=1.0)
    batch = torch.tensor([1, 2]), torch.tensor([[1, 2], [3, 4]])
    fresh = _example()
    user_e, item_e = torch.randn(5, 2), torch.randn(5, 2)
    fresh.loss(user_e, item_e, *batch)  # before any on_epoch_start: refreshed by the first loss
    assert fresh.user_w_plus.shape == (5, 4) and fresh.item_w_minus.shape == (5, 4)
    held, refreshed_at = None, []
    for epoch in range(8):
        kd.on_epoch_start(epoch)
        user_e, item_e = torch.randn(5, 2), torch.randn(5, 2)
        for _ in range(2):  # two batches per epoch
            kd.loss(user_e, item_e, *batch)
        if kd.user_w_plus is not held:
            refreshed_at.append(epoch)
            held, tables = kd.user_w_plus, (user_e, item_e)
        expected = discrepancy_weights(
            (tables[0][:, None] * tables[1][kd.user_top]).sum(-1), 2.0, floor=WEIGHT_FLOOR
        )
        assert torch.equal(kd.user_w_plus, expected[0]) and torch.equal(
            kd.user_w_minus, expected[1]
        )
        items_expected = discrepancy_weights(
            (tables[1][:, None] * tables[0][kd.item_top]).sum(-1), 2.0, floor=WEIGHT_FLOOR
        )
        assert torch.equal(kd.item_w_plus, items_expected[0])
    assert refreshed_at == [0, 3, 6]


def test_draws_skip_training_interactions_and_padding_and_keep_teacher_order():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 20
    seen = np.zeros((n_users, n_items))
    for user in range(1, n_users):
        seen[user, rng.choice(np.arange(1, n_items), size=5, replace=False)] = 1
    kd = DualCorrectionDistillation(
        teacher_users=torch.randn(n_users, 4),
        teacher_items=torch.randn(n_items, 4),
        seen=sp.csr_matrix(seen),
        n_items=n_items,
        **{**SETTINGS, "dcd_top_m": 8, "dcd_k": 4, "dcd_icd_weight": 1.0},
    )
    kd.refresh(torch.randn(n_users, 3), torch.randn(n_items, 3))
    seen_t = torch.from_numpy(seen).bool()
    for side, rows, top, allowed in (
        ("user", torch.arange(1, n_users), kd.user_top, ~seen_t),
        ("item", torch.arange(1, n_items), kd.item_top, ~seen_t.T),
    ):
        for _ in range(20):
            under, over = kd.sample(rows, side=side)
            for drawn in (under, over):
                assert (drawn != 0).all()  # never the padding item or user
                assert allowed[rows.unsqueeze(1), drawn].all()  # never a training interaction
            position = (top[rows].unsqueeze(1) == under.unsqueeze(2)).int().argmax(2)
            assert (position.diff(dim=1) > 0).all()  # teacher order, distinct


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"dcd_k": 5}, "'dcd_k': dcd_k 5 exceeds dcd_top_m 4"),
        ({"dcd_k": 0}, "'dcd_k': dcd_k 0 must be at least 1"),
        ({"dcd_top_m": 5, "dcd_k": 1}, "'dcd_top_m': dcd_top_m 5 exceeds the 4 items left"),
        ({"dcd_eps": 0.0}, "'dcd_eps'"),
        ({"dcd_update_every": 0}, "'dcd_update_every'"),
        ({"dcd_icd_weight": -1.0}, "'dcd_icd_weight'"),
        ({"dcd_rkd_weight": 1.0, "rrd_k": 3}, "rrd_k <= rrd_top_n"),  # rrd's keys checked then
    ],
)
def test_settings_dcd_cannot_run_with_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        _example(**bad)


def test_dcd_top_m_above_the_users_an_item_can_list_is_a_config_error():
    seen = np.zeros((5, 8))
    seen[1:, 3] = 1  # item 3 is trained by every user: no user is left to list for it
    with pytest.raises(
        ConfigError, match="exceeds the 0 users left to list for the most active item"
    ):
        DualCorrectionDistillation(
            teacher_users=torch.randn(5, 2),
            teacher_items=torch.randn(8, 2),
            seen=sp.csr_matrix(seen),
            n_items=8,
            **{**SETTINGS, "dcd_top_m": 2},
        )


def test_a_narrower_student_learns_from_dcd_and_its_teacher_lists_stay_frozen(toy):
    from test_kd_students import _student  # builds a KD-LightGCN with 4-wide teacher tables

    torch.manual_seed(0)
    student, train = _student(toy, "dcd", dcd_top_m=10, dcd_k=3, kd_weight=1.0, embedding_size=2)
    assert isinstance(student.kd, DualCorrectionDistillation)
    assert student.user_embedding.weight.shape[1] == 2  # the teacher's tables are 4 wide
    assert not list(student.kd.parameters())
    batch = next(iter(train))
    student.on_epoch_start(0)
    term = student.kd_loss(batch)
    assert torch.isfinite(term) and term > 0
    term.backward()
    grads = [p.grad for p in student.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(b.grad is None and not b.requires_grad for b in student.kd.buffers())
    assert student.kd.user_w_plus.shape == (train.dataset.user_num, 10)
    assert student.kd.item_w_plus.shape == (train.dataset.item_num, 10)
    student.zero_grad()
    total = student.calculate_loss(batch)
    assert torch.isfinite(total)
    student.double()
    floats = [b for b in student.kd.buffers() if b.is_floating_point()]
    assert floats and all(b.dtype == torch.float64 for b in floats)
