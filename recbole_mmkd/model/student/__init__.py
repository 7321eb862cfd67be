"""Distilled students and distillation wrappers over backbones."""

from recbole_mmkd.model.student import kd, sgfd  # noqa: F401  (registers KD-*, SGFD-*)
