"""Ray Tune sweeps over any config keys (for KD methods: ``ce_weight``, ``kd_weight``,
``t_decay``), selected on the validation metric only, then re-run on several seeds and tested.

A sweep is declared in ``properties/sweep/<name>.yaml``:

.. code-block:: yaml

    model: SGFD-BM3
    dataset: tiktok
    search: grid              # grid | random | tpe (Optuna's TPE through Ray Tune)
    num_samples: 16           # random / tpe: trials; grid: repeats of the grid (1)
    scheduler: asha           # none | asha (early stopping on the per-epoch validation metric)
    space:
      ce_weight: [0.01, 0.1, 1.0]            # a list: grid values (choice for random / tpe)
      kd_weight: {loguniform: [0.001, 1.0]}  # or {uniform: [a, b]}, {choice: [...]}
    set: {epochs: 200}        # fixed overrides for every trial
    seed: 2020                # the seed of every trial
    final_seeds: [2020, 2021, 2022, 2023, 2024]

Resources: ``cpus_per_trial``, ``gpus_per_trial`` (fractions share a GPU). Each trial runs
on the device Ray gives it (``MMKDConfig`` never rewrites ``CUDA_VISIBLE_DEVICES``).

Resume does not rely on Ray's saved experiment state (Ray copies it into the sweep folder
without an atomic rename, so a kill can leave it truncated). The driver appends every
finished trial to ``<out>/trials.jsonl`` (fsync'd; a line cut by a kill is ignored). A sweep
killed at any point continues with ``resume=True`` as a new Tune launch over what the ledger
lacks: the grid points (or, for random search, the seeded draws) not finished yet, or for
TPE the remaining trials, with Optuna told the finished ones' results. Trials that were
running at the kill restart; ASHA's rungs restart with the new launch.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from recbole_mmkd.config import PROPERTIES, build_config
from recbole_mmkd.data.files import DataError

logger = logging.getLogger(__name__)
SWEEPS = PROPERTIES / "sweep"
SEARCHES = ("grid", "random", "tpe")
SCHEDULERS = ("none", "asha")
DISTRIBUTIONS = ("loguniform", "uniform", "choice")
BEST = "best_valid"  # the metric every trial reports: best validation value so far
LEDGER = "trials.jsonl"  # one line per finished trial, written by the driver
POINT = "point"  # grid and random trials get their whole configuration under this key


@dataclass(frozen=True)
class Sweep:
    name: str
    model: str
    dataset: str
    space: dict[str, Any]
    search: str = "grid"
    num_samples: int = 1
    scheduler: str = "none"
    grace_period: int = 10
    reduction_factor: int = 3
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 2020
    final_seeds: list[int] = field(default_factory=lambda: [2020, 2021, 2022, 2023, 2024])
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int = 0  # 0: as many as the resources allow


def load_sweep(name: str, folder: Path = SWEEPS) -> Sweep:
    """Read and validate ``<folder>/<name>.yaml``; errors name the file, the field and the fix."""
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise DataError(path, "sweep", "no such file", f"name one of: {', '.join(known) or 'none'}")
    spec = yaml.safe_load(path.read_text()) or {}
    for key in ("model", "dataset", "space"):
        if not spec.get(key):
            raise DataError(path, key, "missing", f"add '{key}:' (see recbole_mmkd/tune.py)")
    known_keys = set(Sweep.__dataclass_fields__) - {"name", "overrides"} | {"set"}
    unknown = set(spec) - known_keys
    if unknown:
        raise DataError(path, sorted(unknown)[0], "unknown key", f"use one of {sorted(known_keys)}")
    sweep = Sweep(name=name, overrides=dict(spec.pop("set", None) or {}), **spec)
    if sweep.search not in SEARCHES:
        raise DataError(path, "search", f"unknown {sweep.search!r}", f"use one of {SEARCHES}")
    if sweep.scheduler not in SCHEDULERS:
        raise DataError(
            path, "scheduler", f"unknown {sweep.scheduler!r}", f"use one of {SCHEDULERS}"
        )
    for key, value in sweep.space.items():
        _check_dimension(path, sweep.search, key, value)
    return sweep


def _check_dimension(path: Path, search: str, key: str, value: Any) -> None:
    if isinstance(value, list) and value:
        return
    if not (isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS):
        raise DataError(
            path, f"space.{key}", f"bad value {value!r}", f"use a list or one of {DISTRIBUTIONS}"
        )
    ((kind, args),) = value.items()
    if kind != "choice" and search == "grid":
        raise DataError(path, f"space.{key}", f"{kind} in a grid search", "list the grid values")
    if kind != "choice" and not (isinstance(args, list) and len(args) == 2 and args[0] < args[1]):
        raise DataError(path, f"space.{key}", f"bad {kind} bounds {args!r}", "use [low, high]")
    if kind == "loguniform" and args[0] <= 0:
        raise DataError(path, f"space.{key}", "loguniform bound <= 0", "use positive bounds")


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


def planned_trials(sweep: Sweep) -> int:
    """How many trials the sweep runs in all."""
    if sweep.search == "grid":
        return sweep.num_samples * math.prod(len(v) for v in sweep.space.values())
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


def trial(params: dict[str, Any], static: dict[str, Any]) -> None:
    """One Ray Tune trial: train with ``params`` on top of the sweep's overrides and report the
    validation metric after every evaluation. The test split is never evaluated here."""
    import torch
    from ray import tune
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    import recbole_mmkd  # noqa: F401  (compat shims first, in the worker process)
    from recbole_mmkd.data import MultimodalDataset
    from recbole_mmkd.model import get_model
    from recbole_mmkd.trainer import MMKDTrainer

    torch.set_num_threads(max(1, int(static["cpus"])))
    overrides = {**static["overrides"], **params.get(POINT, params), "seed": static["seed"]}
    overrides["use_gpu"] = static["gpus"] > 0
    config = build_config(static["model"], static["dataset"], overrides, static["data_path"])
    init_seed(static["seed"], config["reproducibility"])
    train, valid, _ = data_preparation(config, MultimodalDataset(config))
    init_seed(static["seed"], config["reproducibility"])
    net = get_model(static["model"])(config, train.dataset).to(config["device"])
    best = [-math.inf]

    def report(epoch: int, score: float, _result: dict) -> None:
        best[0] = max(best[0], score)
        tune.report(
            {"valid": score, BEST: best[0], "epoch": epoch, "device": str(config["device"])}
        )

    MMKDTrainer(config, net).fit(train, valid, callback=report)


def select_best(table: pd.DataFrame) -> pd.Series:
    """The finished trial with the highest best validation value (ties: the earlier trial);
    failed trials are never selected."""
    done = table[table[BEST].notna()]
    if "status" in done:
        done = done[done["status"] == "done"]
    if done.empty:
        raise RuntimeError("no trial reported a validation value")
    return done.loc[done[BEST].idxmax()]


def sweep_table(rows: list[dict[str, Any]], sweep: Sweep) -> pd.DataFrame:
    """Every recorded trial: parameters, best validation value, epochs run, seconds, status
    (``done``, or ``error`` for a trial that failed; a resume runs its point again), device."""
    columns = ["trial_id", *sweep.space, BEST, "epochs", "seconds", "status", "device"]
    return pd.DataFrame(
        [{"trial_id": r["trial_id"], **r["point"], **{k: r.get(k) for k in columns[-5:]},
          BEST: r.get(BEST)} for r in rows],
        columns=columns,
    )  # fmt: skip


def _progress_callback(sweep: Sweep, out: Path, finished: list[dict]):
    from ray import tune

    planned, ledger, log = planned_trials(sweep), out / LEDGER, out / "progress.log"

    class Progress(tune.Callback):
        """Records every finished trial in the ledger, and says one line per trial state
        change, with the best validation value so far, to the logger and ``progress.log``."""

        def __init__(self) -> None:
            values = [r[BEST] for r in finished]
            self.best, self.done = max(values, default=-math.inf), len(finished)

        def _say(self, line: str) -> None:
            logger.info(line)
            with open(log, "a") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

        def _record(self, trial, status: str) -> dict:
            result = trial.last_result or {}
            point = trial.config.get(POINT) or {k: trial.config[k] for k in sweep.space}
            row = {
                "trial_id": trial.trial_id,
                "point": point,
                BEST: result.get(BEST),
                "epochs": result.get("epoch", -1) + 1 if result else 0,
                "seconds": result.get("time_total_s"),
                "status": status,
                "device": result.get("device"),
            }
            append_ledger(ledger, row)
            return row

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            config = trial.config.get(POINT) or trial.config
            self._say(f"started {trial.trial_id}: {_short(config)}")

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            row = self._record(trial, "done")
            self.done += 1
            value = row[BEST] if row[BEST] is not None else float("nan")
            self.best = max(self.best, value) if value == value else self.best
            self._say(
                f"done {trial.trial_id} ({self.done}/{planned}): best valid "
                f"{value:.5f}; best so far {self.best:.5f}"
            )

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            row = self._record(trial, "error")
            self._say(f"failed {trial.trial_id}: {_short(row['point'])}")

    return Progress()


def _short(config: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in config.items()
    )


def run_sweep(
    sweep: Sweep,
    out: Path,
    data_path: Path | None = None,
    resume: bool = False,
    address: str | None = None,
) -> pd.DataFrame:
    """Run (or, with ``resume``, continue) the sweep; write and return its trial table."""
    import ray
    from ray import tune

    from recbole_mmkd.model import get_model
    from recbole_mmkd.pipeline import teacher_for

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = out / "ray"
    records = read_ledger(out / LEDGER)
    if records and not resume:
        raise DataError(
            out / LEDGER, "trials", "this folder already holds a sweep's finished trials",
            "add --resume to continue that sweep, or give another --out",
        )  # fmt: skip
    finished = [r for r in records if r["status"] == "done"]
    overrides = dict(sweep.overrides)
    if getattr(get_model(sweep.model), "needs_teacher", False):  # trained once, before any trial
        probe = {**overrides, "seed": sweep.seed}
        overrides.update(
            teacher_for(
                sweep.model, sweep.dataset, sweep.seed, out / "runs", probe, data_path, True
            )
        )
    static = {
        "model": sweep.model,
        "dataset": sweep.dataset,
        "data_path": str(data_path) if data_path else None,
        "overrides": overrides,
        "seed": sweep.seed,
        "cpus": sweep.cpus_per_trial,
        "gpus": sweep.gpus_per_trial,
    }
    if sweep.search == "tpe":
        todo, space = sweep.num_samples - len(finished), param_space(sweep)
        search = _optuna(sweep, finished)
    else:
        points = remaining_points(planned_points(sweep), [r["point"] for r in finished])
        todo, space, search = len(points), {POINT: tune.grid_search(points)}, None
    start = time.perf_counter()
    if todo > 0:
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        resources = {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(trial, static=static), resources)
        launch = f"{sweep.name}-{len(list(storage.glob(f'{sweep.name}-*')))}"
        logger.info("%s: %d of %d trials to run (launch %s)", sweep.name, todo,
                    planned_trials(sweep), launch)  # fmt: skip
        tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=BEST,
                mode="max",
                num_samples=todo if sweep.search == "tpe" else 1,
                search_alg=search,
                scheduler=_scheduler(sweep),
                max_concurrent_trials=sweep.max_concurrent or None,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=launch,
                storage_path=str(storage),
                verbose=0,
                callbacks=[_progress_callback(sweep, out, finished)],
            ),
        ).fit()
    table = sweep_table(read_ledger(out / LEDGER), sweep)
    table.to_csv(out / f"sweep-{sweep.name}.csv", index=False)
    metric = build_config(sweep.model, sweep.dataset, overrides, data_path)["valid_metric"]
    figure = sweep_figure(table, sweep, metric)
    if figure is not None:
        from recbole_mmkd.report.figures import save

        save(figure, out / "figures" / f"sweep-{sweep.name}")
    logger.info(
        "sweep %s: %d trials in %.0f s", sweep.name, len(table), time.perf_counter() - start
    )
    return table


def sweep_figure(table: pd.DataFrame, sweep: Sweep, metric: str):
    """The finished trials' best validation values over two swept keys (``kd_weight`` by
    ``ce_weight`` where swept, else the first two numeric ones, then categorical ones such as
    ``kd_method``), one panel per value of a third (``t_decay``): heatmaps for grid searches,
    a scatter of the trials over two numeric keys otherwise. None where too few keys were
    swept or no trial finished."""
    from recbole_mmkd.report import figures
    from recbole_mmkd.report.tables import metric_label

    done = table[(table["status"] == "done") & table[BEST].notna()]
    numeric = [k for k in sweep.space if pd.api.types.is_numeric_dtype(table[k])]
    preferred = [k for k in ("kd_weight", "ce_weight", "t_decay") if k in numeric]
    numeric = preferred + [k for k in numeric if k not in preferred]
    label = f"best validation {metric_label(metric)}"
    if sweep.search == "grid":
        keys = numeric + [k for k in sweep.space if k not in numeric]
        if len(keys) < 2 or done.empty:
            return None
        return figures.sweep_heatmaps(done, keys[0], keys[1], keys[2] if len(keys) > 2 else None,
                                      BEST, label)  # fmt: skip
    if len(numeric) < 2 or done.empty:
        return None
    return figures.sweep_scatter(done, numeric[0], numeric[1], BEST, label)


def _optuna(sweep: Sweep, finished: list[dict]):
    """Optuna's TPE, told the results of the trials a resumed sweep already finished."""
    from ray.tune.search.optuna import OptunaSearch

    if not finished:
        return OptunaSearch(seed=sweep.seed)
    return OptunaSearch(
        seed=sweep.seed,
        points_to_evaluate=[r["point"] for r in finished],
        evaluated_rewards=[r[BEST] for r in finished],
    )


def _scheduler(sweep: Sweep):
    if sweep.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=int(sweep.overrides.get("epochs", 1000)),
        grace_period=sweep.grace_period,
        reduction_factor=sweep.reduction_factor,
    )


def final_runs(sweep: Sweep, best: pd.Series, out: Path, data_path: Path | None = None) -> list:
    """Re-run the best configuration on ``final_seeds``; test once each; ordinary RunResults."""
    from recbole_mmkd.pipeline import run_one

    params = {k: _plain(best[k]) for k in sweep.space}
    logger.info("best configuration on validation: %s", _short(params))
    overrides = {**sweep.overrides, **params}
    return [
        run_one(sweep.model, sweep.dataset, seed, Path(out) / "runs", overrides, data_path)
        for seed in sweep.final_seeds
    ]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
