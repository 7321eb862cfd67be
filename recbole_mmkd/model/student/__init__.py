"""Distilled students and distillation wrappers over backbones."""

# modality_dropout first: kd wraps its MDLightGCN
from recbole_mmkd.model.student import modality_dropout  # noqa: F401, I001
from recbole_mmkd.model.student import cfdtbd, cfdtbd_described, kd, promptmm, sgfd  # noqa: F401
from recbole_mmkd.model.student import sgfd_maml  # noqa: F401  (after sgfd)
