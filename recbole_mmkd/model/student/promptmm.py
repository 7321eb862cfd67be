"""PromptMM: prompt-tuned multimodal knowledge distillation into a light LightGCN student.

Wei et al., "PromptMM: Multi-Modal Knowledge Distillation for Recommendation with Prompt-Tuning",
WWW 2024; released code HKUDS/PromptMM (``codes/Models.py``: ``Student_LightGCN``;
``codes/main.py``: the student phase).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F

from recbole_mmkd.distill.losses import kl_rows, pairwise_kd, raw_kl_div, scaled_cosine_error
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import get_model, register_model
from recbole_mmkd.model.general.lightgcn import LightGCN
from recbole_mmkd.model.losses import l2_reg
from recbole_mmkd.model.teacher.promptmm_teacher import ModalTables, PromptMMTeacher
from recbole_mmkd.prepare import config_for
from recbole_mmkd.teacher import TeacherRef

VARIANTS = ("paper", "released")
REG_ON = ("ego", "final")


def reweighted_list_kd(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    r"""PromptMM's disentangled list-wise KD as its paper draws it (Figures 1-2): over lists
    ``[positive, negatives...]`` (column 0 the positive), :math:`\mathrm{KL}(b^T \| b^S) +
    b^{-T}\, \mathrm{KL}(q^T \| q^S)`, mean over rows: :math:`b = [p_0, 1 - p_0]` the
    softmax's positive and negative mass, :math:`q` the softmax over the negatives alone, the
    non-target term weighted per row by the teacher's negative mass :math:`b^{-T}` (a weight,
    so no gradient flows through it)."""
    p_t, p_s = (teacher / temperature).softmax(-1), (student / temperature).softmax(-1)
    binary_t = torch.stack([p_t[:, 0], 1 - p_t[:, 0]], 1).clamp_min(1e-12)
    binary_s = torch.stack([p_s[:, 0], 1 - p_s[:, 0]], 1).clamp_min(1e-12)
    target_kd = (binary_t * (binary_t.log() - binary_s.log())).sum(1)
    negative_kd = kl_rows(teacher[:, 1:], student[:, 1:], temperature)
    return (target_kd + binary_t[:, 1].detach() * negative_kd).mean()


def trimmed_mean(losses: torch.Tensor, *, drop: float) -> torch.Tensor:
    """Mean of the ``1 - drop`` share of ``losses`` that are smallest (the release's
    ``tip_rate_feat``: the embedding KD leaves out its worst-fitting items)."""
    if drop <= 0:
        return losses.mean()
    kept = max(1, int(losses.numel() * (1 - drop)))  # the release's int(remember_rate * n)
    return losses.topk(kept, largest=False).values.mean()


def load_teacher(config, dataset) -> PromptMMTeacher:
    """The stored teacher a student's config points at (``teacher``, ``teacher_config`` and the
    teacher run of :class:`~recbole_mmkd.teacher.TeacherRef`), rebuilt on the same dataset
    with its trained prompt, frozen, in eval mode."""
    ref = TeacherRef.from_config(config)
    overrides = {**(config["teacher_config"] or {}), "seed": config["seed"]}
    teacher_config = config_for(
        ref.model,
        config["dataset"],
        overrides=overrides,
        data_path=Path(config["data_path"]).parent,
        properties=config["properties"],
        source="teacher_config",
    )
    teacher = get_model(ref.model)(teacher_config, dataset)
    if not isinstance(teacher, PromptMMTeacher):
        raise ConfigError(
            "teacher", ref.model, "PromptMM distils from a PromptMMTeacher", "name PromptMMTeacher"
        )
    if teacher.prompt is None:
        raise ConfigError(
            "teacher_config", "prompt", "PromptMM tunes its teacher's prompt, and it has none",
            "leave the teacher's prompt: true",
        )  # fmt: skip
    teacher.load_state_dict(ref.state())
    teacher.requires_grad_(False)
    return teacher.eval()


@register_model()
class PromptMM(LightGCN):
    r"""A LightGCN student (1 layer, the paper's) distilled from a stored
    :class:`~recbole_mmkd.model.teacher.promptmm_teacher.PromptMMTeacher` through the prompt
    the teacher was trained with (PromptMM's second stage: the teacher's parameters frozen).

    Per batch of triples (u, i+, i-), with ``list_negatives`` uniform items after each
    positive in a list :math:`L_u`:

    .. math::
        \mathcal{L} = \mathcal{L}_{BPR} + \lambda_{reg} \Omega
        + \text{kd\_weight}\, \mathcal{L}_{pair}
        + \text{list\_weight} \textstyle\sum_m \mathcal{L}_{list}(s_L, t^m_L)
        + \text{emb\_weight} \textstyle\sum_m \mathrm{SCE}(e_i, \bar f^m_i)

    :math:`t^m` are the teacher's modality-m scores :math:`\langle f^m_u, \bar f^m_i\rangle`
    and SCE the scaled cosine error :math:`(1 - \cos)^{\alpha}` (``sce_alpha``) between the
    student's item embeddings and the teacher's modality item tables, over every item
    (``emb_items: all``) or the batch's (``batch``), the ``tip_rate`` share of worst-fitting
    items left out.

    ``variant: paper`` (the default): the KD losses also tune a copy of the teacher's prompt
    ("updating the prompt module again according to the student's loss"), the teacher in eval
    mode; :math:`\mathcal{L}_{pair}` the KL between teacher's and student's
    :math:`\sigma(\Delta/T)` (``t_decay``); :math:`\mathcal{L}_{list}` the re-weighted
    disentangled KD of :func:`reweighted_list_kd`. ``variant: released`` (the authors' code):
    the prompt stays as trained; the teacher runs every batch without gradient *in training
    mode* (its feature dropout on, so its targets vary); pair and list KD are ``nn.KLDivLoss``
    on unnormalised values (per-sample BPR losses; negative log list probabilities), no
    temperature; the release computes its DKD and does not add it, and neither does this.
    ``init_from_teacher`` starts the student from the teacher's fused tables; the release
    does so through two aliased parameter tables, so its layer-0 input is twice the table and
    every optimiser step lands twice: with ``init_from_teacher`` the released variant doubles
    the input, and ``PromptMM-released.yaml`` doubles the learning rate (the first-order
    equivalent of the double step). ``reg_on``: ``ego`` (LightGCN's, on layer-0 rows) or
    ``final`` (the release's, on the output rows).

    Config: ``n_layers``, ``embedding_size`` (the teacher's), ``reg_weight``, ``reg_on``,
    ``teacher``/``teacher_config`` (a PromptMMTeacher), ``kd_weight``, ``list_weight``,
    ``emb_weight``, ``emb_items``, ``tip_rate``, ``sce_alpha``, ``t_decay``,
    ``list_negatives``, ``init_from_teacher``, ``variant``. ``PromptMM`` reads
    ``PromptMM.yaml`` alone (not LightGCN's files: its student's depth is the method's);
    ``PromptMM-released`` reads ``PromptMM-released.yaml`` after it.

    Deviations from the release: batches are RecBole's, every training interaction once an
    epoch (the release draws batches of distinct users, uniformly); its student graph is laid
    out wrongly (``[[D_u^-1/2 R, 0],
    [0, D_i^-1/2 R^T]]`` over ``[users; items]``, which aggregates rows of the wrong nodes);
    here it is LightGCN's. Its negatives for the lists may hit a user's positives, as here.
    It selects its epoch on test and ranks validation items among the test candidates with a
    non-standard ideal DCG; this project selects on validation, masks them, and uses
    RecBole's metrics. The paper's text could not be
    read beyond its figures: the re-weighted list KD and the prompt tuned in the second
    stage are from Figures 1-2; its pair KD (drawn from the ID branch) uses the fused
    tables here, as released; its ID prompt (the figure shows the prompt entering the feature
    reduction only) is kept, at the release's rate.
    """

    needs_teacher = True
    config_names = ("PromptMM",)
    training_only: ClassVar[tuple[str, ...]] = ("teacher", "prompt")  # inference: LightGCN

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.kd_weight: float = config["kd_weight"]
        self.list_weight: float = config["list_weight"]
        self.emb_weight: float = config["emb_weight"]
        self.emb_items: str = config["emb_items"]
        self.tip_rate: float = config["tip_rate"]
        self.sce_alpha: float = config["sce_alpha"]
        self.t_decay: float = config["t_decay"]
        self.list_negatives: int = config["list_negatives"]
        self.variant: str = config["variant"]
        self.reg_on: str = config["reg_on"]
        for key, value, known in (
            ("variant", self.variant, VARIANTS),
            ("reg_on", self.reg_on, REG_ON),
            ("emb_items", self.emb_items, ("all", "batch")),
        ):
            if value not in known:
                raise ConfigError("config", key, f"unknown {value!r}", f"use one of {known}")
        self.teacher = load_teacher(config, dataset)
        if self.teacher.embedding_size != self.embedding_size:
            raise ConfigError(
                "teacher_config",
                "embedding_size",
                f"PromptMM's embedding KD compares teacher features ({self.teacher.embedding_size}"
                f"-d) with student embeddings ({self.embedding_size}-d)",
                "set the teacher's embedding_size (teacher_config) equal to the student's",
            )
        self.prompt = copy.deepcopy(self.teacher.prompt).requires_grad_(self.variant == "paper")
        self.frozen_parameters = [f"teacher.{n}" for n, _ in self.teacher.named_parameters()]
        if self.variant == "released":
            self.frozen_parameters += [f"prompt.{n}" for n, _ in self.prompt.named_parameters()]
        self.ego_scale = 1.0
        if config["init_from_teacher"]:
            with torch.no_grad():
                users, items = self.teacher()
                self.user_embedding.weight.copy_(users)
                self.item_embedding.weight.copy_(items)
            self.ego_scale = 2.0 if self.variant == "released" else 1.0
        self._constant_tables: tuple[torch.Tensor, torch.Tensor, ModalTables] | None = None

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = super().forward()
        return self.ego_scale * users, self.ego_scale * items

    def teacher_tables(self) -> tuple[torch.Tensor, torch.Tensor, ModalTables]:
        """The teacher's tables through the prompt. ``paper``: differentiable in the prompt.
        ``released``: without gradient, in training mode (recomputed every batch) unless the
        teacher has no dropout, when they never change and are computed once."""
        if self.variant == "paper":
            return self.teacher.tables(self.prompt())
        if self.teacher.dropout.p == 0 and self._constant_tables is not None:
            return self._constant_tables
        with torch.no_grad():
            self.teacher.train(self.training)
            try:
                tables = self.teacher.tables(self.prompt())
            finally:
                self.teacher.eval()
        if self.teacher.dropout.p == 0:
            self._constant_tables = tables
        return tables

    def train(self, mode: bool = True) -> PromptMM:
        super().train(mode)
        self.teacher.eval()  # frozen; the released variant switches it on per batch
        self._constant_tables = None  # recomputed once per epoch, on the model's device
        return self

    def run_info(self) -> dict:
        return {"teacher": type(self.teacher).__name__, "variant": self.variant}

    def calculate_loss(self, interaction) -> torch.Tensor:
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        with self.one_forward() as (_, item_e):
            loss, u, pos_e, neg_e = self.bpr_batch(interaction)
        if self.reg_on == "final":
            loss = loss + self.reg_weight * l2_reg(u, pos_e, neg_e)
        else:
            loss = loss + self.reg_weight * self.id_reg(interaction)
        t_users, t_items, modal = self.teacher_tables()
        negatives = torch.randint(
            1, self.n_items, (users.shape[0], self.list_negatives), device=users.device
        )
        listed = torch.cat([pos.unsqueeze(1), negatives], dim=1)
        student_list = (u.unsqueeze(1) * item_e[listed]).sum(-1)
        s_margin = student_list[:, 0] - (u * neg_e).sum(-1)
        t_margin = (t_users[users] * (t_items[pos] - t_items[neg])).sum(-1)
        modal_lists = [(mu[users].unsqueeze(1) * mi[listed]).sum(-1) for mu, mi in modal.values()]
        if self.variant == "released":
            pair = raw_kl_div(-F.logsigmoid(s_margin), -F.logsigmoid(t_margin))
            student_nll = -torch.log(student_list.softmax(-1) + 1e-8)
            listwise = sum(
                raw_kl_div(student_nll, -torch.log(t.softmax(-1) + 1e-8)) for t in modal_lists
            )
        else:
            pair = pairwise_kd(s_margin, t_margin, temperature=self.t_decay)
            listwise = sum(reweighted_list_kd(student_list, t, self.t_decay) for t in modal_lists)
        items = slice(1, None) if self.emb_items == "all" else torch.cat([pos, neg])  # no padding
        embedding = sum(
            trimmed_mean(
                scaled_cosine_error(item_e[items], mi[items], alpha=self.sce_alpha),
                drop=self.tip_rate,
            )
            for _, mi in modal.values()
        )
        return (
            loss + self.kd_weight * pair + self.list_weight * listwise + self.emb_weight * embedding
        )


@register_model("PromptMM-released")
class PromptMMReleased(PromptMM):
    """:class:`PromptMM` with ``variant: released`` and the release's TikTok settings
    (``PromptMM-released.yaml``, read after ``PromptMM.yaml``)."""

    config_names = ("PromptMM", "PromptMM-released")
