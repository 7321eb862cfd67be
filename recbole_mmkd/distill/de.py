r"""Distillation Experts, DE-RRD's embedding half (Kang, Hwang, Kweon and Yu, "DE-RRD: A
Knowledge Distillation Framework for Recommender System", CIKM 2020), and its combination with
RRD, as the authors' code runs them (SeongKu-Kang/DE-RRD_CIKM20; docs/releases/kd_methods.md
section 2 reads it line by line).

Each expert :math:`E_m` maps a student row to the teacher's width through one hidden ReLU
layer; a selection network reads the *teacher* row, :math:`\alpha = \mathrm{softmax}(W_g h_t +
b_g)`, and picks an expert by a Gumbel-softmax whose temperature anneals towards zero, so each
entity learns to be reconstructed by one expert:

.. math:: z = \mathrm{softmax}\big((\log(\alpha + 10^{-10}) + g)/\tau\big), \quad
   \ell(e) = \big\lVert h_t(e) - \textstyle\sum_m z_m E_m(h_s(e)) \big\rVert^2

Users and items have experts and selectors of their own. The experts (:class:`ExpertMixture`)
are also HTD's group projectors (:mod:`recbole_mmkd.distill.topology`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from recbole_mmkd.distill.methods import (
    KDMethod,
    RelaxedRankingDistillation,
    register_kd_method,
)
from recbole_mmkd.distill.schedules import annealed_temperature
from recbole_mmkd.errors import ConfigError


def expert_widths(student_dim: int, teacher_dim: int, *, halve_equal: bool) -> list[int]:
    """An expert's layer widths: ``[d_s, (d_s + d_t) // 2, d_t]``; with ``halve_equal`` and
    ``d_s == d_t`` (DE's self-distillation case) the hidden layer is ``d_s // 2`` instead."""
    hidden = student_dim // 2 if halve_equal and student_dim == teacher_dim else None
    return [student_dim, hidden or (student_dim + teacher_dim) // 2, teacher_dim]


def gumbel_selection(gate_probs: torch.Tensor, gumbel: torch.Tensor, tau: float) -> torch.Tensor:
    r"""DE's relaxed expert choice :math:`\mathrm{softmax}((\log(\alpha + 10^{-10}) + g)/\tau)`
    per row (no straight-through estimator, as released); one expert: all ones."""
    if gate_probs.shape[-1] == 1:
        return torch.ones_like(gate_probs)
    return torch.softmax((torch.log(gate_probs + 1e-10) + gumbel) / tau, dim=-1)


class ExpertMixture(nn.Module):
    """``n_experts`` two-layer ReLU networks from the student's width to the teacher's, held as
    batched weights, and the selection network over them on the teacher's rows. Every weight
    and bias is drawn as PyTorch's default ``nn.Linear`` initialisation (the authors' code)."""

    def __init__(
        self, student_dim: int, teacher_dim: int, n_experts: int, *, halve_equal: bool
    ) -> None:
        super().__init__()
        d_s, hidden, d_t = expert_widths(student_dim, teacher_dim, halve_equal=halve_equal)
        self.w1 = nn.Parameter(_linear_init((n_experts, d_s, hidden), d_s))
        self.b1 = nn.Parameter(_linear_init((n_experts, 1, hidden), d_s))
        self.w2 = nn.Parameter(_linear_init((n_experts, hidden, d_t), hidden))
        self.b2 = nn.Parameter(_linear_init((n_experts, 1, d_t), hidden))
        self.gate = nn.Linear(teacher_dim, n_experts)

    def assignment(self, teacher: torch.Tensor) -> torch.Tensor:
        """The selection network's probabilities over the experts, ``(n, M)``."""
        return torch.softmax(self.gate(teacher), dim=-1)

    def mixed(self, student: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_m z_m E_m(h_s)` per row, ``(n, d_t)``, ``z`` ``(n, M)``: the first layer
        of every expert as one product, the mixing weights folded into the hidden units, the
        second layer as one product (never the ``(n, M, d_t)`` outputs: 2.5-3x faster forward
        and backward than expert by expert, 5,000 rows, 30 experts)."""
        n_experts, d_s, hidden = self.w1.shape
        first = student @ self.w1.transpose(0, 1).reshape(d_s, n_experts * hidden)
        units = torch.relu(first.view(-1, n_experts, hidden) + self.b1.view(1, n_experts, hidden))
        weighted = (units * z.unsqueeze(-1)).reshape(-1, n_experts * hidden)
        return weighted @ self.w2.reshape(n_experts * hidden, -1) + z @ self.b2.squeeze(1)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
        r""":math:`\sum_e \lVert h_t(e) - \sum_m z_{em} E_m(h_s(e)) \rVert^2` over these rows
        (summed, as the authors' code), :math:`z` the :func:`gumbel_selection` of the
        selection network's probabilities with fresh Gumbel noise: DE's loss and HTD's
        group-assignment loss."""
        probs = self.assignment(teacher)
        gumbel = -torch.log(-torch.log(torch.rand_like(probs).clamp_min(1e-20)))
        mixed = self.mixed(student, gumbel_selection(probs, gumbel, tau))
        return (teacher - mixed).pow(2).sum()


def _linear_init(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    bound = 1 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-bound, bound)


class AnnealedExperts(KDMethod):
    """What DE and HTD share: the teacher's tables, an :class:`ExpertMixture` per side (users,
    items) from the student's width to the teacher's, and the Gumbel-softmax temperature
    annealed at each epoch's start (:func:`~recbole_mmkd.distill.schedules.annealed_temperature`).
    ``count_key`` and ``prefix`` name the config keys of the expert count and the schedule."""

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        student_dim: int,
        experts: int,
        count_key: str,
        prefix: str,
        schedule: tuple[float, float, int],
        halve_equal: bool,
    ) -> None:
        super().__init__()
        if experts < 1:
            raise ConfigError("config", count_key, f"{experts} experts", "give at least 1")
        start, end, epochs = schedule
        if not 0 < end <= start:
            raise ConfigError(
                "config",
                f"{prefix}_tau_end",
                f"the temperature anneals from {start} to {end}, not from high to a positive low",
                f"give 0 < {prefix}_tau_end <= {prefix}_tau_start",
            )
        if epochs <= 0:
            raise ConfigError(
                "config", f"{prefix}_anneal_epochs", f"{epochs} is not positive", "give epochs > 0"
            )
        self.schedule, self.tau = schedule, start
        self.register_buffer("teacher_users", teacher_users, persistent=False)
        self.register_buffer("teacher_items", teacher_items, persistent=False)
        width = teacher_users.shape[1]
        self.user_experts = ExpertMixture(student_dim, width, experts, halve_equal=halve_equal)
        self.item_experts = ExpertMixture(student_dim, width, experts, halve_equal=halve_equal)

    def on_epoch_start(self, epoch: int) -> None:
        self.tau = annealed_temperature(epoch, *self.schedule)


@register_kd_method
class DistillationExperts(AnnealedExperts):
    r"""DE (Kang et al., CIKM 2020): the student's user and item rows, mapped through a mixture
    of experts chosen by Gumbel-softmax on the teacher's row, must reconstruct the teacher's
    rows. Per batch, with :math:`U_b, P_b, N_b` the distinct users, positive and negative items:

    .. math:: \mathcal{L}_{DE} = \frac1B\Big(\sum_{u \in U_b} \ell(u)
       + \tfrac12\big(\sum_{i \in P_b} \ell(i) + \sum_{j \in N_b} \ell(j)\big)\Big)

    Config: ``de_num_experts`` (M, authors' 30), ``de_tau_start``, ``de_tau_end``,
    ``de_anneal_epochs`` (:math:`\tau = \tau_0 (\tau_{end}/\tau_0)^{e/E}`, authors' 1 ->
    1e-10 over 1000 epochs); ``kd_weight`` is the authors' :math:`\lambda_{DE}` (0.01).

    Works at any student width: that is what the experts are for. The experts and selectors
    are parameters of the student (``kd.*``), trained with it.

    Deviations from the release: the sum over the batch is divided by the batch's rows ``B``
    (the project's BPR is a mean, the authors' a sum, so their :math:`\lambda` carries over);
    epoch ``e`` uses :math:`\tau(e)` (the release uses :math:`\tau_0` at epochs 0 and 1, then
    :math:`\tau(e-1)`); the authors' Adam weight decay on the experts is not applied (the
    project's students regularise their batch embeddings instead).
    """

    name = "de"
    config_keys = ("de_num_experts", "de_tau_start", "de_tau_end", "de_anneal_epochs")

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        student_dim: int,
        de_num_experts: int,
        de_tau_start: float,
        de_tau_end: float,
        de_anneal_epochs: int,
    ) -> None:
        super().__init__(
            teacher_users=teacher_users,
            teacher_items=teacher_items,
            student_dim=student_dim,
            experts=de_num_experts,
            count_key="de_num_experts",
            prefix="de",
            schedule=(de_tau_start, de_tau_end, de_anneal_epochs),
            halve_equal=True,
        )

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        positives, negatives = interaction_items.unbind(1)
        items = torch.cat([positives.unique(), negatives.unique()])
        distinct = users.unique()
        user_part = self.user_experts.loss(user_e[distinct], self.teacher_users[distinct], self.tau)
        item_part = self.item_experts.loss(item_e[items], self.teacher_items[items], self.tau)
        return (user_part + 0.5 * item_part) / users.shape[0]


@register_kd_method
class DERRD(KDMethod):
    r"""DE-RRD (Kang et al., CIKM 2020): RRD's ranking term and DE's embedding term together,

    .. math:: \mathcal{L} = \mathcal{L}_{RRD} + \rho\,\mathcal{L}_{DE}

    with :math:`\rho` = ``de_rrd_de_ratio`` and ``kd_weight`` as :math:`\lambda_{RRD}`; the
    authors' :math:`\lambda_{DE}/\lambda_{RRD} = 0.01/0.001` gives :math:`\rho = 10`. Config:
    :class:`DistillationExperts`' keys, :class:`RelaxedRankingDistillation`'s and
    ``de_rrd_de_ratio``.

    Deviations: the release has no script that trains both (``main_DE.py`` and
    ``main_URRD.py`` train one each); the sum of the two is the paper's objective. The
    project's RRD averages over the batch's distinct users while DE divides by the batch's
    rows, so :math:`\rho = 10` weighs DE by ``10 x distinct users / B`` against the authors'
    sums; and RRD's defaults here (``rrd_top_n`` 100, ``rrd_k`` 10) are not the authors' (500,
    40): set them for the paper's setup.
    """

    name = "de_rrd"
    config_keys = (
        *DistillationExperts.config_keys,
        *RelaxedRankingDistillation.config_keys,
        "de_rrd_de_ratio",
    )

    def __init__(
        self, *, experts: DistillationExperts, ranking: RelaxedRankingDistillation, ratio: float
    ) -> None:
        super().__init__()
        self.experts, self.ranking, self.ratio = experts, ranking, ratio

    @classmethod
    def from_config(cls, config: Any, **given: Any) -> DERRD:
        """Its two parts, each from ``config`` with what :meth:`KDMethod.from_config` gives."""
        return cls(
            experts=DistillationExperts.from_config(config, **given),
            ranking=RelaxedRankingDistillation.from_config(config, **given),
            ratio=config["de_rrd_de_ratio"],
        )

    def on_epoch_start(self, epoch: int) -> None:
        self.experts.on_epoch_start(epoch)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        ranking = self.ranking.loss(user_e, item_e, users, interaction_items)
        experts = self.experts.loss(user_e, item_e, users, interaction_items)
        return ranking + self.ratio * experts
