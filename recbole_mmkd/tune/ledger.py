"""The trial ledger: one fsync'd JSON line per finished trial, written by the driver.

Resume does not rely on Ray's saved experiment state (Ray copies it into the sweep folder
without an atomic rename, so a kill can leave it truncated). A line cut by a kill is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from recbole_mmkd.specs import Sweep

BEST = "best_valid"  # the metric every trial reports: best validation value so far
LEDGER = "trials.jsonl"  # one line per finished trial, written by the driver
POINT = "point"  # grid and random trials get their whole configuration under this key
BUDGET = "budget"  # a halving round's epoch cap (None: uncapped, trained to its early stop)
RESUMED = "resumed_from"  # a halving trial continued from its previous round's state: its epochs


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's trial records; a line cut short by a kill is skipped."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def append_ledger(path: Path, row: dict[str, Any]) -> None:
    """Append one record and fsync it; a record cut by an earlier kill is closed first."""
    with open(path, "ab+") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
        handle.write(json.dumps(row).encode() + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def sweep_table(rows: list[dict[str, Any]], sweep: Sweep) -> pd.DataFrame:
    """Every recorded trial: parameters, best validation value, epochs run, seconds, status
    (``done``, or ``error`` for a trial that failed; a resume runs its point again), device."""
    recorded = [BEST, "epochs", "seconds", "status", "device"]
    if any(BUDGET in r for r in rows):  # successive halving: each record's round cap
        recorded.append(BUDGET)
    return pd.DataFrame(
        [{"trial_id": r["trial_id"], **r["point"], **{k: r.get(k) for k in recorded}}
         for r in rows],
        columns=["trial_id", *sweep.space, *recorded],
    )  # fmt: skip


def select_best(table: pd.DataFrame) -> pd.Series:
    """The finished trial with the highest best validation value (ties: the one recorded
    first, in the ledger's order of completion); failed trials are never selected, nor a
    successive-halving round's run cut at its cap (only uncapped ones and those that stopped
    early within their cap are results)."""
    done = table[table[BEST].notna()]
    if "status" in done:
        done = done[done["status"] == "done"]
    if BUDGET in done:  # numeric: a column of None alone (no round capped) is NaN
        budget = pd.to_numeric(done[BUDGET])
        done = done[budget.isna() | (done["epochs"] < budget)]
    if done.empty:
        raise RuntimeError("no trial reported a validation value")
    return done.loc[done[BEST].idxmax()]


def plain(value: Any) -> Any:
    """A numpy scalar (a trial table's cell) as the Python value it holds."""
    return value.item() if hasattr(value, "item") else value
