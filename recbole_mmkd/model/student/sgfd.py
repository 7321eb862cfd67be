"""SGFD: semantic-guided feature distillation as a wrapper over any multimodal backbone.

Liu et al., "Semantic-Guided Feature Distillation for Multimodal Recommendation", ACM MM 2023.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.data.labels import item_labels
from recbole_mmkd.distill.losses import feature_kd, sgfd_response_kd
from recbole_mmkd.distill.schedules import temperature
from recbole_mmkd.model import register_wrapper
from recbole_mmkd.model.teacher.sgfd_teacher import SemanticTeacher

BACKBONES = ("VBPR", "MMGCN", "GRCN", "LATTICE", "BM3", "FREEDOM")


class SGFDMixin:
    r"""Replaces a backbone's raw modality features with features distilled online from
    SGFD's semantic teacher; the backbone itself is unchanged.

    Per modality m, a student :math:`s^m_i = \mathrm{norm}(\sigma(W_m x^m_i + b_m))` (one
    linear layer, :math:`\sigma` leaky ReLU when ``student_activation``) is what the backbone
    reads as item i's feature, in training and at inference. The teacher
    (:class:`~recbole_mmkd.model.teacher.sgfd_teacher.SemanticTeacher`) has a deep tower
    :math:`t^m_i` per modality, a classifier :math:`C_m` shared with the student, and a fusion
    layer over all modalities with classifier :math:`C_f`. Over the batch's items B (positives
    and, where the backbone samples them, negatives), with category labels y:

    .. math::
        \mathcal{L} = \mathcal{L}_{backbone}
        + \text{ce\_weight}\,\big(\tfrac{1}{M}\textstyle\sum_m CE(C_m t^m, y) + CE(C_f\,
          \mathrm{fuse}(t), y)\big)
        + \text{kd\_weight}\,\tfrac{1}{M}\textstyle\sum_m \big(\mathrm{L1}(\mathrm{softmax}
          (C_m t^m / T), \mathrm{softmax}(C_m s^m / T)) + \mathrm{MSE}(s^m, t^m)\big)

    with :math:`T` from ``t_decay``: constant (``t_schedule: constant``, the released code) or
    ``t_decay * t_decay_rate ** epoch`` floored at ``t_floor`` (``exponential``). One optimiser
    trains backbone, students, teacher and classifiers together (single-stage, as published);
    nothing is detached, as in the released code.

    Config: ``sgfd_dim`` (d of teacher and student features), ``ce_weight``, ``kd_weight``,
    ``t_decay``, ``t_schedule``, ``t_decay_rate``, ``t_floor``, ``student_activation``,
    ``teacher_activation``, ``ce_on_softmax`` (the released code's softmax before CE),
    ``label_source``/``label_clusters``/``label_seed`` (labels of the dataset, else k-means).
    """

    def __init__(self, config, dataset) -> None:
        self.sgfd_dim: int = config["sgfd_dim"]  # read first: feature_dims() sizes the backbone
        super().__init__(config, dataset)
        self.ce_weight: float = config["ce_weight"]
        self.kd_weight: float = config["kd_weight"]
        self.t_decay: float = config["t_decay"]
        self.t_schedule: str = config["t_schedule"]
        self.t_decay_rate: float = config["t_decay_rate"]
        self.t_floor: float = config["t_floor"]
        self.student_activation: bool = config["student_activation"]
        self.ce_on_softmax: bool = config["ce_on_softmax"]
        self.temperature = temperature(
            self.t_schedule, self.t_decay, 0, self.t_decay_rate, self.t_floor
        )
        labels, self.label_source = item_labels(dataset, config)
        self.register_buffer("labels", labels, persistent=False)
        self.n_labels = int(labels.max()) + 1
        raw_dims = self.raw_feature_dims()
        self.students = nn.ModuleDict(
            {m: nn.Linear(dim, self.sgfd_dim) for m, dim in raw_dims.items()}
        )
        self.teacher = SemanticTeacher(
            raw_dims,
            self.sgfd_dim,
            self.n_labels,
            activation=config["teacher_activation"],
            layout=config["teacher_tower"],
        )

    def feature_dims(self) -> dict[str, int]:
        return {m: self.sgfd_dim for m in self.modalities}

    def modal_feature(self, modality: str, items: torch.Tensor | None = None) -> torch.Tensor:
        present = self.item_present(modality)
        present = present if items is None else present[items]
        student = self._student(modality, self.raw_feature(modality, items))
        return student * present.unsqueeze(-1).to(student.dtype)

    def _student(self, modality: str, raw: torch.Tensor) -> torch.Tensor:
        out = self.students[modality](raw)
        return F.normalize(F.leaky_relu(out) if self.student_activation else out, dim=-1)

    def on_epoch_start(self, epoch: int) -> None:
        super().on_epoch_start(epoch)
        self.temperature = temperature(
            self.t_schedule, self.t_decay, epoch, self.t_decay_rate, self.t_floor
        )

    def run_info(self) -> dict:
        return {**super().run_info(), "label_source": self.label_source, "n_labels": self.n_labels}

    def distillation_losses(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        """SGFD's four losses over ``items``: class, fusion, response and feature KD."""
        raw = {m: self.raw_feature(m, items) for m in self.modalities}
        teacher = self.teacher.features(raw)
        labels = self.labels[items]
        cls, fusion = self.teacher.losses(teacher, labels, self.ce_on_softmax)
        response, feature = [], []
        for m in self.modalities:
            student = self._student(m, raw[m])
            classifier = self.teacher.classifiers[m]
            response.append(
                sgfd_response_kd(classifier(student), classifier(teacher[m]), self.temperature)
            )
            feature.append(feature_kd(student, teacher[m]))
        return {
            "class": cls,
            "fusion": fusion,
            "response": torch.stack(response).mean(),
            "feature": torch.stack(feature).mean(),
        }

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss = super().calculate_loss(interaction)
        if self.ce_weight == 0 and self.kd_weight == 0:
            return loss
        items = interaction[self.ITEM_ID]
        if self.NEG_ITEM_ID in interaction:
            items = torch.cat([items, interaction[self.NEG_ITEM_ID]])
        parts = self.distillation_losses(items)
        return (
            loss
            + self.ce_weight * (parts["class"] + parts["fusion"])
            + self.kd_weight * (parts["response"] + parts["feature"])
        )


for _backbone in BACKBONES:
    register_wrapper(
        "SGFD", SGFDMixin, _backbone,
        f"SGFD over {_backbone}: the backbone reads SGFD's distilled student features.",
    )  # fmt: skip
