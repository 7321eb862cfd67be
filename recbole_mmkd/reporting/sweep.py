"""The figure of a sweep's trials."""

from __future__ import annotations

import pandas as pd

from recbole_mmkd.specs import Sweep
from recbole_mmkd.tune.ledger import BEST


def sweep_figure(table: pd.DataFrame, sweep: Sweep, metric: str):
    """The finished trials' best validation values over two swept keys (``kd_weight`` by
    ``ce_weight`` where swept, else the first two numeric ones, then categorical ones such as
    ``kd_method``), one panel per value of a third (``t_decay``): heatmaps for grid searches,
    a scatter of the trials over two numeric keys otherwise. None where too few keys were
    swept or no trial finished."""
    from recbole_mmkd.reporting import figures
    from recbole_mmkd.reporting.tables import metric_label

    done = table[(table["status"] == "done") & table[BEST].notna()]
    numeric = [k for k in sweep.space if pd.api.types.is_numeric_dtype(table[k])]
    preferred = [k for k in ("kd_weight", "ce_weight", "t_decay") if k in numeric]
    numeric = preferred + [k for k in numeric if k not in preferred]
    label = f"best validation {metric_label(metric)}"
    if sweep.search == "grid":
        keys = numeric + [k for k in sweep.space if k not in numeric]
        if len(keys) < 2 or done.empty:
            return None
        facet = keys[2] if len(keys) > 2 else None
        return figures.sweep_heatmaps(
            done, x=keys[0], y=keys[1], facet=facet, value=BEST, label=label
        )
    if len(numeric) < 2 or done.empty:
        return None
    return figures.sweep_scatter(done, numeric[0], numeric[1], value=BEST, label=label)
