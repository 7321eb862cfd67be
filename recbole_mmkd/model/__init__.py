"""Model registry: every model is found by name, like RecBole's own.

Project models register themselves with :func:`register_model`; RecBole's own models are
reachable as ``recbole.<Name>`` (e.g. ``recbole.LightGCN``), and a model of your own as
``package.module:ClassName`` (its YAML: ``properties/model/<ClassName>.yaml``, or the names
in its ``config_names``).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from recbole.model.abstract_recommender import AbstractRecommender

from recbole_mmkd.errors import ConfigError

_REGISTRY: dict[str, type[AbstractRecommender]] = {}
RECBOLE_PREFIX = "recbole."
# Loaded by name, so that the registry's source does not import (and a run's code digest does
# not cover) every model; student after general (its wrappers subclass registered backbones).
BUILTIN_PACKAGES = ("general", "teacher", "student")


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


def get_model(name: str, *, source: str = "model") -> type[AbstractRecommender]:
    """The model class registered as ``name``, or RecBole's own for ``recbole.<Name>``;
    :class:`~recbole_mmkd.errors.ConfigError` (naming ``source``) for any other name."""
    _load_builtin_models()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" in name:
        return _import_model(name, source=source)
    if name.startswith(RECBOLE_PREFIX):
        from recbole.utils import get_model as recbole_get_model

        try:
            return recbole_get_model(name[len(RECBOLE_PREFIX) :])
        except ValueError:
            raise ConfigError(
                source, name, "RecBole has no such model", "see RecBole's model list"
            ) from None
    close = difflib.get_close_matches(name, sorted(_REGISTRY), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(
        source,
        name,
        f"unknown model{hint}",
        f"name one of {', '.join(sorted(_REGISTRY))}, or RecBole's own as '{RECBOLE_PREFIX}<Name>'",
    )


def _import_model(name: str, *, source: str) -> type[AbstractRecommender]:
    """A model class named ``package.module:ClassName``: a model of your own, found without
    registering it (also in Ray workers, which import the module from their ``sys.path``)."""
    module_name, _, class_name = name.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(
            source, name, f"cannot be imported ({err})", "name an importable module:Class"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, AbstractRecommender)):
        raise ConfigError(source, name, "is not a RecBole recommender", "name a model class")
    return cls


def model_names() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def _load_builtin_models() -> None:
    for package in BUILTIN_PACKAGES:  # registers on import
        importlib.import_module(f"{__name__}.{package}")
