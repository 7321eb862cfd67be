r"""Topology distillation (Kang, Hwang, Kweon and Yu, "Topology Distillation for Recommender
System", KDD 2021), as the authors' code runs it (SeongKu-Kang/Topology_Distillation_KDD21;
docs/releases/kd_methods.md section 3 reads it line by line).

The student learns the teacher's *relations* among a batch's entities (distinct users, then
distinct items of both columns) rather than its representations: cosine similarities computed
within each space, so the two widths never meet and any student width works. FTD matches every
relation; HTD, meant for a student much narrower than its teacher, matches relations within
groups of entities and between groups and entities, the groups assigned by networks trained
with DE's Gumbel-softmax experts (:class:`~recbole_mmkd.distill.de.ExpertMixture`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbole_mmkd.distill.de import AnnealedExperts
from recbole_mmkd.distill.methods import KDMethod, register_kd_method
from recbole_mmkd.errors import ConfigError

HTD_CHOICES = ("second", "first")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` with every row of ``b``; a zero row has
    cosine 0 (the authors divide without an epsilon, so theirs is NaN)."""
    return F.normalize(a, dim=-1, eps=1e-12) @ F.normalize(b, dim=-1, eps=1e-12).T


def full_topology(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    r"""FTD: :math:`\sum_{j,k} (\cos(T_j, T_k) - \cos(S_j, S_k))^2` over all ordered pairs of
    rows, the diagonal included.

    Computed without the two :math:`n \times n` relation matrices: with :math:`\hat T, \hat S`
    the row-normalised tables, :math:`\lVert \hat T \hat T^\top - \hat S \hat S^\top
    \rVert_F^2 = \lVert \hat T^\top \hat T\rVert_F^2 - 2 \lVert \hat T^\top \hat S
    \rVert_F^2 + \lVert \hat S^\top \hat S \rVert_F^2`, products of width x width, in
    float64 against the cancellation of the three large terms: :math:`O(n d^2)` instead of
    :math:`O(n^2 d)`, the same value."""
    t = F.normalize(teacher, dim=-1, eps=1e-12).double()
    s = F.normalize(student, dim=-1, eps=1e-12).double()
    total = (t.T @ t).pow(2).sum() - 2 * (t.T @ s).pow(2).sum() + (s.T @ s).pow(2).sum()
    return total.to(student.dtype)


def group_prototypes(rows: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """The mean row of each group present in ``groups``, in ascending group order, with no
    gradient (the authors' prototypes are computed under ``no_grad``)."""
    with torch.no_grad():
        _, index = groups.unique(return_inverse=True)
        members = F.one_hot(index).to(rows.dtype)  # (n, groups present)
        return (members.T @ rows) / members.sum(0).unsqueeze(1)


def hierarchical_topology(
    teacher: torch.Tensor, student: torch.Tensor, groups: torch.Tensor, *, choice: str
) -> torch.Tensor:
    r"""HTD's topology term: the entity level, :math:`\sum (\cos S_{jk} - \cos T_{jk})^2` over
    ordered pairs in the same group whose teacher cosine is positive (the release's mask,
    ``t_sim * same_group > 0``), plus the group level: ``"second"`` ("Group(P,e)"),
    :math:`\sum_g \sum_e (\cos(P^t_g, T_e) - \cos(P^s_g, S_e))^2` with prototypes
    :math:`P` the groups' mean rows; ``"first"`` ("Group(P,P)"), the prototypes' relations
    among themselves, which carries no gradient. Each group's relations are computed apart,
    never the batch's :math:`n \times n`."""
    entity = student.new_zeros(())
    for group in groups.unique():  # group by group: no n x n matrix
        members = (groups == group).nonzero().squeeze(1)
        t, s = teacher[members], student[members]
        teacher_rel = cosine_matrix(t, t)
        gap = cosine_matrix(s, s) - teacher_rel
        entity = entity + gap[teacher_rel > 0].pow(2).sum()
    proto_t = group_prototypes(teacher, groups)
    proto_s = group_prototypes(student, groups)
    if choice == "second":
        gap = cosine_matrix(proto_t, teacher) - cosine_matrix(proto_s, student)
    elif choice == "first":
        gap = cosine_matrix(proto_t, proto_t) - cosine_matrix(proto_s, proto_s)
    else:
        raise ValueError(f"unknown HTD choice {choice!r}; one of {HTD_CHOICES}")
    return entity + gap.pow(2).sum()


def batch_entities(
    users: torch.Tensor, interaction_items: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's distinct users and its distinct items (positives and negatives together)."""
    return users.unique(), interaction_items.unique()


@register_kd_method
class FullTopologyDistillation(KDMethod):
    r"""FTD (Kang et al., KDD 2021): with :math:`E` the batch's distinct users and items,

    .. math:: \mathcal{L}_{FTD} = \frac1B \sum_{j,k \in E}
       \big(\cos(T_j, T_k) - \cos(S_j, S_k)\big)^2

    user-user, user-item and item-item relations alike. No keys of its own (``kd_weight`` is
    the authors' :math:`\lambda_{TD}`, 0.001); no parameters; any student width.

    Deviation from the release: the batch sum is divided by the batch's rows ``B`` (the
    project's BPR is a mean, the authors' a sum); zero rows have cosine 0 rather than NaN.
    :func:`full_topology` never builds the :math:`|E|^2` relations (:math:`|E| \le 3B`).
    """

    name = "ftd"

    def __init__(self, *, teacher_users: torch.Tensor, teacher_items: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("teacher_users", teacher_users, persistent=False)
        self.register_buffer("teacher_items", teacher_items, persistent=False)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        u, i = batch_entities(users, interaction_items)
        teacher = torch.cat([self.teacher_users[u], self.teacher_items[i]])
        student = torch.cat([user_e[u], item_e[i]])
        return full_topology(teacher, student) / users.shape[0]


@register_kd_method
class HierarchicalTopologyDistillation(AnnealedExperts):
    r"""HTD (Kang et al., KDD 2021): entities are assigned to ``htd_groups`` groups per side
    (users and items apart) by an assignment network on the teacher's row, hard (argmax) for
    the topology, soft for the assignment loss :math:`\mathcal{L}_{GA}`, which is DE's expert
    loss with one projector :math:`f_k` per group
    (:meth:`~recbole_mmkd.distill.de.ExpertMixture.loss`, no self-distillation special case,
    items entering once, without DE's one half):

    .. math:: \mathcal{L}_{HTD} = \frac1B\big(\alpha\,\mathcal{L}_{TD}
       + (1 - \alpha)\,\mathcal{L}_{GA}\big)

    :math:`\mathcal{L}_{TD}` is :func:`hierarchical_topology` over the batch's distinct users
    and items.

    Config: ``htd_groups`` (K, authors' 30), ``htd_alpha`` (0.5), ``htd_choice`` (``second``,
    the authors' notebook; ``first``), ``htd_tau_start``, ``htd_tau_end``,
    ``htd_anneal_epochs`` (1 -> 1e-10 over the training horizon, as DE); ``kd_weight`` is
    :math:`\lambda_{TD}` (0.001). The projectors and assignment networks are parameters of the
    student (``kd.*``).

    Deviations from the release: the batch sum is divided by the batch's rows ``B``; zero rows
    have cosine 0 rather than NaN; the authors' Adam weight decay on the projectors is not
    applied; epoch ``e`` uses :math:`\tau(e)`. Kept as released: same-group pairs with a
    non-positive teacher cosine leave the entity term, and under ``first`` the group term adds
    to the value but not to the gradient.
    """

    name = "htd"
    config_keys = (
        "htd_groups",
        "htd_alpha",
        "htd_choice",
        "htd_tau_start",
        "htd_tau_end",
        "htd_anneal_epochs",
    )

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        student_dim: int,
        htd_groups: int,
        htd_alpha: float,
        htd_choice: str,
        htd_tau_start: float,
        htd_tau_end: float,
        htd_anneal_epochs: int,
    ) -> None:
        super().__init__(
            teacher_users=teacher_users,
            teacher_items=teacher_items,
            student_dim=student_dim,
            experts=htd_groups,
            count_key="htd_groups",
            prefix="htd",
            schedule=(htd_tau_start, htd_tau_end, htd_anneal_epochs),
            halve_equal=False,  # no self-distillation special case, unlike DE
        )
        if not 0 <= htd_alpha <= 1:
            raise ConfigError(
                "config", "htd_alpha", f"{htd_alpha} is outside [0, 1]", "give 0 <= alpha <= 1"
            )
        if htd_choice not in HTD_CHOICES:
            raise ConfigError(
                "config", "htd_choice", f"unknown {htd_choice!r}", f"use one of {HTD_CHOICES}"
            )
        self.n_groups, self.alpha, self.choice = htd_groups, htd_alpha, htd_choice

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        u, i = batch_entities(users, interaction_items)
        teacher_u, teacher_i = self.teacher_users[u], self.teacher_items[i]
        with torch.no_grad():
            groups = torch.cat(
                [
                    self.user_experts.assignment(teacher_u).argmax(1),
                    self.item_experts.assignment(teacher_i).argmax(1) + self.n_groups,
                ]
            )
        topology = hierarchical_topology(
            torch.cat([teacher_u, teacher_i]),
            torch.cat([user_e[u], item_e[i]]),
            groups,
            choice=self.choice,
        )
        assignment = self.user_experts.loss(
            user_e[u], teacher_u, self.tau
        ) + self.item_experts.loss(item_e[i], teacher_i, self.tau)
        return (self.alpha * topology + (1 - self.alpha) * assignment) / users.shape[0]
