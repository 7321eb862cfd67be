"""UnKD (Chen et al., WSDM 2023): popularity groups, pair counts, the tie-free rank-pair draw,
the loss, and the method on a student (docs/releases/kd_methods.md section 5.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from conftest import ROOT, fast
from test_kd_students import _ReadKeys, _student

from recbole_mmkd.distill.methods import resolve_kd_method
from recbole_mmkd.distill.unkd import (
    UnbiasedKD,
    draw_rank_pairs,
    group_pairs,
    popularity_groups,
    rank_weights,
    unkd_pair_loss,
)
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import get_model
from recbole_mmkd.prepare import config_for


def _ids(groups):
    return [group.tolist() for group in groups]


@pytest.mark.parametrize(
    ("popularity", "n_groups", "expected"),
    [
        ([0, 5, 3, 1, 1], 2, [[1], [2, 3, 4]]),  # {B, C, D}: mass 5 > 2.5, kept
        ([0, 4, 4, 1, 1], 2, [[1], [2, 3, 4]]),  # the tail {D}, mass 1 <= 2.5, merged
        ([0, 6, 2, 1, 1], 3, [[1], [2, 3, 4]]),  # G = 3 asked, 2 come out
        ([0, 1, 3, 0, 3, 1], 2, [[2], [4, 1, 5]]),  # ties by id; no interaction, no group
    ],
)
def test_popularity_groups_fill_to_equal_mass(popularity, n_groups, expected):
    assert _ids(popularity_groups(popularity, n_groups)) == expected


def test_group_pairs_share_n_by_inverse_mean_popularity():
    means = (5.0, 5 / 3)  # groups {A}, {B, C, D} of A5 B3 C1 D1: rho = (0.25, 0.75)
    assert group_pairs(means, 30, 0.0) == [15, 15]
    assert group_pairs(means, 30, 1.0) == [8, 22]  # 7.5 -> 8 and 22.5 -> 22, half to even
    assert group_pairs((3.0, 2.0, 1.0), 10, 0.0) == [4, 3, 3]  # 3 x 3 short by one: first + 1
    assert group_pairs((4.0, 3.0, 2.0, 1.0), 30, 0.0) == [8, 8, 8, 8]  # above n: kept
    # rho rounded to 2 decimals then floored at 0.1: (100, 1, 1) -> (0.01 -> 0.1, 0.5, 0.5)
    assert group_pairs((100.0, 1.0, 1.0), 11, 1.0) == [1, 5, 5]


def test_rank_pairs_are_tie_free_teacher_ordered_and_weighted_by_rank():
    torch.manual_seed(0)
    weights = rank_weights(3, 1.0)
    better, worse = draw_rank_pairs(weights, torch.tensor([3]), 60_000)
    assert bool((better < worse).all())
    expected = {(0, 1): 0.665241, (0, 2): 0.244728, (1, 2): 0.090031}
    for (b, w), p in expected.items():
        share = ((better == b) & (worse == w)).float().mean().item()
        assert share == pytest.approx(p, abs=0.01)
    # each row keeps to its own length; two candidates give the one pair (0, 1)
    better, worse = draw_rank_pairs(rank_weights(5, 20.0), torch.tensor([2, 5, 3]), 2_000)
    assert better[0].eq(0).all() and worse[0].eq(1).all()
    assert int(worse[1].max()) == 4 and int(worse[2].max()) == 2
    assert bool((better < worse).all())


def test_loss_is_the_mean_negative_log_sigmoid_over_the_pairs_kept():
    diff = torch.tensor([[2.0 - 1.0, 0.0 - 0.0]])
    assert unkd_pair_loss(diff).item() == pytest.approx(0.503204, rel=1e-5)
    masked = torch.tensor([[1.0, 0.0, -7.0]])
    kept = torch.tensor([[True, True, False]])
    assert unkd_pair_loss(masked, kept).item() == pytest.approx(0.503204, rel=1e-5)
    assert unkd_pair_loss(masked, torch.zeros_like(kept)).item() == 0.0


def _data(seed: int = 0):
    """21 users x 16 items, popularity falling with the id; item 15 is never interacted with;
    user 20 has interacted with every item but 14, so no group gives it 2 candidates."""
    rng = np.random.default_rng(seed)
    prob = 0.9 * 0.8 ** np.arange(16)
    seen = rng.random((21, 16)) < prob
    seen[:, 0] = seen[:, 15] = False
    seen[20, 1:] = True
    seen[20, 14:] = False
    seen[1, 14] = True  # so item 14 has a group
    seen[2, 0] = True  # a stray entry of the padding item, which must still join no group
    return seen, torch.randn(21, 4), torch.randn(16, 4)


def _unkd(seen, users, items, **settings):
    values = dict(unkd_groups=2, unkd_pairs=6, unkd_lambda=0.0, unkd_mu=20.0, unkd_top=3)
    return UnbiasedKD(
        teacher_users=users,
        teacher_items=items,
        seen=sp.csr_matrix(seen.astype(np.float32)),
        **{**values, **settings},
    )


def test_candidates_are_the_teachers_best_unseen_items_of_each_group():
    seen, users, items = _data()
    kd = _unkd(seen, users, items)
    popularity = seen.sum(0)
    popularity[0] = 0
    groups = popularity_groups(popularity, 2)
    assert len(groups) == 2 and kd.pairs_per_group == [3, 3]
    assert kd.group_of_item[0] == -1 and kd.group_of_item[15] == -1
    teacher = users @ items.T
    for u in range(seen.shape[0]):
        for g, group in enumerate(groups):
            unseen = [i for i in group.tolist() if not seen[u, i]]
            best = sorted(unseen, key=lambda i: -teacher[u, i].item())[:3]
            length = int(kd.candidate_lengths[u, g])
            assert kd.candidates[u, g, :length].tolist() == best
            assert (kd.candidates[u, g, length:] == -1).all()
    assert kd.candidate_lengths[20].tolist() in ([1, 0], [0, 1])


def test_sampled_pairs_lie_in_their_group_and_avoid_training_items_and_padding():
    torch.manual_seed(0)
    seen, users, items = _data()
    kd = _unkd(seen, users, items)
    teacher = users @ items.T
    batch = torch.arange(1, 21).repeat(50)  # rows as they come: each user 50 times
    better, worse, kept = kd.sample_pairs(batch)
    column_group = torch.tensor([0, 0, 0, 1, 1, 1])
    assert better.shape == worse.shape == kept.shape == (batch.shape[0], 6)
    enough = kd.candidate_lengths[batch][:, column_group] >= 2
    assert torch.equal(kept, enough) and not kept[batch == 20].any()
    rows, cols = kept.nonzero(as_tuple=True)
    users_kept = batch[rows]
    for side in (better, worse):
        picked = side[rows, cols].long()
        assert bool((picked > 0).all())
        assert torch.equal(kd.group_of_item[picked], column_group[cols])
        assert not torch.from_numpy(seen)[users_kept, picked].any()
    high, low = better[rows, cols].long(), worse[rows, cols].long()
    assert bool((teacher[users_kept, high] > teacher[users_kept, low]).all())
    assert set(better[rows, cols].tolist()) | set(worse[rows, cols].tolist()) == set(
        kd.candidates[batch[rows], column_group[cols]].flatten().tolist()
    ) - {-1}
    table_u = torch.randn(21, 2, requires_grad=True)
    table_i = torch.randn(16, 2, requires_grad=True)
    alone = kd.loss(table_u, table_i, torch.tensor([20]), torch.zeros(1, 2, dtype=torch.long))
    assert alone.item() == 0.0  # no group gives user 20 a pair


def test_unkd_reads_exactly_its_keys_whose_defaults_kd_yaml_holds():
    defaults = yaml.safe_load((ROOT / "properties" / "model" / "KD.yaml").read_text())
    config = _ReadKeys({key: defaults[key] for key in UnbiasedKD.config_keys})
    seen, users, items = _data()
    kd = UnbiasedKD.from_config(
        config,
        teacher_users=users,
        teacher_items=items,
        seen=sp.csr_matrix(seen.astype(np.float32)),
        n_items=16,
        student_dim=2,
    )
    assert config.read == set(UnbiasedKD.config_keys)
    assert (
        kd.pairs_per_group == [15, 15] and kd.candidates.shape[2] == 11
    )  # the larger group, 11 items


def test_unkd_settings_it_cannot_run_with_are_config_errors():
    seen = np.zeros((5, 3), dtype=bool)
    seen[1:4, 1] = seen[4, 2] = True  # popularity A3 B1, G = 2: B's mass 1 <= 1, merged
    users, items = torch.randn(5, 2), torch.randn(3, 2)
    with pytest.raises(ConfigError, match=r"'unkd_groups': .* form 1 popularity group"):
        _unkd(seen, users, items)
    seen, users, items = _data()
    for key, value in (("unkd_mu", 0.0), ("unkd_pairs", 0), ("unkd_top", 1), ("unkd_groups", 1)):
        with pytest.raises(ConfigError, match=f"'{key}'"):
            _unkd(seen, users, items, **{key: value})


@pytest.mark.parametrize("width", [None, 2])  # 2: narrower than the 4-wide teacher tables
def test_unkd_student_learns_from_the_teacher_pairs_and_leaves_the_teacher_alone(toy, width):
    extra = {} if width is None else {"embedding_size": width}
    student, train = _student(toy, "unkd", unkd_top=5, unkd_pairs=4, **extra)
    assert isinstance(student.kd, UnbiasedKD) and resolve_kd_method("unkd") is UnbiasedKD
    assert not list(student.kd.parameters())
    plain = get_model("LightGCN")(
        config_for("LightGCN", "toy", overrides=fast(**extra), data_path=toy), train.dataset
    )
    assert student.state_dict().keys() == plain.state_dict().keys()  # buffers not persistent
    batch = next(iter(train))
    term = student.kd_loss(batch)
    assert math.isfinite(term.item()) and term.item() > 0
    term.backward()
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(b.grad is None and not b.requires_grad for b in student.kd.buffers())
    student.double()
    assert student.kd.rank_weights.dtype == torch.float64
    assert math.isfinite(student.kd_loss(batch).item())


def test_pairs_are_drawn_once_an_epoch_and_rows_of_a_user_share_them(toy):
    from test_kd_students import _student

    student, _ = _student(toy, "unkd", unkd_top=5, unkd_pairs=4)
    kd = student.kd
    user_e, item_e = torch.randn(41, 8), torch.randn(31, 8)
    users = torch.tensor([3, 3, 3, 7])
    pairs = torch.tensor([[1, 2]] * 4)
    value = kd.loss(user_e, item_e, users, pairs)
    better = kd.better
    # the release's mean over the batch's rows, each row scoring its user's pairs
    items = torch.cat([kd.better[users], kd.worse[users]], 1).clamp(min=0)
    rows = (user_e[users].unsqueeze(1) * item_e[items]).sum(-1)
    high, low = rows.split(kd.better.shape[1], 1)
    assert value.item() == pytest.approx(unkd_pair_loss(high - low, kd.kept[users]).item())
    kd.loss(user_e, item_e, users, pairs)
    assert kd.better is better  # the same pairs within an epoch
    kd.on_epoch_start(1)
    kd.loss(user_e, item_e, users, pairs)
    assert not torch.equal(kd.better, better)  # new ones the next
