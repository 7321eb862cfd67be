"""Synchronous successive halving over a grid (``scheduler: halving``).

Round k trains its points with ``epochs`` capped at ``grace_period * reduction_factor**k``;
the best ``ceil(n / reduction_factor)`` of its ``n`` points (by best validation value within
the cap) go on to the next round with the longer cap, each continued from the training state
its trial left at the previous cap (:class:`~recbole_mmkd.trainer.Snapshot`: model, optimiser,
early stopping and every random stream, so that it goes on exactly as a run trained from the
start; a model class of a user's marked ``resumable = False`` is trained again from the
start); the round with a single point left, or a cap past the config's ``epochs``, trains
without a cap, to the early stop. A point that stopped early within its cap is finished: it
keeps its place in the ranking and is not run again. Every point of a round is compared with
every other at the same number of epochs, so the order in which trials happen to run or
finish does not decide (it did with asynchronous ASHA, which promotes the first trials to
reach a rung before others have).

The rounds are recomputed from the ledger's records, so a killed search resumes where it
stopped. Cost: with 8 points, reduction 3 and a final run of E epochs, 8 x grace + 3 x 2
grace + (E - 3 grace) epochs at most (E + 11 grace), against 8 x E for the whole grid; trained
again from the start, each round would repeat its points' earlier epochs (E + 17 grace).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from recbole_mmkd.tune.ledger import BEST, BUDGET


def _key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True)


def _value(record: dict[str, Any]) -> float:
    value = record.get(BEST)
    return -math.inf if value is None else value


def finished_early(record: dict[str, Any]) -> bool:
    """Whether a record is a finished result: uncapped, or stopped before its cap."""
    budget = record.get(BUDGET)
    return budget is None or record.get("epochs", 0) < budget


def round_cap(round_index: int, points: int, *, grace: int, factor: int, epochs: int) -> int | None:
    """The epoch cap of round ``round_index`` with ``points`` points in it: None (no cap) for
    a single point or once the cap reaches the config's ``epochs``."""
    cap = grace * factor**round_index
    return None if points <= 1 or cap >= epochs else cap


def next_round(
    planned: list[dict[str, Any]],
    records: list[dict[str, Any]],
    *,
    grace: int,
    factor: int,
    epochs: int,
) -> tuple[int | None, list[dict[str, Any]]] | None:
    """The next round to run, ``(cap, points)``, given the finished ``records`` of the grid
    ``planned``; None when the search is complete."""
    survivors = list(planned)
    for round_index in itertools.count():  # ends: each round keeps fewer points
        cap = round_cap(round_index, len(survivors), grace=grace, factor=factor, epochs=epochs)
        found = {
            _key(r["point"]): r
            for r in records
            if r.get(BUDGET, "absent") == cap and r.get("status") == "done"
        }
        missing = [p for p in survivors if _key(p) not in found]
        if missing:
            return cap, missing
        if cap is None:
            return None
        ranked = sorted(survivors, key=lambda p: -_value(found[_key(p)]))  # stable: grid order
        kept = ranked[: math.ceil(len(survivors) / factor)]
        survivors = [p for p in kept if not finished_early(found[_key(p)])]
        if not survivors:
            return None
