r"""UnKD, Unbiased Knowledge Distillation (Chen, Chen, Feng, Zhou and He, "Unbiased Knowledge
Distillation for Recommendation", WSDM 2023), read from the authors' release
``chengang95/UnKD`` (``UnKD/dataloader.py`` ``splitGroup``, ``UnKD/sample.py`` class ``UnKD``);
``docs/releases/kd_methods.md`` section 5 gives the line-by-line reading.

The items are split into popularity groups of roughly equal training-interaction mass
(:func:`popularity_groups`). Within each group, each user's unseen items are ranked by the
teacher, and the student learns the teacher's order from pairs of ranks drawn with weights
:math:`w_r \propto e^{-r/\mu}`, so popular items cannot crowd the distilled ranking:

.. math:: \mathcal{L}_{UnKD} = \operatorname{mean}_{b}\,\operatorname{mean}_{(p, q) \in S_{u_b}}
   -\log \sigma\big(s(u_b, p) - s(u_b, q)\big)

where :math:`S_u` holds :math:`n_g` pairs per group :math:`g` (:func:`group_pairs`), :math:`p`
the teacher's better-ranked item of the pair. The student's objective is its own (mean) loss
plus ``kd_weight`` times this mean, as in the release (its ``kd_weight`` is 1.0).

Config keys (``properties/model/KD.yaml``): ``unkd_groups`` (G, 2), ``unkd_pairs`` (n, 30),
``unkd_lambda`` (:math:`\lambda`, 0.0: equal shares), ``unkd_mu`` (:math:`\mu`, 20.0),
``unkd_top`` (candidates per user and group, 1000).

Deviations from the release, all listed again on :class:`UnbiasedKD`:

* None in when pairs are drawn: once per epoch for every user, as the release; a batch's rows
  of one user share its pairs, so the loss is computed once per distinct user and weighted by
  its rows (the release's mean over rows, without scoring the same pairs again).
* Items of equal popularity are ordered by item id (the release: first appearance in its
  training list); the padding item 0 and items without training interactions join no group.
* A tied pair of ranks is redrawn alone; the release redraws all of a user's pairs in the
  group when any pair ties, which gives the same (tie-free, independent) distribution.
* A user with fewer than 2 candidates in a group gets no pair there: those pairs are masked
  out of the mean (the release would loop for ever). The loss is the mean over the pairs kept,
  which is the release's mean of per-row means whenever no pair is masked.
* :math:`\mu` and the candidate count are settings (the release hard-codes 20 and 1000);
  ``unkd_top`` must be at least 2.
* The teacher score is :math:`\langle U_u, I_i\rangle` of the stored teacher tables (the
  release calls its teacher model, for MF the same inner product).
* The release's per-user group weights (``user_group_ratio``, stored as ``item_tag``) are
  computed but never used in its loss; they are not computed here. Its ``+1e-10`` inside the
  log is replaced by ``logsigmoid``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recbole_mmkd.distill.methods import KDMethod, register_kd_method, scores
from recbole_mmkd.errors import ConfigError


def popularity_groups(popularity: Sequence[float] | np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Items split into groups of roughly equal interaction mass, most popular group first
    (the release's ``splitGroup``, ``dataloader.py:285-325``).

    ``popularity[i]`` is item ``i``'s number of training interactions; items with none join no
    group. Items are taken by popularity descending, ties by item id. With target
    ``A = sum(popularity) / n_groups`` and running mass ``c`` of the open group, an item that
    makes ``c > A`` closes the group: alone, it forms the group; otherwise it opens the next
    group. The last open group is kept if its mass exceeds ``A / 2`` and merged into the
    previous one otherwise, so fewer than ``n_groups`` groups can result. Returns each group's
    item ids (int64, in the order taken)."""
    pop = np.asarray(popularity, dtype=np.float64)
    ids = np.flatnonzero(pop > 0)
    order = ids[np.argsort(-pop[ids], kind="stable")]  # ids ascending within equal popularity
    target = pop[ids].sum() / n_groups
    groups: list[list[int]] = []
    current: list[int] = []
    mass = 0.0
    for item in order.tolist():
        current.append(item)
        mass += pop[item]
        if mass > target:
            if len(current) == 1:
                groups.append(current)
                current, mass = [], 0.0
                continue
            current.pop()
            groups.append(current)
            current, mass = [item], pop[item]
    if current:
        if mass > target / 2 or not groups:
            groups.append(current)
        else:
            groups[-1].extend(current)
    return [np.asarray(group, dtype=np.int64) for group in groups]


def group_pairs(mean_popularity: Sequence[float], n_pairs: int, lam: float) -> list[int]:
    r"""Pairs per user in each group (``dataloader.py:329-352``, ``sample.py:591-604,638-647``).

    With :math:`m_g` the groups' mean popularity,
    :math:`\rho_g = (\max m + \min m - m_g) / \sum_h (\max m + \min m - m_h)`, rounded to 2
    decimals and floored at 0.1; the share of group :math:`g` is
    :math:`\rho_g^\lambda / \sum_h \rho_h^\lambda` and its count ``round(share * n_pairs)``
    (Python's round, half to even). If the counts sum below ``n_pairs``, the first groups get
    one more each until they do not (a sum above ``n_pairs`` is kept, as in the release)."""
    means = [float(m) for m in mean_popularity]
    high, low = max(means), min(means)
    raw = [high + low - m for m in means]
    total = sum(raw)
    rho = [max(round(r / total, 2), 0.1) for r in raw]
    powered = [math.pow(r, lam) for r in rho]
    norm = sum(powered)
    counts = [round(p / norm * n_pairs) for p in powered]
    short = n_pairs - sum(counts)
    return [c + 1 if g < short else c for g, c in enumerate(counts)]


def rank_weights(length: int, mu: float) -> torch.Tensor:
    r"""Unnormalised draw weights of ranks :math:`r = 1..` ``length``:
    :math:`e^{-(r-1)/\mu}`, i.e. the release's :math:`e^{-r/\mu}` times the constant
    :math:`e^{1/\mu}` (the same distribution, with the best rank's weight 1, so it cannot
    underflow)."""
    return torch.exp(-torch.arange(length, dtype=torch.float32) / mu)


def draw_rank_pairs(
    weights: torch.Tensor,
    lengths: torch.Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
    max_rounds: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` tie-free rank pairs per row (0-based ranks, ``(R, n)`` each: the better rank, then
    the worse): for row ``r`` two ranks are drawn independently with probability proportional
    to ``weights[:lengths[r]]`` and the pair is redrawn while they are equal
    (``sample.py:654-672``). ``lengths`` ``(R,)`` must be at least 2 and at most
    ``len(weights)``; draws are by inverse CDF, on ``weights``' device."""
    cdf = weights.cumsum(0)
    last = (lengths.to(weights.device).long() - 1).unsqueeze(1)  # (R, 1)
    total = cdf[last]

    def draw(rows_total: torch.Tensor, rows_last: torch.Tensor, shape: tuple[int, ...]):
        u = torch.rand(shape, generator=generator, device=weights.device, dtype=cdf.dtype)
        ranks = torch.searchsorted(cdf, u * rows_total, right=True)
        return torch.minimum(ranks, rows_last)  # a u rounded up onto the total

    rows = lengths.shape[0]
    a = draw(total, last, (rows, n))
    c = draw(total, last, (rows, n))
    for _ in range(max_rounds):
        tied = (a == c).nonzero(as_tuple=True)
        if tied[0].numel() == 0:
            return torch.minimum(a, c), torch.maximum(a, c)
        row = tied[0]
        a[tied] = draw(total[row, 0], last[row, 0], (row.shape[0],))
        c[tied] = draw(total[row, 0], last[row, 0], (row.shape[0],))
    raise RuntimeError(
        f"rank pairs still tied after {max_rounds} redraws: the rank weights are too steep "
        "(raise unkd_mu)"
    )


def unkd_pair_loss(diff: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""UnKD's distillation loss (``sample.py:681-694``): the mean of
    :math:`-\log\sigma(s(u, p) - s(u, q))` over the student's score differences ``diff``
    (teacher-preferred item first), weighted by ``weights`` if given (a 0/1 mask, or how many
    rows share an entry; 0 when they keep none)."""
    losses = -F.logsigmoid(diff)
    if weights is None:
        return losses.mean()
    keep = weights.to(losses.dtype)
    return (losses * keep).sum() / keep.sum().clamp(min=1)


def group_candidates(
    teacher_users: torch.Tensor,
    teacher_items: torch.Tensor,
    seen: sp.csr_matrix,
    groups: Sequence[np.ndarray],
    top: int,
    *,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each user's candidates in each group (``sample.py:605-628``): the group's items the
    user has no training interaction with (``seen``: users x items csr), by teacher score
    ``teacher_users @ teacher_items.T`` descending, the first ``top``. Returns ``(n_users, G,
    L)`` int32 item ids padded with -1 (``L`` the longest list possible, at least 2) and their
    ``(n_users, G)`` lengths; computed ``chunk`` users at a time, so memory stays
    ``chunk x n_items``, on the teacher tables' device."""
    device = teacher_users.device
    ids = [torch.as_tensor(group, dtype=torch.long, device=device) for group in groups]
    width = max(2, min(top, max(len(group) for group in groups)))
    n_users = teacher_users.shape[0]
    candidates = torch.full((n_users, len(ids), width), -1, dtype=torch.int32, device=device)
    lengths = torch.zeros((n_users, len(ids)), dtype=torch.long, device=device)
    with torch.no_grad():
        for start in range(0, n_users, chunk):
            block = teacher_users[start : start + chunk] @ teacher_items.T
            interacted = torch.from_numpy(seen[start : start + chunk].toarray() > 0)
            block[interacted.to(device)] = float("-inf")
            end = start + block.shape[0]
            for g, items in enumerate(ids):
                values, picks = block[:, items].topk(min(top, items.shape[0]), dim=1)
                kept = values > float("-inf")  # unseen ones come first
                chosen = torch.where(kept, items[picks], -1)
                candidates[start:end, g, : chosen.shape[1]] = chosen.to(torch.int32)
                lengths[start:end, g] = kept.sum(1)
    return candidates, lengths


@register_kd_method
class UnbiasedKD(KDMethod):
    r"""UnKD (Chen et al., "Unbiased Knowledge Distillation for Recommendation", WSDM 2023):
    per popularity group :math:`g`, teacher-ordered pairs of each user's unseen items,

    .. math:: \mathcal{L} = \operatorname{mean}_{b,\,g,\,(p, q)} -\log\sigma\big(s(u_b, p)
       - s(u_b, q)\big)

    with :math:`n_g` pairs per row and group (:func:`group_pairs`), ranks drawn from the
    user's teacher-ranked candidates in the group with :math:`w_r \propto e^{-r/\mu}`, tied
    ranks redrawn, :math:`p` the better-ranked item. Keys: ``unkd_groups`` (G),
    ``unkd_pairs`` (n), ``unkd_lambda`` (:math:`\lambda`), ``unkd_mu`` (:math:`\mu`),
    ``unkd_top`` (candidates per user and group).

    Precomputed once, as non-persistent buffers: ``group_of_item`` (-1: no group),
    ``candidates`` / ``candidate_lengths`` (:func:`group_candidates`) and ``rank_weights``.
    The student's width may differ from the teacher's: only the student's scores enter the loss.

    Deviations from the authors' release (module docstring for details):

    * pairs are drawn once per epoch for every user, as the release; the rows of a batch that
      share a user share its pairs, so the loss is computed once per distinct user, weighted
      by its rows (the release's mean over rows, computed once);
    * popularity ties are broken by item id, and the padding item 0 joins no group;
    * the teacher score is the inner product of the stored teacher tables (the release calls
      its MF teacher: the same);
    * a tied pair is redrawn alone, not with all of the user's pairs in the group (same
      distribution);
    * pairs of a user and group with fewer than 2 candidates are masked out of the mean (the
      release cannot run there);
    * ``unkd_mu`` and ``unkd_top`` are settings (the release: 20 and 1000), and ``unkd_top``
      must be at least 2;
    * the unused per-user group weights are not computed, and ``logsigmoid`` replaces the
      release's ``log(sigmoid + 1e-10)``.
    """

    name = "unkd"
    config_keys = ("unkd_groups", "unkd_pairs", "unkd_lambda", "unkd_mu", "unkd_top")

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        seen: sp.csr_matrix,
        unkd_groups: int,
        unkd_pairs: int,
        unkd_lambda: float,
        unkd_mu: float,
        unkd_top: int,
    ) -> None:
        super().__init__()
        for key, value, least in (
            ("unkd_groups", unkd_groups, 2),
            ("unkd_pairs", unkd_pairs, 1),
            ("unkd_top", unkd_top, 2),
        ):
            if value < least:
                raise ConfigError(
                    "config",
                    key,
                    f"{key} is {value}, UnKD needs at least {least}",
                    f"set {key} to {least} or more",
                )
        if not (unkd_mu > 0 and rank_weights(2, unkd_mu)[1] > 0):
            raise ConfigError(
                "config",
                "unkd_mu",
                f"unkd_mu is {unkd_mu}: the second rank's weight exp(-1 / mu) must be positive "
                "in float32",
                "set unkd_mu to 0.02 or more (the release uses 20)",
            )
        popularity = np.asarray(seen.sum(axis=0), dtype=np.float64).ravel()
        popularity[0] = 0.0  # the padding item
        groups = popularity_groups(popularity, unkd_groups)
        if len(groups) < 2:
            raise ConfigError(
                "config",
                "unkd_groups",
                f"the training interactions form {len(groups)} popularity group(s) of equal "
                f"mass with unkd_groups {unkd_groups}, UnKD needs at least 2",
                "raise unkd_groups, or use a dataset whose interactions spread over more items",
            )
        means = [float(popularity[group].mean()) for group in groups]
        self.pairs_per_group = group_pairs(means, unkd_pairs, unkd_lambda)
        self.group_sizes = [len(group) for group in groups]
        group_of_item = torch.full((teacher_items.shape[0],), -1, dtype=torch.long)
        group_of_item = group_of_item.to(teacher_items.device)
        for g, group in enumerate(groups):
            group_of_item[torch.from_numpy(group).to(teacher_items.device)] = g
        candidates, lengths = group_candidates(
            teacher_users.detach(), teacher_items.detach(), seen, groups, unkd_top
        )
        weights = rank_weights(candidates.shape[2], unkd_mu).to(teacher_items.dtype)
        self.register_buffer("group_of_item", group_of_item, persistent=False)
        self.register_buffer("candidates", candidates, persistent=False)
        self.register_buffer("candidate_lengths", lengths, persistent=False)
        self.register_buffer("rank_weights", weights.to(teacher_items.device), persistent=False)
        self.n_users, self.stale = teacher_users.shape[0], True
        for name in ("better", "worse", "kept"):  # every user's pairs, drawn each epoch
            self.register_buffer(name, None, persistent=False)

    def on_epoch_start(self, epoch: int) -> None:
        self.stale = True

    def extra_repr(self) -> str:
        return f"group_sizes={self.group_sizes}, pairs_per_group={self.pairs_per_group}"

    def sample_pairs(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each row's teacher-ordered pairs over all groups, group by group: the better and
        the worse item ``(B, N)`` (N the pairs per row over the groups) and the mask of the
        pairs drawn from at least 2 candidates (a masked entry may be the padding -1)."""
        users = users.to(self.candidates.device)
        lengths = self.candidate_lengths[users]  # (B, G)
        better, worse, kept = [], [], []
        for g, n in enumerate(self.pairs_per_group):
            if n == 0:
                continue
            length = lengths[:, g]
            high, low = draw_rank_pairs(self.rank_weights, length.clamp(min=2), n)
            ranked = self.candidates[users, g]  # (B, L)
            better.append(ranked.gather(1, high))
            worse.append(ranked.gather(1, low))
            kept.append((length >= 2).unsqueeze(1).expand(-1, n))
        return torch.cat(better, 1), torch.cat(worse, 1), torch.cat(kept, 1)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        if self.stale:
            every = torch.arange(self.n_users, device=self.candidates.device)
            self.better, self.worse, self.kept = self.sample_pairs(every)
            self.stale = False
        rows, counts = users.unique(return_counts=True)
        items = torch.cat([self.better[rows], self.worse[rows]], 1).clamp(min=0).long()
        student = scores(user_e[rows], item_e[items])  # masked pads -> item 0
        high, low = student.split(self.better.shape[1], dim=1)
        return unkd_pair_loss(high - low, self.kept[rows] * counts.unsqueeze(1))
