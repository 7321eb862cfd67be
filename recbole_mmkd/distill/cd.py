r"""Collaborative Distillation (Lee, Choi, Lee and Shim, "Collaborative Distillation for Top-N
Recommendation", ICDM 2019), as the public re-implementations run it: no authors' code exists;
the UnKD authors' CD baseline (chengang95/UnKD ``sample.py``) and RCEKD's agree on everything
below (docs/releases/kd_methods.md section 1).

Each user's unobserved items are ranked (by the teacher, or by the student every epoch), a
handful drawn with a preference for the top by a two-way rank tournament, and the student's
probability :math:`\sigma(s_{ui})` of each is fitted to the teacher's soft label
:math:`q_{ui} = \sigma((t_{ui} + b)/T)` by binary cross-entropy.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recbole_mmkd.distill.methods import (
    KDMethod,
    gumbel_top_k,
    register_kd_method,
    scores,
    teacher_top_items,
)
from recbole_mmkd.errors import ConfigError

CD_STRATEGIES = ("teacher", "student")


def tournament_probabilities(n: int, temperature: float) -> torch.Tensor:
    r"""The probability that rank :math:`r` (1..n) wins a tournament of two ranks drawn i.i.d.
    with :math:`w_r \propto e^{-r/(n\tau)}`: the better (smaller) rank is kept, so
    :math:`P(r) = W_{\ge r}^2 - W_{> r}^2` with :math:`W` the tail sums of the normalised
    weights."""
    weights = torch.exp(-torch.arange(1, n + 1, dtype=torch.float64) / (n * temperature))
    tail = (weights / weights.sum()).flip(0).cumsum(0).flip(0)  # W_{>= r}
    after = torch.cat([tail[1:], tail.new_zeros(1)])  # W_{> r}
    return (tail.pow(2) - after.pow(2)).float()


def collaborative_distillation(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float,
    bias: float,
    *,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    r""":math:`\mathrm{mean}\ \mathrm{BCE}(\sigma(s), \sigma((t + b)/T))` over all entries: the
    student's probability of each sampled item fitted to the teacher's soft label; with
    ``rows``, each row of entries counts that many times (the batch rows sharing a user)."""
    losses = F.binary_cross_entropy_with_logits(
        student, torch.sigmoid((teacher + bias) / temperature), reduction="none"
    )
    if rows is None:
        return losses.mean()
    weights = rows.to(losses.dtype).unsqueeze(1)
    return (losses * weights).sum() / (weights.sum() * losses.shape[1])


@register_kd_method
class CollaborativeDistillation(KDMethod):
    r"""CD (Lee et al., ICDM 2019): for each batch row's user, ``cd_n_items`` distinct items
    drawn from the ranker's top-``cd_top_n`` unobserved items, rank :math:`r` winning with
    :func:`tournament_probabilities` (repeated tournaments until the set is full, which is
    sampling those probabilities without replacement), and

    .. math:: \mathcal{L}_{CD} = \mathrm{mean}_{b,\,i \in S_{u_b}}
       -\big[q_{ui} \log \sigma(s_{ui}) + (1 - q_{ui}) \log(1 - \sigma(s_{ui}))\big],
       \quad q_{ui} = \sigma\big((t_{ui} + b)/T\big)

    mean over the batch's rows as they come and their items (as the UnKD authors' baseline),
    computed once per distinct user and weighted by its rows, which share its items.

    Config: ``cd_top_n`` (N, 3000), ``cd_n_items`` (50), ``cd_rank_temperature`` (20),
    ``cd_t`` (T, 2), ``cd_bias`` (b, 0), ``cd_strategy``: ``teacher`` (the ranking computed
    once from the teacher, which is what the UnKD authors' baseline runs under the name
    "student guide") or ``student`` (re-ranked from the student's current tables at each
    epoch's first batch, RCEKD's reading of the paper's student-guided training). ``kd_weight``
    is :math:`\lambda_{CD}` (the UnKD baseline's 1.0).

    Each user's set is drawn afresh at the first batch of every epoch (RCEKD's schedule; the
    UnKD baseline draws once per run), all users at once by Gumbel top-k over the log
    probabilities, which samples without replacement as the tournaments do.

    Deviations: the paper's equations could not be read (no authors' code); the loss is
    computed stably from logits (the re-implementations add 1e-10 inside the logs).
    """

    name = "cd"
    config_keys = (
        "cd_top_n",
        "cd_n_items",
        "cd_rank_temperature",
        "cd_t",
        "cd_bias",
        "cd_strategy",
    )

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        seen: sp.csr_matrix,
        n_items: int,
        cd_top_n: int,
        cd_n_items: int,
        cd_rank_temperature: float,
        cd_t: float,
        cd_bias: float,
        cd_strategy: str,
    ) -> None:
        super().__init__()
        unseen = n_items - 1 - int(seen.getnnz(axis=1).max(initial=0))
        if not 1 <= cd_n_items <= cd_top_n <= unseen:
            raise ConfigError(
                "config",
                "cd_top_n",
                f"cd needs 1 <= cd_n_items <= cd_top_n <= {unseen} (the fewest unobserved "
                f"items of a user); got cd_n_items {cd_n_items}, cd_top_n {cd_top_n}",
                "lower cd_top_n (and cd_n_items) to fit the dataset",
            )
        for key, value in (("cd_t", cd_t), ("cd_rank_temperature", cd_rank_temperature)):
            if value <= 0:
                raise ConfigError("config", key, f"{value} is not positive", "give a value > 0")
        if cd_strategy not in CD_STRATEGIES:
            raise ConfigError(
                "config", "cd_strategy", f"unknown {cd_strategy!r}", f"use one of {CD_STRATEGIES}"
            )
        self.n_items, self.top_n, self.n_sampled = n_items, cd_top_n, cd_n_items
        self.temperature, self.bias = cd_t, cd_bias
        self.student_guided = cd_strategy == "student"
        self.seen = seen
        self.stale = True  # the sets (and a student's ranking) are drawn at the first batch
        self.register_buffer("teacher_users", teacher_users, persistent=False)
        self.register_buffer("teacher_items", teacher_items, persistent=False)
        probs = tournament_probabilities(cd_top_n, cd_rank_temperature)
        if int((probs > 0).sum()) < cd_n_items:
            raise ConfigError(
                "config",
                "cd_rank_temperature",
                f"{cd_rank_temperature} leaves fewer than cd_n_items {cd_n_items} ranks a "
                "positive probability in float32",
                "raise cd_rank_temperature (the re-implementations use 20)",
            )
        self.register_buffer("rank_probs", probs, persistent=False)
        ranking = teacher_users.new_zeros((0, cd_top_n), dtype=torch.long)
        if not self.student_guided:
            ranking = teacher_top_items(teacher_users, teacher_items, seen, cd_top_n)
        self.register_buffer("ranking", ranking, persistent=False)
        self.register_buffer("sampled", ranking.new_zeros((0, cd_n_items)), persistent=False)

    def on_epoch_start(self, epoch: int) -> None:
        self.stale = True

    @torch.no_grad()
    def redraw(self, user_e: torch.Tensor, item_e: torch.Tensor, *, chunk: int = 1024) -> None:
        """Every user's items for this epoch (re-ranking them by the student's tables first
        when student-guided), ``chunk`` users at a time."""
        if self.student_guided:
            self.ranking = teacher_top_items(user_e, item_e, self.seen, self.top_n)
        sets = []
        for start in range(0, self.ranking.shape[0], chunk):
            rows = self.ranking[start : start + chunk]
            picks = gumbel_top_k(self.rank_probs.expand(rows.shape[0], -1), self.n_sampled)
            sets.append(rows.gather(1, picks))
        self.sampled = torch.cat(sets)
        self.stale = False

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        if self.stale:
            self.redraw(user_e.detach(), item_e.detach())
        distinct, counts = users.unique(return_counts=True)  # a user's rows share its items
        items = self.sampled[distinct]
        student = scores(user_e[distinct], item_e[items])
        teacher = scores(self.teacher_users[distinct], self.teacher_items[items])
        return collaborative_distillation(
            student, teacher, self.temperature, self.bias, rows=counts
        )
