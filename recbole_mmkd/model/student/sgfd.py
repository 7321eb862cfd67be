"""SGFD: semantic-guided feature distillation as a wrapper over any multimodal backbone.

Liu et al., "Semantic-Guided Feature Distillation for Multimodal Recommendation", ACM MM 2023.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.data.labels import item_labels
from recbole_mmkd.distill.losses import feature_kd, sgfd_response_kd
from recbole_mmkd.distill.schedules import temperature
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_wrapper
from recbole_mmkd.model.teacher.sgfd_teacher import SemanticTeacher

BACKBONES = ("VBPR", "MMGCN", "GRCN", "LATTICE", "BM3", "FREEDOM")


STUDENT_ROLES = ("replace", "input")


class SGFDMixin:
    r"""Feeds a backbone features distilled online from SGFD's semantic teacher.

    Per modality m, a student :math:`s^m_i = \mathrm{norm}(\sigma(W_m x^m_i + b_m))` (one
    linear layer, :math:`\sigma` leaky ReLU when ``student_activation``) carries item i's
    feature into the backbone, in training and at inference. ``student_role``:

    - ``replace`` (the default; SGFD's release: BM3's ``image_trs``/``text_trs`` are commented
      out, GRCN's CGCN reads ``student_model(features)``): the student *is* the backbone's
      per-modality feature projection (the backbone's own Linear, initialised as the backbone
      initialises it, followed by the student's activation and L2 norm), and the backbone's
      projection becomes the identity; the width d is the backbone's projection width.
      Backbones with such a projection: BM3, FREEDOM, GRCN, LATTICE (``feature_projections``).
    - ``input``: the student maps raw features to ``sgfd_dim`` and the backbone's own
      projection reads its output (this project's first reading; VBPR and MMGCN, whose
      projections are not per modality, take this role).

    With ``ce_weight = kd_weight = 0`` the loss is the backbone's plus nothing: that entry
    measures SGFD's architecture alone, the difference to SGFD-X its distillation. The teacher
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

    Config: ``student_role``, ``sgfd_dim`` (d with ``student_role: input``), ``ce_weight``,
    ``kd_weight``, ``t_decay``, ``t_schedule``, ``t_decay_rate``, ``t_floor``,
    ``student_activation``, ``teacher_tower``, ``teacher_activation``, ``ce_on_softmax`` (the
    released code's softmax before CE, on the class loss only), ``label_source``/
    ``label_clusters``/``label_seed`` (labels of the dataset, else k-means).

    Deviations from the release: the paper's and release's d is 128 (``SGFD-BM3.yaml`` and
    ``SGFD-GRCN.yaml`` set the backbones' width to it); the release selects epochs on the test
    split (here validation only).
    """

    training_only: ClassVar[tuple[str, ...]] = ("teacher",)  # inference feeds the students only

    def __init__(self, config, dataset) -> None:
        # read first: feature_dims() sizes the backbone's projections
        self.student_role: str = config["student_role"]
        self.sgfd_dim: int = config["sgfd_dim"]
        if self.student_role not in STUDENT_ROLES:
            raise ConfigError(
                "config", "student_role", f"unknown {self.student_role!r}",
                f"use one of {STUDENT_ROLES}",
            )  # fmt: skip
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
        if self.student_role == "replace":
            self.students = self._take_projections()
        else:
            self.students = nn.ModuleDict(
                {m: nn.Linear(dim, self.sgfd_dim) for m, dim in raw_dims.items()}
            )
        width = {s.out_features for s in self.students.values()}.pop()
        self.teacher = SemanticTeacher(
            raw_dims,
            width,
            self.n_labels,
            activation=config["teacher_activation"],
            layout=config["teacher_tower"],
        )

    def _take_projections(self) -> nn.ModuleDict:
        """The backbone's per-modality projections, which become the students; the backbone
        then reads the students' output through identities."""
        name = type(self).feature_projections
        if name is None:
            raise ConfigError(
                "config",
                "student_role",
                f"'replace' needs per-modality feature projections, which "
                f"{type(self).__name__} does not have",
                "set `student_role: input`",
            )
        projections = getattr(self, name)
        students = nn.ModuleDict(dict(projections.items()))
        for modality in list(projections):
            projections[modality] = nn.Identity()
        return students

    def feature_dims(self) -> dict[str, int]:
        if self.student_role == "replace":
            return self.raw_feature_dims()
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

    def distillation_items(self, interaction) -> torch.Tensor:
        """The items a batch's distillation losses run over: its positives and negatives."""
        items = interaction[self.ITEM_ID]
        if self.NEG_ITEM_ID in interaction:
            items = torch.cat([items, interaction[self.NEG_ITEM_ID]])
        return items

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss = super().calculate_loss(interaction)
        if self.ce_weight == 0 and self.kd_weight == 0:
            return loss
        parts = self.distillation_losses(self.distillation_items(interaction))
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
