"""Distilled students and distillation wrappers over backbones."""

from recbole_mmkd.model.student import sgfd  # noqa: F401  (registers SGFD-<backbone>)
