r"""DCD, Dual Correction Distillation (Lee and Kim, "Dual Correction Strategy for Ranking
Distillation in Top-N Recommender System", CIKM 2021), read line by line from the authors'
release (``dudwns511/DCD_CIKM21``: ``run_dcd.py``, ``Utils/dcd_loss.py``); the specification,
with line references, is section 4 of ``docs/releases/kd_methods.md``.

Each user has the teacher's top-:math:`M` items :math:`\pi_u` and each item the teacher's
top-:math:`M` users :math:`\pi_i` (training interactions and padding excluded). Every
``dcd_update_every`` epochs the student ranks each list's entries among the list only; with
:math:`d = r^S - r^T` (student rank minus teacher rank, 0-based) an entry weighs

.. math:: w^+ = \tanh(\max(d/\varepsilon, 0)), \qquad w^- = \tanh(\max(-d/\varepsilon, 0))

(under- and over-estimated by the student). Each batch draws, per distinct user, :math:`K`
list positions without replacement :math:`\propto w^+` (kept in teacher order) and :math:`K`
:math:`\propto w^-` (unordered), and the same per distinct positive item over its user list;
the under-estimated entries, in teacher order, must rank above the over-estimated ones, by the
Plackett-Luce loss of DE-RRD's RRD summed over rows:

.. math:: \mathcal{L}_{KD} = \frac{1}{B}\Big(\sum_{u \in U_b} PL(s(u, \text{under}_u) \succ
   s(u, \text{over}_u)) + \lambda_{ICD} \sum_{i \in P_b} PL(s(\text{under}_i, i) \succ
   s(\text{over}_i, i))\Big) \;[+\ \lambda_{RKD}\, \mathcal{L}_{RRD}]

with :math:`B` the batch's rows. Config keys: ``dcd_top_m`` (:math:`M`), ``dcd_k``
(:math:`K`), ``dcd_eps`` (:math:`\varepsilon`; the release's multiplier ``ep`` is
:math:`1/\varepsilon`), ``dcd_update_every``, ``dcd_icd_weight`` (:math:`\lambda_{ICD} /
\lambda_{UCD}`, with ``kd_weight`` = :math:`\lambda_{UCD}`), ``dcd_rkd_weight``
(:math:`\lambda_{RKD}`), and rrd's ``rrd_top_n``, ``rrd_k``, ``rrd_l``, ``rrd_temperature``,
``kd_shared_items`` (used only when ``dcd_rkd_weight`` > 0).

Deviations from the release, and choices where it says nothing:

* Loss scale: the release adds the per-batch sums to a summed BPR loss; here the sum is divided
  by :math:`B` (the project's rule: its BPR is a mean), so the release's :math:`\lambda_{UCD}`
  carries over as ``kd_weight``.
* Both weights are floored at ``1e-5`` (as RCEKD's re-implementation), so that drawing
  :math:`K` positions without replacement works when fewer than :math:`K` entries have a
  positive weight; the release has no guard. An entry with a floored weight can then be drawn
  on both sides.
* :math:`\varepsilon` and :math:`K` are not published (the release has no argument parser):
  the defaults are RCEKD's ``dcd_T: 10`` and DE-RRD's ``U_K`` 40. :math:`M` = 500 and the
  3-epoch period are the release's.
* No :math:`\mathcal{L}_{RKD}` by default, as the release (the paper names it);
  ``dcd_rkd_weight`` > 0 adds the project's ``rrd`` term, which keeps its own scale (mean over
  the batch's distinct users).
* The teacher lists exclude training interactions and padding; the release reads its lists
  from files not in the repository.
* The student's ranks are refreshed from the tables of the refresh epoch's first batch (the
  parameters the release's epoch-start evaluation sees, without a second forward pass); tied
  student scores keep the teacher's order (a stable sort).
* Sampling per batch, from the weights of the last refresh, is the release's own; its batch
  halving (to save memory) does not change the loss and is not reproduced. The draws without
  replacement are by Gumbel top-k, the distribution of the release's ``torch.multinomial``
  at a third of its cost here.
"""

from __future__ import annotations

from typing import Literal

import scipy.sparse as sp
import torch

from recbole_mmkd.distill.losses import relaxed_ranking_rows
from recbole_mmkd.distill.methods import (
    KDMethod,
    RelaxedRankingDistillation,
    gumbel_top_k,
    register_kd_method,
    scores,
    teacher_top_items,
)
from recbole_mmkd.errors import ConfigError

WEIGHT_FLOOR = 1e-5  # RCEKD's floor on both discrepancy weights


def student_ranks(student_scores: torch.Tensor) -> torch.Tensor:
    """Each entry's 0-based rank within its row when the row is sorted by ``student_scores``
    descending (ties keep the row's order): ``(R, M)`` long."""
    order = (-student_scores).argsort(dim=-1, stable=True)
    return order.argsort(dim=-1, stable=True)


def discrepancy_weights(
    student_scores: torch.Tensor, eps: float, *, floor: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""DCD's under- and over-estimation weights of the entries of teacher lists.

    ``student_scores`` ``(R, M)``: the student's scores of each row's list, the list in the
    teacher's order (entry :math:`m` has teacher rank :math:`m`). With :math:`d` = student rank
    (within the list) minus teacher rank, returns :math:`w^+ = \tanh(\max(d/\varepsilon, 0))`
    and :math:`w^- = \tanh(\max(-d/\varepsilon, 0))`, each at least ``floor``, in the scores'
    dtype (``run_dcd.py:107-131``; the floor is RCEKD's).
    """
    if eps <= 0:
        raise ValueError(f"dcd epsilon must be positive, got {eps}")
    ranks = student_ranks(student_scores)
    teacher = torch.arange(ranks.shape[-1], device=ranks.device)
    gap = (ranks - teacher).to(student_scores.dtype) / eps
    w_plus = torch.tanh(gap.clamp_min(0)).clamp_min(floor)
    w_minus = torch.tanh((-gap).clamp_min(0)).clamp_min(floor)
    return w_plus, w_minus


def draw_positions(
    w_plus: torch.Tensor, w_minus: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``k`` list positions per row drawn without replacement with probability proportional to
    ``w_plus`` (the under-estimated entries, sorted ascending: teacher order) and ``k`` to
    ``w_minus`` (the over-estimated ones, unordered), as ``run_dcd.py:150-193``. Each row
    needs at least ``k`` positive weights on each side. Drawn by Gumbel top-k (the ``k``
    largest :math:`\log w + g`, :math:`g` Gumbel noise), the same distribution as
    ``torch.multinomial`` without replacement, which costs 3x more here."""
    under = gumbel_top_k(w_plus, k).sort(dim=1).values
    return under, gumbel_top_k(w_minus, k)


def _most_seen(seen: sp.csr_matrix) -> int:
    """The largest number of non-padding columns any row of ``seen`` has."""
    counts = (seen[:, 1:] > 0).sum(axis=1)
    return int(counts.max()) if seen.shape[0] else 0


@register_kd_method
class DualCorrectionDistillation(KDMethod):
    r"""DCD (Lee and Kim, CIKM 2021), see the module's docstring for the loss, its keys and
    every deviation from the authors' release.

    Holds the teacher's top-``dcd_top_m`` items per user (``user_top``) and users per item
    (``item_top``), and the discrepancy weights of their entries (``user_w_plus``,
    ``user_w_minus``, ``item_w_plus``, ``item_w_minus``), recomputed from the student's tables
    at the first :meth:`loss` after :meth:`on_epoch_start` of an epoch that is a multiple of
    ``dcd_update_every`` (and at the first :meth:`loss` of all). ``chunk`` rows are scored at a
    time during a refresh.
    """

    name = "dcd"
    config_keys = (
        "dcd_top_m",
        "dcd_k",
        "dcd_eps",
        "dcd_update_every",
        "dcd_icd_weight",
        "dcd_rkd_weight",
        *RelaxedRankingDistillation.config_keys,  # only used when dcd_rkd_weight > 0
    )

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        seen: sp.csr_matrix,
        n_items: int,
        dcd_top_m: int,
        dcd_k: int,
        dcd_eps: float,
        dcd_update_every: int,
        dcd_icd_weight: float,
        dcd_rkd_weight: float,
        rrd_top_n: int,
        rrd_k: int,
        rrd_l: int,
        rrd_temperature: float,
        kd_shared_items: bool,
        chunk: int = 256,
    ) -> None:
        super().__init__()
        self._check(dcd_top_m, dcd_k, dcd_eps, dcd_update_every, dcd_icd_weight, dcd_rkd_weight)
        seen_t = seen.T.tocsr()
        n_users = teacher_users.shape[0]
        for key, entities, rows, count in (
            ("items", "user", n_items, _most_seen(seen)),
            ("users", "item", n_users, _most_seen(seen_t)),
        ):
            left = rows - 1 - count
            if dcd_top_m > left:
                raise ConfigError(
                    "config",
                    "dcd_top_m",
                    f"dcd_top_m {dcd_top_m} exceeds the {left} {key} left to list for the "
                    f"most active {entities} ({rows} less padding and its {count} training "
                    f"{key})",
                    f"set dcd_top_m to at most {left}",
                )
        self.k, self.eps, self.update_every = dcd_k, dcd_eps, dcd_update_every
        self.icd_weight, self.rkd_weight, self.chunk = dcd_icd_weight, dcd_rkd_weight, chunk
        users_top = teacher_top_items(teacher_users, teacher_items, seen, dcd_top_m)
        items_top = teacher_top_items(teacher_items, teacher_users, seen_t, dcd_top_m)
        self.register_buffer("user_top", users_top, persistent=False)
        self.register_buffer("item_top", items_top, persistent=False)
        unset = torch.empty(0, dcd_top_m, dtype=teacher_users.dtype)  # until the first refresh
        for name in ("user_w_plus", "user_w_minus", "item_w_plus", "item_w_minus"):
            self.register_buffer(name, unset.clone(), persistent=False)
        self.rrd: RelaxedRankingDistillation | None = None
        if dcd_rkd_weight > 0:
            self.rrd = RelaxedRankingDistillation(
                teacher_users=teacher_users,
                teacher_items=teacher_items,
                seen=seen,
                n_items=n_items,
                rrd_top_n=rrd_top_n,
                rrd_k=rrd_k,
                rrd_l=rrd_l,
                rrd_temperature=rrd_temperature,
                kd_shared_items=kd_shared_items,
            )
        self._stale = True

    @staticmethod
    def _check(
        top_m: int, k: int, eps: float, update_every: int, icd_weight: float, rkd_weight: float
    ) -> None:
        """A :class:`ConfigError` for settings DCD cannot run with."""
        problems = (
            (k < 1, "dcd_k", f"dcd_k {k} must be at least 1", "set dcd_k to 1 or more"),
            (
                k > top_m,
                "dcd_k",
                f"dcd_k {k} exceeds dcd_top_m {top_m}: {k} entries cannot be drawn without "
                f"replacement from a list of {top_m}",
                "lower dcd_k or raise dcd_top_m",
            ),
            (eps <= 0, "dcd_eps", f"dcd_eps {eps} must be positive", "set dcd_eps above 0"),
            (
                update_every < 1,
                "dcd_update_every",
                f"dcd_update_every {update_every} must be at least 1",
                "set dcd_update_every to 1 or more epochs",
            ),
            (
                icd_weight < 0,
                "dcd_icd_weight",
                f"dcd_icd_weight {icd_weight} is negative",
                "set dcd_icd_weight to 0 (no item side) or more",
            ),
            (
                rkd_weight < 0,
                "dcd_rkd_weight",
                f"dcd_rkd_weight {rkd_weight} is negative",
                "set dcd_rkd_weight to 0 (the release) or more",
            ),
        )
        for bad, key, problem, fix in problems:
            if bad:
                raise ConfigError("config", key, problem, fix)

    def on_epoch_start(self, epoch: int) -> None:
        """Mark the student's ranks for a refresh at the next :meth:`loss` when ``epoch`` is a
        multiple of ``dcd_update_every`` (``run_dcd.py:67``)."""
        if epoch % self.update_every == 0:
            self._stale = True

    @torch.no_grad()
    def refresh(self, user_e: torch.Tensor, item_e: torch.Tensor) -> None:
        """Recompute the discrepancy weights of both sides' lists from the student's tables
        (replacing the weight buffers)."""
        user_e, item_e = user_e.detach(), item_e.detach()
        self.user_w_plus, self.user_w_minus = self._list_weights(user_e, item_e, self.user_top)
        self.item_w_plus, self.item_w_minus = self._list_weights(item_e, user_e, self.item_top)
        self._stale = False

    def _list_weights(
        self, rows_e: torch.Tensor, entries_e: torch.Tensor, top: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`discrepancy_weights` of every row's list ``top``, ``chunk`` rows at a time."""
        plus, minus = [], []
        for start in range(0, top.shape[0], self.chunk):
            block = top[start : start + self.chunk]
            student = scores(rows_e[start : start + self.chunk], entries_e[block])
            w_plus, w_minus = discrepancy_weights(student, self.eps, floor=WEIGHT_FLOOR)
            plus.append(w_plus)
            minus.append(w_minus)
        return torch.cat(plus), torch.cat(minus)

    def sample(
        self, rows: torch.Tensor, *, side: Literal["user", "item"]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The under-estimated (teacher order) and over-estimated entries drawn for ``rows``
        (users for ``side="user"``, items for ``"item"``): two ``(R, dcd_k)`` id tensors, items
        for users and users for items. Needs a :meth:`refresh` first."""
        if side == "user":
            top, w_plus, w_minus = self.user_top, self.user_w_plus, self.user_w_minus
        else:
            top, w_plus, w_minus = self.item_top, self.item_w_plus, self.item_w_minus
        lists = top[rows]
        under, over = draw_positions(w_plus[rows], w_minus[rows], self.k)
        return lists.gather(1, under), lists.gather(1, over)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        if self._stale:
            self.refresh(user_e, item_e)
        rows = users.unique()
        under, over = self.sample(rows, side="user")
        user_rows = user_e[rows]
        total = relaxed_ranking_rows(
            scores(user_rows, item_e[under]), scores(user_rows, item_e[over])
        ).sum()
        if self.icd_weight:
            positives = interaction_items[:, 0].unique()
            under, over = self.sample(positives, side="item")
            item_rows = item_e[positives]
            icd = relaxed_ranking_rows(
                scores(item_rows, user_e[under]), scores(item_rows, user_e[over])
            ).sum()
            total = total + self.icd_weight * icd
        total = total / users.shape[0]
        if self.rrd is not None:
            total = total + self.rkd_weight * self.rrd.loss(
                user_e, item_e, users, interaction_items
            )
        return total
