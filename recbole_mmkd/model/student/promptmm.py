"""PromptMM: prompt-tuned multimodal knowledge distillation into a light LightGCN student.

Wei et al., "PromptMM: Multi-Modal Knowledge Distillation for Recommendation with Prompt-Tuning",
WWW 2024.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.distill.losses import (
    decoupled_kd,
    kl_rows,
    pairwise_kd,
    raw_kl_div,
    scaled_cosine_error,
)
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import get_model, register_model
from recbole_mmkd.model.general.lightgcn import LightGCN
from recbole_mmkd.model.graph import normalized_adjacency, propagate
from recbole_mmkd.model.teacher.promptmm_teacher import PromptMMTeacher
from recbole_mmkd.prepare import config_for
from recbole_mmkd.teacher import TeacherRef

VARIANTS = ("paper", "released")


def pca_tokens(features: torch.Tensor, d: int) -> torch.Tensor:
    """Rows of ``features`` projected on their top-``d`` principal axes (zero-padded to ``d``
    columns when the features have fewer), the hard item tokens of PromptMM."""
    centered = features - features.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    tokens = centered @ vh[:d].T
    return F.pad(tokens, (0, d - tokens.shape[1]))


class PromptModule(nn.Module):
    """Hard item tokens (PCA of each modality, averaged), user tokens = normalised graph
    propagation of the item tokens; soft prompts ``Linear(d, d)`` of each, added to the
    teacher's ID embeddings and modality features."""

    def __init__(self, item_tokens: torch.Tensor, adjacency: torch.Tensor, n_users: int) -> None:
        super().__init__()
        d = item_tokens.shape[1]
        spread = propagate(adjacency, torch.cat([item_tokens.new_zeros(n_users, d), item_tokens]))
        self.register_buffer("user_tokens", spread[:n_users], persistent=False)
        self.register_buffer("item_tokens", item_tokens, persistent=False)
        self.user_prompt = nn.Linear(d, d)
        self.item_prompt = nn.Linear(d, d)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_prompt(self.user_tokens), self.item_prompt(self.item_tokens)


def load_teacher(config, dataset) -> PromptMMTeacher:
    """The stored teacher a student's config points at (``teacher``, ``teacher_config`` and the
    teacher run of :class:`~recbole_mmkd.teacher.TeacherRef`), rebuilt on the same dataset,
    frozen, in eval mode."""
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
    teacher.load_state_dict(ref.state())
    teacher.requires_grad_(False)
    return teacher.eval()


@register_model()
class PromptMM(LightGCN):
    r"""A LightGCN student (1 layer in the paper) distilled from a stored
    :class:`~recbole_mmkd.model.teacher.promptmm_teacher.PromptMMTeacher`, whose inputs a
    trainable prompt module adapts during distillation.

    Per batch of triples (u, i+, i-) with ``list_negatives`` uniform items added to each list
    :math:`L_u = [i^+, n_1, ..]`:

    .. math::
        \mathcal{L} = \mathcal{L}_{BPR+reg}
        + \text{kd\_weight}\,\mathrm{KL}(\sigma(\Delta_t/T) \| \sigma(\Delta_s/T))
        + \text{list\_weight} \textstyle\sum_m \mathrm{KL}(\mathrm{softmax}(t^m_{L}/T) \|
          \mathrm{softmax}(s_{L}/T))
        + \text{dkd\_weight}\,\mathrm{DKD}(s_L, t_L)
        + \text{emb\_weight} \textstyle\sum_m \mathrm{SCE}(f^m_i, e_i)

    :math:`\Delta` = score(i+) - score(i-); :math:`t^m` the teacher's modality-m-only scores
    :math:`\langle f^m_u, f^m_i\rangle`; :math:`t_L` its fused scores; SCE the scaled cosine
    error :math:`(1 - \cos)^{\alpha}` (``sce_alpha``) between the teacher's modality item
    features and the student's item embeddings over the batch's items; :math:`T` =
    ``t_decay``. The teacher's parameters are frozen; its forward runs with the prompts, so
    the KD losses train the prompt module (``variant: paper``). ``variant: released`` is the
    authors' code: teacher forward without gradient (the prompt gets none), DKD not added,
    pair and list KD as ``nn.KLDivLoss`` on unnormalised values (per-sample BPR losses;
    negative log list probabilities).

    Config: LightGCN's keys, ``teacher``/``teacher_config`` (a PromptMMTeacher),
    ``kd_weight``, ``list_weight``, ``dkd_weight``, ``dkd_alpha``, ``dkd_beta``,
    ``emb_weight``, ``sce_alpha``, ``t_decay``, ``list_negatives``, ``variant``.
    """

    needs_teacher = True
    config_names = ("LightGCN", "PromptMM")

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.kd_weight: float = config["kd_weight"]
        self.list_weight: float = config["list_weight"]
        self.dkd_weight: float = config["dkd_weight"]
        self.dkd_alpha: float = config["dkd_alpha"]
        self.dkd_beta: float = config["dkd_beta"]
        self.emb_weight: float = config["emb_weight"]
        self.sce_alpha: float = config["sce_alpha"]
        self.t_decay: float = config["t_decay"]
        self.list_negatives: int = config["list_negatives"]
        self.variant: str = config["variant"]
        if self.variant not in VARIANTS:
            raise ConfigError(
                "config", "variant", f"unknown {self.variant!r}", f"use one of {VARIANTS}"
            )
        self.teacher = load_teacher(config, dataset)
        if self.teacher.embedding_size != self.embedding_size:
            raise ConfigError(
                "teacher_config",
                "embedding_size",
                f"PromptMM's embedding KD compares teacher features ({self.teacher.embedding_size}"
                f"-d) with student embeddings ({self.embedding_size}-d)",
                "set the teacher's embedding_size (teacher_config) equal to the student's",
            )
        tokens = torch.stack(
            [
                pca_tokens(self.teacher.raw_feature(m), self.embedding_size)
                for m in self.teacher.modalities
            ]
        ).mean(0)
        adjacency = normalized_adjacency(dataset.inter_matrix(form="coo"))
        self.prompt = PromptModule(tokens, adjacency, self.n_users)
        teacher_names = [f"teacher.{n}" for n, _ in self.teacher.named_parameters()]
        prompt_names = [f"prompt.{n}" for n, _ in self.prompt.named_parameters()]
        self._released_tables = None
        self.frozen_parameters = teacher_names + (
            prompt_names if self.variant == "released" else []
        )

    def _teacher_tables(self):
        """The prompted teacher's tables. In the released variant the prompt gets no gradient,
        so they never change: computed once, not per batch."""
        if self.variant == "paper":
            return self.teacher.tables(self.prompt())
        if self._released_tables is None:
            with torch.no_grad():
                self._released_tables = self.teacher.tables(self.prompt())
        return self._released_tables

    def train(self, mode: bool = True) -> PromptMM:
        super().train(mode)
        self.teacher.eval()  # frozen: never in training mode
        return self

    def run_info(self) -> dict:
        return {"teacher": type(self.teacher).__name__, "variant": self.variant}

    def calculate_loss(self, interaction) -> torch.Tensor:
        users = interaction[self.USER_ID]
        pos, neg = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        with self.one_forward() as (user_e, item_e):
            loss = super().calculate_loss(interaction)
        released = self.variant == "released"
        t_users, t_items, modal = self._teacher_tables()
        negatives = torch.randint(
            1, self.n_items, (users.shape[0], self.list_negatives), device=users.device
        )
        listed = torch.cat([pos.unsqueeze(1), negatives], dim=1)
        u = user_e[users].unsqueeze(1)
        student_list = (u * item_e[listed]).sum(-1)
        teacher_list = (t_users[users].unsqueeze(1) * t_items[listed]).sum(-1)
        s_margin = student_list[:, 0] - (u.squeeze(1) * item_e[neg]).sum(-1)
        t_margin = teacher_list[:, 0] - (t_users[users] * t_items[neg]).sum(-1)
        modal_lists = {
            m: (mu[users].unsqueeze(1) * mi[listed]).sum(-1) for m, (mu, mi) in modal.items()
        }
        if released:
            pair = raw_kl_div(-F.logsigmoid(s_margin), -F.logsigmoid(t_margin))
            student_nll = -torch.log(student_list.softmax(-1) + 1e-8)
            listwise = sum(
                raw_kl_div(student_nll, -torch.log(t.softmax(-1) + 1e-8))
                for t in modal_lists.values()
            )
            dkd = 0.0
        else:
            pair = pairwise_kd(s_margin, t_margin, temperature=self.t_decay)
            listwise = sum(
                kl_rows(t, student_list, self.t_decay).mean() for t in modal_lists.values()
            )
            target = torch.zeros_like(users)
            dkd = decoupled_kd(
                student_list,
                teacher_list,
                target,
                self.t_decay,
                alpha=self.dkd_alpha,
                beta=self.dkd_beta,
            )
        items = torch.cat([pos, neg])
        embedding = sum(
            scaled_cosine_error(item_e[items], mi[items], alpha=self.sce_alpha)
            for _, mi in modal.values()
        )
        return (
            loss
            + self.kd_weight * pair
            + self.list_weight * listwise
            + self.dkd_weight * dkd
            + self.emb_weight * embedding
        )
