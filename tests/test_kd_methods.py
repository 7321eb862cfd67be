"""CD, DE / DE-RRD, FTD and HTD: their losses against hand-computed values (the worked
examples of docs/releases/kd_methods.md), their schedules and samplers, and each as a
student's KD term."""

from __future__ import annotations

import math

import pytest
import scipy.sparse as sp
import torch
from test_kd_students import _student

from recbole_mmkd.distill.cd import (
    CollaborativeDistillation,
    collaborative_distillation,
    tournament_probabilities,
)
from recbole_mmkd.distill.de import (
    DistillationExperts,
    ExpertMixture,
    expert_widths,
    gumbel_selection,
)
from recbole_mmkd.distill.schedules import annealed_temperature
from recbole_mmkd.distill.topology import cosine_matrix, full_topology, hierarchical_topology
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.pipeline import inference_params


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_cd_loss_is_the_bce_against_the_teachers_soft_label():
    value = collaborative_distillation(t([[1.0, -1.0]]), t([[2.0, 0.0]]), 2.0, 0.0)
    assert math.isclose(value, 0.697732, rel_tol=1e-5)
    # the student at the teacher's logit (t / T): the loss is the labels' mean binary entropy
    q = torch.sigmoid(t([1.0, 0.0]))
    entropy = -(q * q.log() + (1 - q) * (1 - q).log()).mean()
    exact = collaborative_distillation(t([[1.0, 0.0]]), t([[2.0, 0.0]]), 2.0, 0.0)
    assert math.isclose(exact, entropy, rel_tol=1e-9)


def test_cd_tournament_keeps_the_better_of_two_ranks():
    probs = tournament_probabilities(2, 1e9)  # near-uniform weights over two ranks
    assert probs.tolist() == pytest.approx([0.75, 0.25], abs=1e-6)
    torch.manual_seed(0)
    pairs = torch.multinomial(torch.tensor([0.5, 0.5]), 80_000, replacement=True).view(-1, 2)
    kept = pairs.min(1).values  # simulate the tournament itself
    assert (kept == 0).double().mean() == pytest.approx(0.75, abs=0.01)
    # the method's own draw: 40,000 users alike, each one item of its teacher top 2
    users, items = torch.ones(40_000, 1), torch.tensor([[0.0], [3.0], [2.0], [1.0]])
    cd = CollaborativeDistillation(
        teacher_users=users, teacher_items=items, seen=sp.csr_matrix((40_000, 4)), n_items=4,
        cd_top_n=2, cd_n_items=1, cd_rank_temperature=1e9, cd_t=1.0, cd_bias=0.0,
        cd_strategy="teacher",
    )  # fmt: skip
    cd.redraw(users, items)
    assert (cd.sampled == 1).double().mean() == pytest.approx(0.75, abs=0.01)  # rank 1: item 1
    long = tournament_probabilities(3000, 20.0)
    assert long.sum() == pytest.approx(1.0, abs=1e-5) and bool((long.diff() < 0).all())


@pytest.mark.parametrize("strategy", ["teacher", "student"])
def test_cd_draws_distinct_unobserved_items_and_trains(toy, strategy):
    student, train = _student(toy, "cd", cd_top_n=10, cd_n_items=4, cd_strategy=strategy)
    batch = next(iter(train))
    users = batch[student.USER_ID]
    seen = train.dataset.inter_matrix(form="csr")
    student.kd.on_epoch_start(0)
    loss = student.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and student.user_embedding.weight.grad.abs().sum() > 0
    assert student.kd.teacher_users.grad is None
    ranking = student.kd.ranking
    assert ranking.shape == (seen.shape[0], 10) and bool((ranking > 0).all())
    rows = ranking[users].numpy()
    assert not any(seen[u, i] for u, row in zip(users.tolist(), rows, strict=True) for i in row)
    sampled = student.kd.sampled  # drawn for every user at the epoch's first batch
    assert sampled.shape == (seen.shape[0], 4)
    assert all(len(set(r)) == 4 and set(r) <= set(k) for r, k in zip(
        sampled.tolist(), ranking.tolist(), strict=True))  # fmt: skip
    student.calculate_loss(batch)
    assert student.kd.sampled is sampled  # the same sets within an epoch
    student.kd.on_epoch_start(1)
    student.calculate_loss(batch)
    assert not torch.equal(student.kd.sampled, sampled)  # new ones the next
    if strategy == "student":  # re-ranked from the student's tables at each epoch's first batch
        user_e, item_e = student.forward()
        scored = (user_e @ item_e.T).detach()
        assert scored[1, ranking[1, 0]] >= scored[1, ranking[1, -1]]


def test_cd_refuses_what_it_cannot_sample(toy):
    with pytest.raises(ConfigError, match="cd_n_items <= cd_top_n <= 24"):
        _student(toy, "cd", cd_top_n=25, cd_n_items=4)  # 30 items, 6 training each
    with pytest.raises(ConfigError, match="'cd_strategy': unknown 'both'"):
        _student(toy, "cd", cd_top_n=10, cd_n_items=4, cd_strategy="both")


@pytest.mark.parametrize(
    ("gumbel", "tau", "expected"),
    [([0.0, 0.0], 1.0, 0.5), ([0.0, -math.log(3)], 1.0, 0.125), ([0.0, -1.0], 0.01, 0.0)],
)
def test_de_loss_mixes_experts_by_gumbel_softmax(gumbel, tau, expected):
    """One entity, h_t = (1, 0), experts' outputs (1, 0) and (0, 1), selection (0.5, 0.5)."""
    z = gumbel_selection(t([[0.5, 0.5]]), t([gumbel]), tau)
    mixed = z @ t([[1.0, 0.0], [0.0, 1.0]])
    assert (t([[1.0, 0.0]]) - mixed).pow(2).sum().item() == pytest.approx(expected, abs=1e-12)


def test_the_mixture_is_its_experts_weighted_and_one_expert_takes_no_noise():
    torch.manual_seed(0)
    mixture = ExpertMixture(3, 5, 4, halve_equal=False)
    student, z = torch.randn(6, 3), torch.softmax(torch.randn(6, 4), -1)
    experts = torch.stack(  # each expert as its own two Linear layers
        [torch.relu(student @ mixture.w1[m] + mixture.b1[m]) @ mixture.w2[m] + mixture.b2[m]
         for m in range(4)], 1)  # fmt: skip
    assert torch.allclose(mixture.mixed(student, z), (z.unsqueeze(-1) * experts).sum(1), atol=1e-6)
    assert gumbel_selection(t([[1.0]]), t([[5.0]]), 1e-10).tolist() == [[1.0]]
    assert expert_widths(20, 200, halve_equal=True) == [20, 110, 200]
    assert expert_widths(64, 64, halve_equal=True) == [64, 32, 64]
    assert expert_widths(64, 64, halve_equal=False) == [64, 64, 64]  # HTD's projectors
    mixture = ExpertMixture(20, 200, 30, halve_equal=True)
    experts = sum(p.numel() for n, p in mixture.named_parameters() if not n.startswith("gate"))
    assert 2 * experts == 1_470_600  # users' and items': the release's log for d 20 -> 200
    assert sum(p.numel() for p in mixture.gate.parameters()) * 2 == 12_060


def test_anneal_schedule():
    values = [annealed_temperature(e, 1.0, 1e-10, 1000) for e in (0, 100, 1000, 2000)]
    assert values == pytest.approx([1.0, 0.1, 1e-10, 1e-10], rel=1e-9)


def test_de_reduction_counts_users_once_and_items_half():
    """B = 2 rows (u1, i1, j1), (u1, i2, j1): [l(u1) + (l(i1) + l(i2) + l(j1)) / 2] / 2."""
    torch.manual_seed(0)
    teacher_u, teacher_i = torch.randn(3, 4), torch.randn(5, 4)
    de = DistillationExperts(
        teacher_users=teacher_u, teacher_items=teacher_i, student_dim=2,
        de_num_experts=1, de_tau_start=1.0, de_tau_end=1e-10, de_anneal_epochs=10,
    )  # fmt: skip
    user_e, item_e = torch.randn(3, 2), torch.randn(5, 2)
    users, items = torch.tensor([1, 1]), torch.tensor([[2, 4], [3, 4]])

    def ell(mixture, student, teacher):  # one expert: no noise, z = 1
        mixed = mixture.mixed(student, torch.ones(student.shape[0], 1))
        return (teacher - mixed).pow(2).sum(1)

    per_user = ell(de.user_experts, user_e, teacher_u)
    per_item = ell(de.item_experts, item_e, teacher_i)
    expected = (per_user[1] + 0.5 * (per_item[2] + per_item[3] + per_item[4])) / 2
    assert de.loss(user_e, item_e, users, items).item() == pytest.approx(expected.item(), rel=1e-6)


def test_ftd_matches_hand_computed_relations_at_any_width():
    assert full_topology(t([[1.0, 0.0], [1.0, 1.0]]), t([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(
        1.0
    )
    narrow = full_topology(t([[1.0, 0.0], [1.0, 1.0]]), t([[1.0], [-1.0]]))
    assert narrow == pytest.approx(5.828427, rel=1e-6)


def test_htd_topology_examples():
    teacher = t([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # u1, u2 (group 0), i1 (item group)
    student = t([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]).requires_grad_()
    groups = torch.tensor([0, 0, 30])
    second = hierarchical_topology(teacher, student, groups, choice="second")
    assert second.item() == pytest.approx(2.660993, rel=1e-6)
    first = hierarchical_topology(teacher, student, groups, choice="first")
    assert first.item() == pytest.approx(1.135089, rel=1e-6)
    # under 'first' the group term adds value, never gradient: the gradient is the entity
    # term's, 2 (cos_s(u1, u2) - 1/sqrt 2)^2
    (grad_first,) = torch.autograd.grad(first, student)
    cos_s = torch.nn.functional.cosine_similarity(student[0], student[1], dim=0)
    (grad_entity,) = torch.autograd.grad(2 * (cos_s - 2**-0.5) ** 2, student)
    assert torch.allclose(grad_first, grad_entity) and grad_entity.abs().sum() > 0
    flipped = teacher.clone()
    flipped[1] = t([-1.0, 0.2])  # the pair's teacher cosine turns negative: it leaves the term
    dropped = hierarchical_topology(flipped, student, groups, choice="first")
    (grad_dropped,) = torch.autograd.grad(dropped, student)
    assert grad_dropped.abs().sum() == 0


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("de", {"de_num_experts": 3}),
        ("de_rrd", {"de_num_experts": 3, "rrd_top_n": 5, "rrd_k": 2, "rrd_l": 3}),
        ("ftd", {}),
        ("htd", {"htd_groups": 3}),
        ("htd", {"htd_groups": 3, "htd_choice": "first"}),
    ],
)
def test_embedding_methods_train_a_narrower_student_and_their_own_parts(toy, method, extra):
    student, train = _student(toy, method, embedding_size=2, **extra)  # teacher tables: 4 wide
    student.on_epoch_start(5)
    batch = next(iter(train))
    loss = student.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert student.user_embedding.weight.grad.abs().sum() > 0
    assert all(b.grad is None for b in student.kd.buffers())
    own = dict(student.kd.named_parameters())
    assert bool(own) == (method != "ftd")
    assert all(p.grad is not None for p in own.values())
    assert set(student.state_dict()) >= {f"kd.{n}" for n in own}
    serving = sum(p.numel() for n, p in student.named_parameters() if not n.startswith("kd."))
    assert inference_params(student) == serving  # the method's parts serve no prediction


def _tables(n_users: int = 5, n_items: int = 12, dim: int = 3):
    torch.manual_seed(3)
    return torch.randn(n_users, dim), torch.randn(n_items, dim)


def test_shared_logit_items_are_one_draw_for_the_whole_batch():
    from recbole_mmkd.distill.losses import logit_kd
    from recbole_mmkd.distill.methods import LogitKD

    teacher_u, teacher_i = _tables()
    kd = LogitKD(teacher_users=teacher_u, teacher_items=teacher_i, n_items=12, t_decay=2.0,
                 kd_items=4, kd_shared_items=True)  # fmt: skip
    user_e, item_e = torch.randn(5, 3), torch.randn(12, 3)
    users, pairs = torch.tensor([1, 2, 2]), torch.tensor([[3, 4], [5, 6], [7, 8]])
    torch.manual_seed(0)
    value = kd.loss(user_e, item_e, users, pairs)
    torch.manual_seed(0)
    shared = torch.randint(1, 12, (4,))  # the same draw, for every row
    items = torch.cat([pairs, shared.expand(3, -1)], 1)

    def rows(u, i):
        return (u[users].unsqueeze(1) * i[items]).sum(-1)

    expected = logit_kd(rows(user_e, item_e), rows(teacher_u, teacher_i), 2.0)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_shared_rrd_items_leave_each_users_top_n_out():
    from recbole_mmkd.distill.losses import relaxed_ranking_distillation
    from recbole_mmkd.distill.methods import RelaxedRankingDistillation

    teacher_u, teacher_i = _tables()
    kd = RelaxedRankingDistillation(
        teacher_users=teacher_u, teacher_items=teacher_i, seen=sp.csr_matrix((5, 12)),
        n_items=12, rrd_top_n=4, rrd_k=2, rrd_l=6, rrd_temperature=1.0, kd_shared_items=True,
    )  # fmt: skip
    user_e, item_e = torch.randn(5, 3), torch.randn(12, 3)
    users = torch.tensor([1, 3])
    torch.manual_seed(0)
    value = kd.loss(user_e, item_e, users, torch.tensor([[1, 2], [3, 4]]))
    torch.manual_seed(0)
    top = kd.teacher_top[users]
    picks = torch.multinomial(kd.weights.expand(2, -1), 2)
    interesting = top.gather(1, picks.sort(dim=1).values)
    shared = torch.randint(1, 12, (6,))
    others = user_e[users] @ item_e[shared].T
    inside = (top.unsqueeze(2) == shared).any(1)
    assert inside.any()  # this draw holds some user's top-4 item: it must leave the sum
    others[inside] = float("-inf")
    first = (user_e[users].unsqueeze(1) * item_e[interesting]).sum(-1)
    expected = relaxed_ranking_distillation(first, others)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)


def test_ftd_equals_the_relation_matrices_sum_without_building_them():
    torch.manual_seed(0)
    teacher, student = torch.randn(300, 16), torch.randn(300, 4, requires_grad=True)
    teacher[5] = 0  # a zero row relates by cosine 0, as cosine_matrix says
    t, s = teacher.double(), student.double()  # the reference in float64, relations built
    direct = (cosine_matrix(t, t) - cosine_matrix(s, s)).pow(2).sum()
    value = full_topology(teacher, student)
    assert value.item() == pytest.approx(direct.item(), rel=1e-5)
    (grad,) = torch.autograd.grad(value, student)
    (expected,) = torch.autograd.grad(direct, student)
    assert torch.allclose(grad, expected.float(), rtol=1e-4, atol=1e-3)  # entries up to 75


def test_cd_weighs_a_users_items_by_its_rows():
    student, teacher = torch.randn(2, 3), torch.randn(2, 3)
    rows = [0, 0, 0, 1]  # the batch: three rows of the first user, one of the second
    expected = collaborative_distillation(student[rows], teacher[rows], 2.0, 0.5)
    weighted = collaborative_distillation(student, teacher, 2.0, 0.5, rows=torch.tensor([3, 1]))
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-6)
