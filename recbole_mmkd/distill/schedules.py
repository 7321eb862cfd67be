"""Temperature schedules for distillation losses, as functions of the epoch.

``t_decay`` is SGFD's name for its softmax temperature: the released code keeps it constant
for the whole run (:func:`constant_temperature`). :func:`decayed_temperature` is the
extension its name suggests: the temperature starts at ``t_decay`` and shrinks geometrically
per epoch towards ``floor``, so early epochs transfer soft (dark-knowledge) targets and later
ones sharper ones.
"""

from __future__ import annotations

from recbole_mmkd.errors import ConfigError

SCHEDULES = ("constant", "exponential")


def constant_temperature(t_decay: float, epoch: int) -> float:
    """SGFD's released behaviour: ``T = t_decay`` at every epoch."""
    _check(t_decay)
    return t_decay


def decayed_temperature(t_decay: float, epoch: int, rate: float, *, floor: float = 1.0) -> float:
    """``T(epoch) = max(floor, t_decay * rate ** epoch)`` with ``0 < rate <= 1``."""
    _check(t_decay)
    if not 0 < rate <= 1:
        raise ConfigError(
            "config", "t_decay_rate", f"{rate} is outside (0, 1]", "give 0 < rate <= 1"
        )
    return max(floor, t_decay * rate**epoch)


def temperature(schedule: str, t_decay: float, epoch: int, rate: float, floor: float) -> float:
    """The temperature of ``schedule`` (one of :data:`SCHEDULES`) at ``epoch``."""
    if schedule == "constant":
        return constant_temperature(t_decay, epoch)
    if schedule == "exponential":
        return decayed_temperature(t_decay, epoch, rate, floor=floor)
    raise ConfigError("config", "t_schedule", f"unknown {schedule!r}", f"use one of {SCHEDULES}")


def _check(t_decay: float) -> None:
    if t_decay <= 0:
        raise ConfigError(
            "config", "t_decay", f"{t_decay} is not positive", "give a temperature > 0"
        )


def annealed_temperature(epoch: int, start: float, end: float, horizon: int) -> float:
    r"""DE-RRD's and topology distillation's Gumbel-softmax schedule (Kang et al., CIKM 2020
    and KDD 2021): :math:`\tau(e) = \tau_0\,(\tau_{end}/\tau_0)^{e/E}`, clamped at
    :math:`\tau_{end}` from epoch ``horizon`` (:math:`E`) on."""
    if not 0 < end <= start or horizon <= 0:
        raise ValueError(f"need 0 < end <= start and horizon > 0, got {start}, {end}, {horizon}")
    return max(end, start * (end / start) ** (epoch / horizon))
