"""Checks of a model's named options, refused before anything trains."""

from __future__ import annotations

from collections.abc import Sequence

from recbole_mmkd.errors import ConfigError


def check_choice(key: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` when it is one of ``allowed``; otherwise a one-line error naming the key."""
    if value not in allowed:
        raise ConfigError(
            "config", key, f"is {value!r}, not one of {', '.join(allowed)}",
            f"set {key} to one of {', '.join(allowed)}",
        )  # fmt: skip
    return value
