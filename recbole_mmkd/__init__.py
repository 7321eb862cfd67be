"""recbole-mmkd: multimodal recommendation and knowledge distillation benchmarks on RecBole.

.. code-block:: python

    import recbole_mmkd as mm

    runs = mm.run("LightGCN", "tiktok", seeds=[2020])
    report = mm.run_benchmark("default")
    print(report.to_markdown())

The API (:mod:`recbole_mmkd.api`) loads on first use, so ``import recbole_mmkd`` stays light.
"""

from recbole_mmkd import compat  # noqa: F401  (must run before recbole is imported)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "DataError",
    "MMKDError",
    "Report",
    "RunResult",
    "SweepResult",
    "__version__",
    "export_tables",
    "load_results",
    "plan_benchmark",
    "report",
    "run",
    "run_benchmark",
    "run_models",
    "sweep",
    "tune_benchmark",
]
_ERRORS = {"ConfigError", "DataError", "MMKDError"}


def __getattr__(name: str):
    if name in _ERRORS:
        from recbole_mmkd import errors

        return getattr(errors, name)
    if name in __all__:
        from recbole_mmkd import api

        return getattr(api, name)
    raise AttributeError(f"module 'recbole_mmkd' has no attribute {name!r}")
