"""A sweep's search space: the points a grid or random search runs, planned up front (so a
resume knows exactly which are left), and Ray Tune's space for TPE."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from typing import Any

import numpy as np

from recbole_mmkd.specs import Sweep, space_values


def param_space(sweep: Sweep) -> dict[str, Any]:
    """Ray Tune's search space for ``sweep.space``, for TPE (grid and random sweeps run a
    list of points planned up front, :func:`planned_points`)."""
    from ray import tune

    space = {}
    for key, value in sweep.space.items():
        if isinstance(value, list):
            space[key] = tune.choice(value)
        else:
            ((kind, args),) = value.items()
            space[key] = {"loguniform": tune.loguniform, "uniform": tune.uniform}[kind](*args) \
                if kind != "choice" else tune.choice(args)  # fmt: skip
    return space


def anchor_point(sweep: Sweep) -> dict[str, Any]:
    """One point of the space, fixed by the space alone (each key's first value, or its
    range's low end): where a sweep's identity pins the keys every trial sets."""
    return {key: _first(value) for key, value in sweep.space.items()}


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0]
    ((_, args),) = value.items()
    return args[0]


def planned_trials(sweep: Sweep) -> int:
    """How many trials the sweep runs in all."""
    if sweep.search == "grid":
        return sweep.num_samples * math.prod(len(space_values(v)) for v in sweep.space.values())
    return sweep.num_samples


def planned_points(sweep: Sweep) -> list[dict[str, Any]]:
    """Every configuration a grid or random sweep runs, fixed up front: the grid's
    combinations ``num_samples`` times, or ``num_samples`` draws seeded by ``sweep.seed``."""
    if sweep.search == "grid":
        values = [v if isinstance(v, list) else v["choice"] for v in sweep.space.values()]
        combos = list(itertools.product(*values))
        return [dict(zip(sweep.space, c, strict=True)) for _ in range(sweep.num_samples)
                for c in combos]  # fmt: skip
    if sweep.search == "random":
        rng = np.random.default_rng(sweep.seed)
        return [
            {k: _draw(v, rng) for k, v in sweep.space.items()} for _ in range(sweep.num_samples)
        ]
    raise ValueError("a TPE sweep chooses its points as it goes")


def _draw(value: Any, rng: np.random.Generator) -> Any:
    options = value if isinstance(value, list) else value.get("choice")
    if options is not None:
        return options[int(rng.integers(len(options)))]
    ((kind, (low, high)),) = value.items()
    if kind == "uniform":
        return float(rng.uniform(low, high))
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def remaining_points(planned: list[dict], finished: list[dict]) -> list[dict]:
    """``planned`` less one occurrence of each finished point (a grid repeated by
    ``num_samples`` holds the same point several times)."""
    left = Counter(json.dumps(p, sort_keys=True) for p in finished)
    out = []
    for point in planned:
        key = json.dumps(point, sort_keys=True)
        if left[key]:
            left[key] -= 1
        else:
            out.append(point)
    return out
