"""recbole-mmkd: multimodal recommendation and knowledge distillation benchmarks on RecBole."""

from recbole_mmkd import compat  # noqa: F401  (must run before recbole is imported)

__version__ = "0.1.0"
