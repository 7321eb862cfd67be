r"""The distillation methods of the KD students, each a class found by its name (``kd_method``).

A :class:`KDMethod` is built once per student from the teacher's stored user and item tables,
the student's training interactions and the config keys it declares (``config_keys``, read once,
in :meth:`KDMethod.from_config`); it checks its settings, holds what it precomputes (teacher
top-N lists, weights) as non-persistent buffers, which move with the student's ``.to(device)``
and stay out of its ``state_dict``, and gives the KD term of a batch (:meth:`KDMethod.loss`).
Teacher scores are :math:`t(u, i) = \langle U_u, I_i\rangle`, the student's :math:`s(u, i)`.

As in PyTorch Geometric's ``resolver``, :func:`resolve_kd_method` finds a class by name in a
registry that :func:`register_kd_method` fills, so a new KD loss is one class, its test and its
keys in ``properties/model/KD.yaml``.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, ClassVar

import scipy.sparse as sp
import torch

from recbole_mmkd.distill.losses import (
    logit_kd,
    ranking_distillation,
    rd_position_weights,
    relaxed_ranking_distillation,
    rrd_sampling_weights,
)
from recbole_mmkd.errors import ConfigError


def teacher_top_items(
    users: torch.Tensor, items: torch.Tensor, seen: sp.csr_matrix, n: int, *, chunk: int = 1024
) -> torch.Tensor:
    """Each user's ``n`` best items by ``users @ items.T``, the padding item 0 and the user's
    training items (``seen``: sparse users x items) excluded. Computed ``chunk`` users at
    a time, so memory stays ``chunk x n_items``."""
    top = []
    for start in range(0, users.shape[0], chunk):
        block_scores = users[start : start + chunk] @ items.T
        block = torch.from_numpy(seen[start : start + chunk].toarray() > 0).to(block_scores.device)
        block_scores[block] = float("-inf")
        block_scores[:, 0] = float("-inf")
        top.append(block_scores.topk(n, dim=1).indices)
    return torch.cat(top)


def items_outside(excluded: torch.Tensor, n_items: int, count: int) -> torch.Tensor:
    r"""``count`` items per row drawn uniformly (with replacement) from ``1..n_items-1`` minus the
    row's ``excluded`` items: ``(B, N)``, each row sorted ascending, distinct, without the
    padding item 0.

    Exact and loop-free: with :math:`s_1 < \dots < s_N` a row's excluded ids,
    :math:`a_k = s_k - k` allowed ids lie below :math:`s_k`, so the :math:`j`-th allowed id
    (from 0) is :math:`1 + j + \#\{k : a_k \le j\}`.
    """
    rows, n = excluded.shape
    allowed = n_items - 1 - n
    if allowed <= 0:
        raise ValueError(f"no item is left outside {n} excluded ones among {n_items - 1} items")
    below = excluded - 1 - torch.arange(n, device=excluded.device)
    j = torch.randint(0, allowed, (rows, count), device=excluded.device)
    return 1 + j + torch.searchsorted(below, j, right=True)


def gumbel_top_k(weights: torch.Tensor, k: int) -> torch.Tensor:
    r"""``k`` column indices per row drawn without replacement with probability proportional to
    ``weights`` (rows need ``k`` positive entries): the largest ``k`` of
    :math:`\log w - \log(-\log U)`, the same distribution as ``torch.multinomial`` without
    replacement, at a fraction of its cost on the CPU."""
    noise = torch.rand_like(weights).clamp_min(1e-20)
    return (weights.log() - torch.log(-torch.log(noise))).topk(k, dim=1).indices


def scores(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Inner products of each user row ``(B, d)`` with its items ``(B, K, d)``: ``(B, K)``."""
    return (items * users.unsqueeze(1)).sum(-1)


class KDMethod(torch.nn.Module):
    """A distillation term: subclasses set ``name`` and ``config_keys``, take those keys as
    keyword arguments of their constructor (which raises :class:`ConfigError` for settings it
    cannot run with), and implement :meth:`loss`. The default :meth:`from_config` passes the
    constructor those of the teacher tables, ``seen``, ``n_items`` and ``student_dim`` it
    names, and the ``config_keys`` values. Trainable parts (DE's experts, HTD's projectors)
    are submodules, trained with the student; :meth:`on_epoch_start` runs before each training
    epoch (a temperature schedule, a refresh of what depends on the student's ranking)."""

    name: ClassVar[str] = ""  # the config's kd_method value
    config_keys: ClassVar[tuple[str, ...]] = ()  # the config keys the method reads

    @classmethod
    def settings(cls, config: Any) -> dict[str, Any]:
        """The values of this method's ``config_keys`` in ``config``."""
        return {key: config[key] for key in cls.config_keys}

    @classmethod
    def from_config(
        cls,
        config: Any,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        seen: sp.csr_matrix,
        n_items: int,
        student_dim: int,
    ) -> KDMethod:
        """The method for a student: ``teacher_users`` and ``teacher_items`` are the teacher's
        tables, ``seen`` the student's training interactions (users x items csr), ``n_items``
        the dataset's item count (padding item 0 included), ``student_dim`` the width of the
        student's tables; the constructor gets those it names, and the ``config_keys``
        values."""
        given = {
            "teacher_users": teacher_users,
            "teacher_items": teacher_items,
            "seen": seen,
            "n_items": n_items,
            "student_dim": student_dim,
        }
        wanted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in given.items() if k in wanted}, **cls.settings(config))

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        """The KD term of a batch, from the student's user and item tables ``user_e`` and
        ``item_e``, the batch rows' ``users`` ``(B,)`` and their positive and negative items
        ``interaction_items`` ``(B, 2)``."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int) -> None:
        """Called through the student before each training epoch (``epoch`` from 0)."""


KD_METHODS: dict[str, type[KDMethod]] = {}  # kd_method name -> class


def register_kd_method(cls: type[KDMethod]) -> type[KDMethod]:
    """Class decorator: make ``cls`` the KD method named ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__} sets no name to register it under")
    known = KD_METHODS.setdefault(cls.name, cls)
    if known is not cls:
        raise ValueError(f"KD method {cls.name!r} is already registered to {known.__qualname__}")
    return cls


def resolve_kd_method(name: str) -> type[KDMethod]:
    """The KD method class registered as ``name``; a :class:`ConfigError` naming the known
    ones for any other name."""
    if name in KD_METHODS:
        return KD_METHODS[name]
    close = difflib.get_close_matches(name, list(KD_METHODS), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(
        "config",
        "kd_method",
        f"unknown KD method {name!r}{hint}",
        f"name one of {', '.join(KD_METHODS)}, or register a KDMethod subclass under the new "
        f"name with recbole_mmkd.distill.methods.register_kd_method",
    )


@register_kd_method
class LogitKD(KDMethod):
    r"""Logit distillation (Hinton et al., "Distilling the Knowledge in a Neural Network",
    2015) over sampled items: each batch row's positive and negative item and ``kd_items``
    items drawn uniformly from ``1..n_items-1``,

    .. math:: T^2\,\mathrm{KL}(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T))

    with :math:`T` = ``t_decay``, averaged over the batch's rows. ``kd_shared_items: true``
    draws the ``kd_items`` items once per batch for all its rows, so their scores are one
    matrix product instead of a gather per row (``bench/bench_models.py``: the cheap
    setting); false, the default, draws them per row.
    """

    name = "logit"
    config_keys = ("t_decay", "kd_items", "kd_shared_items")

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        n_items: int,
        t_decay: float,
        kd_items: int,
        kd_shared_items: bool,
    ) -> None:
        super().__init__()
        self.n_items, self.t_decay, self.kd_items = n_items, t_decay, kd_items
        self.shared = kd_shared_items
        self.register_buffer("teacher_users", teacher_users, persistent=False)
        self.register_buffer("teacher_items", teacher_items, persistent=False)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        device = self.teacher_items.device
        if self.shared:
            sampled = torch.randint(1, self.n_items, (self.kd_items,), device=device)
            student, teacher = (
                torch.cat([scores(u[users], i[interaction_items]), u[users] @ i[sampled].T], 1)
                for u, i in ((user_e, item_e), (self.teacher_users, self.teacher_items))
            )
            return logit_kd(student, teacher, self.t_decay)
        shape = (users.shape[0], self.kd_items)
        sampled = torch.randint(1, self.n_items, shape, device=device)
        items = torch.cat([interaction_items, sampled], dim=1)
        student = scores(user_e[users], item_e[items])
        teacher = scores(self.teacher_users[users], self.teacher_items[items])
        return logit_kd(student, teacher, self.t_decay)


@register_kd_method
class RankingDistillation(KDMethod):
    r"""Ranking Distillation (Tang and Wang, "Ranking Distillation: Learning Compact Ranking
    Models With High Performance for Recommender System", KDD 2018): each user's teacher
    top-``rd_topk`` items (the user's training items excluded) are pseudo-positives, the one at
    rank :math:`r` weighted by :math:`w_r \propto e^{-r/\lambda}` (:math:`\lambda` =
    ``rd_lambda``):

    .. math:: -\sum_r w_r \log \sigma(s(u, \pi_r))

    averaged over the batch's distinct users (a user with several interactions in a batch
    counts once, as in the DE-RRD authors' code).
    """

    name = "rd"
    config_keys = ("rd_topk", "rd_lambda")

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        seen: sp.csr_matrix,
        n_items: int,
        rd_topk: int,
        rd_lambda: float,
    ) -> None:
        super().__init__()
        if rd_topk >= n_items:
            raise ConfigError(
                "config",
                "rd_topk",
                f"rd_topk {rd_topk} must be below n_items {n_items}",
                "lower rd_topk",
            )
        top = teacher_top_items(teacher_users, teacher_items, seen, rd_topk)
        self.register_buffer("teacher_top", top, persistent=False)
        self.register_buffer("weights", rd_position_weights(rd_topk, rd_lambda), persistent=False)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        users = users.unique()
        student = scores(user_e[users], item_e[self.teacher_top[users]])
        return ranking_distillation(student, self.weights)


@register_kd_method
class RelaxedRankingDistillation(KDMethod):
    r"""Relaxed ranking distillation, DE-RRD's RRD (Kang et al., "DE-RRD: A Knowledge
    Distillation Framework for Recommender System", CIKM 2020): ``rrd_k`` interesting items
    sampled without replacement from the user's teacher top-``rrd_top_n`` (training items
    excluded), rank :math:`r` with :math:`p_r \propto e^{-r/T_r}` (:math:`T_r` =
    ``rrd_temperature``), ordered by teacher rank, must rank above ``rrd_l`` items drawn
    uniformly outside the top-N; the loss is the negative log Plackett-Luce likelihood of that
    order over the interesting items,

    .. math:: -\sum_{k} \Big(s_{\pi_k} - \log\big(\textstyle\sum_{j \ge k} e^{s_{\pi_j}}
       + \sum_{l} e^{s_l}\big)\Big)

    averaged over the batch's distinct users, as :class:`RankingDistillation`.
    ``kd_shared_items: true`` draws the ``rrd_l`` uninteresting items once per batch, uniformly
    from all items, for all its users (one matrix product), each user's own top-N among them
    left out of its sum; false, the default, draws them per user outside its top-N, as the
    authors' code.
    """

    name = "rrd"
    config_keys = ("rrd_top_n", "rrd_k", "rrd_l", "rrd_temperature", "kd_shared_items")

    def __init__(
        self,
        *,
        teacher_users: torch.Tensor,
        teacher_items: torch.Tensor,
        seen: sp.csr_matrix,
        n_items: int,
        rrd_top_n: int,
        rrd_k: int,
        rrd_l: int,
        rrd_temperature: float,
        kd_shared_items: bool,
    ) -> None:
        super().__init__()
        self.shared = kd_shared_items
        if not rrd_k <= rrd_top_n < n_items - rrd_l:
            raise ConfigError(
                "config",
                "rrd_top_n",
                f"rrd needs rrd_k <= rrd_top_n < n_items - rrd_l; got rrd_k {rrd_k}, "
                f"rrd_top_n {rrd_top_n}, rrd_l {rrd_l}, n_items {n_items}",
                "lower rrd_k or rrd_l, or set rrd_top_n between them",
            )
        self.n_items, self.rrd_k, self.rrd_l = n_items, rrd_k, rrd_l
        top = teacher_top_items(teacher_users, teacher_items, seen, rrd_top_n)
        weights = rrd_sampling_weights(rrd_top_n, rrd_temperature)
        self.register_buffer("teacher_top", top, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        self.register_buffer("teacher_top_sorted", top.sort(dim=1).values, persistent=False)

    def loss(
        self,
        user_e: torch.Tensor,
        item_e: torch.Tensor,
        users: torch.Tensor,
        interaction_items: torch.Tensor,
    ) -> torch.Tensor:
        users = users.unique()
        top = self.teacher_top[users]
        picks = torch.multinomial(self.weights.expand(users.shape[0], -1), self.rrd_k)
        interesting = top.gather(1, picks.sort(dim=1).values)  # teacher rank order
        if self.shared:
            shared = torch.randint(1, self.n_items, (self.rrd_l,), device=top.device)
            ranked = self.teacher_top_sorted[users]
            where = torch.searchsorted(ranked, shared.expand(users.shape[0], -1).contiguous())
            inside = ranked.gather(1, where.clamp(max=ranked.shape[1] - 1)) == shared
            rows = user_e[users]
            others = (rows @ item_e[shared].T).masked_fill(inside, float("-inf"))
            return relaxed_ranking_distillation(scores(rows, item_e[interesting]), others)
        others = items_outside(self.teacher_top_sorted[users], self.n_items, self.rrd_l)
        student = scores(user_e[users], item_e[torch.cat([interesting, others], dim=1)])
        return relaxed_ranking_distillation(*student.split([self.rrd_k, self.rrd_l], dim=1))
