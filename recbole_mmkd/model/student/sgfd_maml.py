"""SGFD over MAML: SGFD's third backbone, with the release's quirks as options.

Liu et al., "Semantic-Guided Feature Distillation for Multimodal Recommendation", ACM MM 2023;
released code HuilinChenJN/SGFD ``MAML/MAML.py`` (TensorFlow 1), over
:class:`~recbole_mmkd.model.general.maml.MAML`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbole_mmkd.distill.losses import sgfd_response_kd
from recbole_mmkd.model import register_wrapper
from recbole_mmkd.model.freezing import freeze
from recbole_mmkd.model.student.sgfd import SGFDMixin


class SGFDMAMLMixin(SGFDMixin):
    r""":class:`~recbole_mmkd.model.student.sgfd.SGFDMixin` over MAML. MAML has no
    per-modality projection, so the students take ``student_role: input``: MAML's feature
    projector reads the joint L2 norm of the students' outputs, as in the release (there the
    projector reads ``leaky_relu(Dense(d)(x))`` of each modality).

    The release's quirks, as options: with MAML's ``train_networks: false`` its optimiser's
    ``var_list`` holds the two embedding tables alone, so SGFD's students, teacher and
    classifiers never train either (the released SGFD-MAML is MAML reading frozen random
    student projections, whatever ce_weight, kd_weight and T are); ``released_kd_terms:
    true`` keeps the release's re-binding of its response-KD terms, which leaves its textual
    term alone (the visual one is overwritten): here the ``text`` modality's term where the
    dataset has one, else the last modality's; every other modality's is dropped.

    Deviations: SGFD's losses are this project's SGFD (L1 response KD, mean CE, a classifier
    per modality, the released BM3/GRCN tower); the MAML release's per-row MSE response KD,
    summed CE, one classifier shared by every modality, width-halving tower without L2 norm
    and its 25-label cap are not reproduced, and with ``train_networks: false`` none of them
    could change a trained model; the students here L2-normalise their outputs before the
    joint norm (the release's do not), start at PyTorch's Linear init (the release's at
    Glorot's), and ``ce_on_softmax`` stays SGFD.yaml's false (the release puts a softmax
    before its CE). A batch's positives enter the distillation losses once, as in the release
    (RecBole repeats each pair once per negative; :meth:`distillation_items` takes one copy).
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.released_kd_terms: bool = config["released_kd_terms"]
        if not self.train_networks:
            frozen = set(self.frozen_parameters)  # MAML's networks, and SGFD's modules
            self.frozen_parameters = freeze(
                self, lambda name: name in frozen or name.startswith(("students", "teacher"))
            )

    def distillation_items(self, interaction) -> torch.Tensor:
        """Each positive once and every negative: RecBole tiles a batch's pairs once per
        negative (the first ``rows / W`` rows are the pairs), the release distils over its
        positives once."""
        pairs = interaction[self.ITEM_ID].shape[0] // self.n_negatives
        return torch.cat([interaction[self.ITEM_ID][:pairs], interaction[self.NEG_ITEM_ID]])

    def distillation_losses(self, items: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = super().distillation_losses(items)
        if self.released_kd_terms:  # one modality's response term alone
            last = "text" if "text" in self.modalities else self.modalities[-1]
            raw = self.raw_feature(last, items)
            teacher = F.normalize(self.teacher.towers[last](raw), dim=-1)
            classifier = self.teacher.classifiers[last]
            student = classifier(self._student(last, raw))
            parts["response"] = sgfd_response_kd(student, classifier(teacher), self.temperature)
        return parts


register_wrapper(
    "SGFD", SGFDMAMLMixin, "MAML",
    "SGFD over MAML: MAML's feature projector reads SGFD's distilled student features.",
)  # fmt: skip
