"""Ray Tune sweeps over any config keys (for KD methods: ``ce_weight``, ``kd_weight``,
``t_decay``), selected on the validation metric only, then re-run on several seeds and tested.

A sweep is declared in ``properties/sweep/<name>.yaml`` (:mod:`recbole_mmkd.specs` documents
the format). The parts: :mod:`.space` (the points to run), :mod:`.ledger` (finished trials,
the table, the selection), :mod:`.backend` (Ray Tune).
"""

from recbole_mmkd.specs import Sweep, load_sweep
from recbole_mmkd.tune.backend import final_runs, run_sweep, trial
from recbole_mmkd.tune.ledger import (
    BEST,
    LEDGER,
    POINT,
    append_ledger,
    read_ledger,
    select_best,
    sweep_table,
)
from recbole_mmkd.tune.space import (
    param_space,
    planned_points,
    planned_trials,
    remaining_points,
)

__all__ = [
    "BEST",
    "LEDGER",
    "POINT",
    "Sweep",
    "append_ledger",
    "final_runs",
    "load_sweep",
    "param_space",
    "planned_points",
    "planned_trials",
    "read_ledger",
    "remaining_points",
    "run_sweep",
    "select_best",
    "sweep_table",
    "trial",
]
