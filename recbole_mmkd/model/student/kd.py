"""Students distilled from a stored teacher's scores: logit KD, Ranking Distillation, RRD.

Hinton et al., "Distilling the Knowledge in a Neural Network", 2015; Tang and Wang, "Ranking
Distillation", KDD 2018; Kang et al., "DE-RRD: A Knowledge Distillation Framework for
Recommender System", CIKM 2020.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from recbole_mmkd.distill.losses import (
    logit_kd,
    ranking_distillation,
    rd_position_weights,
    relaxed_ranking_distillation,
    rrd_sampling_weights,
)
from recbole_mmkd.model import register_wrapper

STUDENTS = ("LightGCN", "BPR", "MDLightGCN")
KD_METHODS = ("logit", "rd", "rrd")
TABLES_FILE = "representations.npz"  # a teacher run's best-state (user, item) tables
STATE_FILE = "state.npz"  # a teacher run's best-state parameters


def load_teacher_tables(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The (user, item) representation tables a teacher run stored (``representations.npz``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"teacher tables {path} do not exist: students get them from pipeline.run_one, "
            f"which trains (or reuses) the teacher named by the config key 'teacher' first"
        )
    with np.load(path) as arrays:
        return torch.from_numpy(arrays["user"]), torch.from_numpy(arrays["item"])


def teacher_top_items(
    users: torch.Tensor, items: torch.Tensor, seen: sp.csr_matrix, n: int, chunk: int = 1024
) -> torch.Tensor:
    """Each user's ``n`` best items by ``users @ items.T``, the padding item 0 and the user's
    training items (``seen``: sparse users x items) excluded. Computed ``chunk`` users at
    a time, so memory stays ``chunk x n_items``."""
    top = []
    for start in range(0, users.shape[0], chunk):
        scores = users[start : start + chunk] @ items.T
        block = torch.from_numpy(seen[start : start + chunk].toarray() > 0)
        scores[block] = float("-inf")
        scores[:, 0] = float("-inf")
        top.append(scores.topk(n, dim=1).indices)
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


def scores(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Inner products of each user row ``(B, d)`` with its items ``(B, K, d)``: ``(B, K)``."""
    return (items * users.unsqueeze(1)).sum(-1)


class KDStudentMixin:
    r"""A student trained on its own loss plus distillation from a stored teacher.

    The teacher (config ``teacher``, with ``teacher_config`` overrides) is trained once per
    (dataset, teacher config, seed) by :func:`recbole_mmkd.pipeline.run_one`, which stores its
    best-epoch user and item tables; the student loads them as frozen buffers, so no student
    step can change its teacher. Teacher scores are :math:`t(u, i) = \langle U_u, I_i\rangle`.

    .. math:: \mathcal{L} = \mathcal{L}_{student} + \text{kd\_weight}\,\mathcal{L}_{KD}

    ``kd_method``:

    - ``logit``: :math:`T^2\,\mathrm{KL}(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T))`
      over each batch row's positive, negative and ``kd_items`` uniformly sampled items;
      :math:`T` = ``t_decay``.
    - ``rd``: Ranking Distillation; the user's teacher top-``rd_topk`` items (training items
      excluded) are pseudo-positives weighted by :math:`e^{-r/\lambda}`, :math:`\lambda` =
      ``rd_lambda``.
    - ``rrd``: relaxed ranking distillation; ``rrd_k`` interesting items sampled from the
      teacher's top-``rrd_top_n`` with :math:`p_r \propto e^{-r/T_r}` (``rrd_temperature``),
      ordered by teacher rank, above ``rrd_l`` uniformly sampled items outside the top-N.

    ``logit`` is averaged over the batch's rows; ``rd`` and ``rrd`` over its distinct users (a
    user with several interactions in a batch counts once, as in the DE-RRD authors' code).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.kd_method: str = config["kd_method"]
        self.kd_weight: float = config["kd_weight"]
        self.t_decay: float = config["t_decay"]
        self.kd_items: int = config["kd_items"]
        self.rd_topk: int = config["rd_topk"]
        self.rrd_top_n: int = config["rrd_top_n"]
        self.rrd_k: int = config["rrd_k"]
        self.rrd_l: int = config["rrd_l"]
        self.teacher_name: str = config["teacher"]
        if self.kd_method not in KD_METHODS:
            raise ValueError(f"kd_method must be one of {KD_METHODS}, got {self.kd_method!r}")
        rrd = self.kd_method == "rrd"
        if rrd and not self.rrd_k <= self.rrd_top_n < self.n_items - self.rrd_l:
            raise ValueError(
                f"rrd needs rrd_k <= rrd_top_n < n_items - rrd_l; got rrd_k {self.rrd_k}, "
                f"rrd_top_n {self.rrd_top_n}, rrd_l {self.rrd_l}, n_items {self.n_items}"
            )
        if self.kd_method == "rd" and self.rd_topk >= self.n_items:
            raise ValueError(f"rd_topk {self.rd_topk} must be below n_items {self.n_items}")
        user_t, item_t = load_teacher_tables(config["teacher_tables"])
        if (user_t.shape[0], item_t.shape[0]) != (self.n_users, self.n_items):
            raise ValueError(
                f"teacher tables {config['teacher_tables']} are for {user_t.shape[0]} users x "
                f"{item_t.shape[0]} items, the dataset has {self.n_users} x {self.n_items}"
            )
        self.register_buffer("teacher_users", user_t, persistent=False)
        self.register_buffer("teacher_items", item_t, persistent=False)
        seen = dataset.inter_matrix(form="csr")
        top_n = {"logit": 0, "rd": self.rd_topk, "rrd": self.rrd_top_n}[self.kd_method]
        if top_n:
            top = teacher_top_items(user_t, item_t, seen, top_n)
            self.register_buffer("teacher_top", top, persistent=False)
        if self.kd_method == "rd":
            self.register_buffer(
                "rd_weights", rd_position_weights(self.rd_topk, config["rd_lambda"]), False
            )
        if self.kd_method == "rrd":
            weights = rrd_sampling_weights(self.rrd_top_n, config["rrd_temperature"])
            self.register_buffer("rrd_weights", weights, persistent=False)
            self.register_buffer("teacher_top_sorted", top.sort(dim=1).values, persistent=False)

    def run_info(self) -> dict:
        return {**super().run_info(), "teacher": self.teacher_name, "kd_method": self.kd_method}

    def _teacher_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return scores(self.teacher_users[users], self.teacher_items[items])

    def _uniform_items(self, rows: int, count: int) -> torch.Tensor:
        return torch.randint(1, self.n_items, (rows, count), device=self.teacher_items.device)

    def kd_loss(self, users: torch.Tensor, interaction) -> torch.Tensor:
        """The distillation term for the batch's ``users`` (one entry per batch row)."""
        user_e, item_e = self.representations()
        if self.kd_method == "logit":
            items = torch.cat(
                [
                    interaction[self.ITEM_ID].unsqueeze(1),
                    interaction[self.NEG_ITEM_ID].unsqueeze(1),
                    self._uniform_items(users.shape[0], self.kd_items),
                ],
                dim=1,
            )
            student = scores(user_e[users], item_e[items])
            return logit_kd(student, self._teacher_scores(users, items), self.t_decay)
        users = users.unique()  # rd, rrd: once per user of the batch, as in DE-RRD's code
        u, top = user_e[users], self.teacher_top[users]
        if self.kd_method == "rd":
            return ranking_distillation(scores(u, item_e[top]), self.rd_weights)
        picks = torch.multinomial(self.rrd_weights.expand(users.shape[0], -1), self.rrd_k)
        interesting = top.gather(1, picks.sort(dim=1).values)  # teacher rank order
        others = items_outside(self.teacher_top_sorted[users], self.n_items, self.rrd_l)
        student = scores(u, item_e[torch.cat([interesting, others], dim=1)])
        return relaxed_ranking_distillation(*student.split([self.rrd_k, self.rrd_l], dim=1))

    def calculate_loss(self, interaction) -> torch.Tensor:
        with self.one_forward():
            loss = super().calculate_loss(interaction)
            if self.kd_weight == 0:
                return loss
            return loss + self.kd_weight * self.kd_loss(interaction[self.USER_ID], interaction)


for _student in STUDENTS:
    register_wrapper(
        "KD", KDStudentMixin, _student, f"{_student} distilled from a stored teacher.",
        needs_teacher=True,
    )  # fmt: skip
