"""Model registry: every model is found by name, like RecBole's own.

Project models register themselves with :func:`register_model`; RecBole's own models are
reachable as ``recbole.<Name>`` (e.g. ``recbole.LightGCN``).
"""

from __future__ import annotations

from collections.abc import Callable

from recbole.model.abstract_recommender import AbstractRecommender

_REGISTRY: dict[str, type[AbstractRecommender]] = {}
RECBOLE_PREFIX = "recbole."


def register_model(
    name: str | None = None,
) -> Callable[[type[AbstractRecommender]], type[AbstractRecommender]]:
    """Class decorator: register a model under ``name`` (default: the class name)."""

    def wrap(cls: type[AbstractRecommender]) -> type[AbstractRecommender]:
        key = name or cls.__name__
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"model name {key!r} is already registered to {_REGISTRY[key]}")
        _REGISTRY[key] = cls
        return cls

    return wrap


def register_wrapper(
    prefix: str, mixin: type, base_name: str, summary: str, **attributes
) -> type[AbstractRecommender]:
    """Register ``<prefix>-<base_name>``: a class built from ``mixin`` over the registered
    ``base_name``, reading the YAML of the base, then ``<prefix>``, then its own."""
    name = f"{prefix}-{base_name}"
    cls = type(
        f"{prefix}_{base_name}",
        (mixin, get_model(base_name)),
        {
            "__doc__": f"{summary}\n\n{mixin.__doc__}",
            "__module__": mixin.__module__,
            "config_names": (base_name, prefix, name),
            **attributes,
        },
    )
    return register_model(name)(cls)


def get_model(name: str) -> type[AbstractRecommender]:
    """The model class registered as ``name``, or RecBole's own for ``recbole.<Name>``."""
    _load_builtin_models()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(RECBOLE_PREFIX):
        from recbole.utils import get_model as recbole_get_model

        return recbole_get_model(name[len(RECBOLE_PREFIX) :])
    raise KeyError(
        f"unknown model {name!r}. Registered: {', '.join(sorted(_REGISTRY))}; "
        f"RecBole's own models are named '{RECBOLE_PREFIX}<Name>'"
    )


def model_names() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def _load_builtin_models() -> None:
    from recbole_mmkd.model import general, student, teacher  # noqa: F401  (register on import)
