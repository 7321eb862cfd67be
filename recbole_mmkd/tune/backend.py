"""The Ray Tune backend of sweeps: trials selected on the validation metric only, then the
best configuration re-run on several seeds and tested once.

Each trial runs on the device Ray gives it (``MMKDConfig`` never rewrites
``CUDA_VISIBLE_DEVICES``), locally or on an existing Ray cluster (``address``). A sweep killed
at any point continues with ``resume=True`` as a new Tune launch over what the ledger
(:mod:`.ledger`) lacks: the grid points (or, for random search, the seeded draws) not finished
yet, or for TPE the remaining trials, with Optuna told the finished ones' results. A trial
leaves its training state on disk about every ten minutes
(:meth:`~recbole_mmkd.trainer.MMKDTrainer.fit_checkpointed`; a halving round also at its cap),
so a trial running at the kill goes on from there, exactly as it would have trained (models
marked ``resumable = False`` start again); ASHA's rungs restart with the new launch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recbole_mmkd.allocator import KEEP_ENV
from recbole_mmkd.errors import DataError
from recbole_mmkd.specs import Sweep, check_sweep
from recbole_mmkd.tune.halving import next_round
from recbole_mmkd.tune.ledger import (
    BEST,
    BUDGET,
    LEDGER,
    POINT,
    RESUMED,
    append_ledger,
    plain,
    read_ledger,
    sweep_table,
)
from recbole_mmkd.tune.space import (
    anchor_point,
    param_space,
    planned_points,
    planned_trials,
    remaining_points,
)

if TYPE_CHECKING:
    from recbole_mmkd.trainer import Snapshot

logger = logging.getLogger(__name__)
SNAPSHOTS = "snapshots"  # in a sweep's folder: each running or capped trial's training state
CAPPED = "capped"  # in a trial's static settings: a halving round's cap is set
UNCAPPED = "uncapped"  # and there, the sweep's overrides without the cap


def init_ray(address: str | None) -> None:
    """Start Ray, or join the cluster at ``address``, unless this process already has: its
    workers start under the allocator settings of training
    (:data:`~recbole_mmkd.allocator.KEEP_ENV`; a trial trains in a thread of its own, whose
    large buffers glibc would otherwise map and unmap every batch)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": KEEP_ENV})  # fmt: skip


def trial(params: dict[str, Any], static: dict[str, Any]) -> None:
    """One Ray Tune trial: train with ``params`` on top of the sweep's overrides and report the
    validation metric after every evaluation. The test split is never evaluated here."""
    import torch
    from ray import tune

    import recbole_mmkd  # noqa: F401  (compat shims first, in the worker process)
    from recbole_mmkd.pipeline import leave_trained, resume_key
    from recbole_mmkd.prepare import prepare
    from recbole_mmkd.trainer import MMKDTrainer

    torch.set_num_threads(max(1, int(static["cpus"])))
    point = params.get(POINT, params)
    overrides = {**static["overrides"], **point}
    overrides["use_gpu"] = static["gpus"] > 0
    run = prepare(
        static["model"],
        static["dataset"],
        overrides=overrides,
        seed=static["seed"],
        data_path=static["data_path"],
        properties=static["properties"],
        source=static["source"],
    )
    config = run.config
    folder = static.get(SNAPSHOTS)
    keep = folder is not None and getattr(run.model, "resumable", True)
    where = resume_key(config)
    resume = previous_snapshot(Path(folder), point, config["epochs"], where) if keep else None
    best = [-math.inf if resume is None else resume.best_score]
    resumed = {} if resume is None else {RESUMED: resume.epoch}

    def report(epoch: int, score: float, _result: dict) -> None:
        best[0] = max(best[0], score)
        tune.report({"valid": score, BEST: best[0], "epoch": epoch,
                     "device": str(config["device"]), **resumed})  # fmt: skip

    trainer = MMKDTrainer(config, run.model)
    if keep:

        def save(state: Snapshot) -> None:
            save_snapshot(Path(folder), point, state, where)

        fit = trainer.fit_checkpointed(run.train, run.valid, callback=report, resume=resume,
                                       save=save)  # fmt: skip
    else:
        fit = trainer.fit(run.train, run.valid, callback=report)
    root = static.get("runs_root")  # absent from a launch of code before it
    capped = static.get(CAPPED)
    # trained to its early stop, within a halving round's cap too (where the launch names the
    # uncapped settings; older code's did not): the run of its settings
    stopped = not capped or (UNCAPPED in static and fit.epochs_run < config["epochs"])
    if root is not None and stopped:
        settings = _uncapped_config(static, point) if capped else config
        by = f"in tuning trial {tune.get_context().get_trial_id()} ({static['source']})"
        leave_trained(Path(root), static["model"], settings, run.model, fit, by=by)
    if static.get(CAPPED) and trainer.last_snapshot is not None:  # the next round goes on
        save_snapshot(Path(folder), point, trainer.last_snapshot, where)


def _uncapped_config(static: dict[str, Any], point: dict[str, Any]) -> Any:
    """The config of the run that a capped trial stopping before its cap trained: the trial's
    settings without the round's cap (a capped point trains as its run does: halving goes on
    from its snapshot on that premise, which the contract test checks for every model)."""
    from recbole_mmkd.prepare import config_for

    overrides = {**static[UNCAPPED], **point, "use_gpu": static["gpus"] > 0,
                 "seed": static["seed"]}  # fmt: skip
    return config_for(static["model"], static["dataset"], overrides=overrides,
                      data_path=static["data_path"], properties=static["properties"],
                      source=static["source"])  # fmt: skip


def save_snapshot(
    folder: Path, point: dict[str, Any], state: Snapshot, where: dict[str, Any]
) -> None:
    """Leave ``state`` (a trainer Snapshot) of a trial of ``point``, and drop the point's
    earlier ones: a later trial of the point reads its latest state below its cap
    (:func:`previous_snapshot`), and caps only grow."""
    from recbole_mmkd.pipeline import write_snapshot

    write_snapshot(snapshot_path(folder, point, state.epoch), state, where)
    for epoch, older in _stored_snapshots(folder, point):
        if epoch < state.epoch:
            older.unlink(missing_ok=True)


def snapshot_path(folder: Path, point: dict[str, Any], epoch: int) -> Path:
    """Where a trial of ``point`` leaves its training's state after ``epoch`` epochs."""
    key = hashlib.sha1(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return folder / f"{key}-{epoch}.pt"


def previous_snapshot(
    folder: Path, point: dict[str, Any], epochs: int, where: dict[str, Any]
) -> Snapshot | None:
    """The state a trial of ``point`` left after the most epochs below ``epochs`` (its
    round's cap, or the run's length), if made ``where``
    (:func:`~recbole_mmkd.pipeline.read_snapshot`), else None."""
    from recbole_mmkd.pipeline import read_snapshot

    usable = [p for epoch, p in _stored_snapshots(folder, point) if epoch < epochs]
    return read_snapshot(usable[-1], where) if usable else None


def _stored_snapshots(folder: Path, point: dict[str, Any]) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every snapshot of ``point`` in ``folder``, by epoch."""
    stem = snapshot_path(folder, point, 0).stem.rsplit("-", 1)[0]
    return sorted((int(p.stem.rsplit("-", 1)[1]), p) for p in folder.glob(f"{stem}-*.pt"))


def _progress_callback(
    sweep: Sweep, out: Path, finished: list[dict], *, halving_cap: int | None = None
):
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
            if sweep.scheduler == "halving":
                row[BUDGET] = halving_cap
            if result.get(RESUMED) is not None:
                row[RESUMED] = result[RESUMED]
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
            # halving re-trains points in later rounds: its count runs past the grid's points
            count = (f"{self.done} trials, {planned} points" if sweep.scheduler == "halving"
                     else f"{self.done}/{planned}")  # fmt: skip
            self._say(
                f"done {trial.trial_id} ({count}): best valid "
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


def pending_trials(
    sweep: Sweep, finished: list[dict[str, Any]], *, epochs: int
) -> tuple[int, int | None]:
    """How many trials the sweep's next launch runs, given its ``finished`` records (0: the
    search is complete), and that launch's epoch cap (a halving round's; None: uncapped).
    ``epochs``: the config's, where halving's last round ends."""
    if sweep.scheduler == "halving":
        step = next_round(planned_points(sweep), finished, grace=sweep.grace_period,
                          factor=sweep.reduction_factor, epochs=epochs)  # fmt: skip
        return (0, None) if step is None else (len(step[1]), step[0])
    if sweep.search == "tpe":
        return max(sweep.num_samples - len(finished), 0), None
    return len(remaining_points(planned_points(sweep), [r["point"] for r in finished])), None


def run_sweep(
    sweep: Sweep,
    out: Path,
    *,
    data_path: Path | None = None,
    properties: Any = None,
    resume: bool = False,
    address: str | None = None,
    teacher_root: Path | None = None,
) -> pd.DataFrame:
    """Check every setting the sweep names, then run (or, with ``resume``, continue) it; write
    and return its trial table. A student's teacher is trained (or reused) under
    ``teacher_root`` (default ``<out>/runs``, where the final runs go), and there every trial
    trained to its early stop leaves its model for the run of its settings and seed to adopt
    (:func:`~recbole_mmkd.pipeline.leave_trained`).

    The sweep's identity (the config hash of its fixed settings with the code they run, the
    space, search and seed) is written to ``<out>/sweep.json``; a resume under another
    identity is refused, so that no table mixes trials of different code or settings."""
    from ray import tune

    from recbole_mmkd.model import get_model
    from recbole_mmkd.pipeline import teacher_for
    from recbole_mmkd.prepare import config_for
    from recbole_mmkd.reporting.sweep import sweep_figure

    check_sweep(sweep, data_path=data_path, properties=properties)
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
    common = {"data_path": data_path, "properties": properties}
    config = config_for(sweep.model, sweep.dataset, overrides=overrides, **common)
    halving = {"grace": sweep.grace_period, "factor": sweep.reduction_factor,
               "epochs": config["epochs"]}  # fmt: skip
    todo, _ = pending_trials(sweep, finished, epochs=config["epochs"])
    # Teachers and runs of the chosen settings go under root; a student's teacher is trained
    # once, before its first trial; a finished sweep needs none.
    root = teacher_root if teacher_root is not None else out / "runs"
    if todo > 0 and getattr(get_model(sweep.model), "needs_teacher", False):
        probe = {**overrides, "seed": sweep.seed}
        ref = teacher_for(sweep.model, sweep.dataset, sweep.seed, root, probe, **common)
        overrides.update(ref.keys())
    _claim(out, sweep_identity(sweep, **common))
    static = {
        "model": sweep.model,
        "dataset": sweep.dataset,
        "data_path": str(data_path) if data_path else None,
        "properties": properties,
        "source": f"{sweep.source}: space",
        "overrides": overrides,
        "seed": sweep.seed,
        "runs_root": str(root),
        "cpus": sweep.cpus_per_trial,
        "gpus": sweep.gpus_per_trial,
    }
    start = time.perf_counter()

    def launch(space: dict, search: Any, count: int, *, cap: int | None = None) -> None:
        """One Tune launch of ``count`` trials (``cap``: a halving round's epoch cap)."""
        init_ray(address)
        capped = static
        if cap is not None:
            capped = {**static, "overrides": {**overrides, "epochs": cap}, CAPPED: True,
                      UNCAPPED: overrides}  # fmt: skip
        capped = {**capped, SNAPSHOTS: str(out / SNAPSHOTS)}
        resources = {"cpu": sweep.cpus_per_trial, "gpu": sweep.gpus_per_trial}
        trainable = tune.with_resources(tune.with_parameters(trial, static=capped), resources)
        name = f"{sweep.name}-{len(list(storage.glob(f'{sweep.name}-*')))}"
        capping = f", epochs capped at {cap}" if cap else ""
        logger.info("%s: %d of %d trials to run (launch %s%s)", sweep.name, count,
                    planned_trials(sweep), name, capping)  # fmt: skip
        recorded = [r for r in read_ledger(out / LEDGER) if r["status"] == "done"]
        tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=BEST,
                mode="max",
                num_samples=count if sweep.search == "tpe" else 1,
                search_alg=search,
                scheduler=_scheduler(sweep, config),
                max_concurrent_trials=sweep.max_concurrent or None,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(storage),
                verbose=0,
                callbacks=[_progress_callback(sweep, out, recorded, halving_cap=cap)],
            ),
        ).fit()

    with _running(out):
        if sweep.scheduler == "halving":
            step = next_round(planned_points(sweep), finished, **halving)
            while step is not None:
                cap, round_points = step
                launch({POINT: tune.grid_search(round_points)}, None, len(round_points), cap=cap)
                done = [r for r in read_ledger(out / LEDGER) if r["status"] == "done"]
                step = next_round(planned_points(sweep), done, **halving)
        elif todo > 0 and sweep.search == "tpe":
            launch(param_space(sweep), _optuna(sweep, finished), todo)
        elif todo > 0:
            points = remaining_points(planned_points(sweep), [r["point"] for r in finished])
            launch({POINT: tune.grid_search(points)}, None, todo)
        shutil.rmtree(out / SNAPSHOTS, ignore_errors=True)  # the search is complete
    table = sweep_table(read_ledger(out / LEDGER), sweep)
    table.to_csv(out / f"sweep-{sweep.name}.csv", index=False)
    figure = sweep_figure(table, sweep, config["valid_metric"])
    if figure is not None:
        from recbole_mmkd.reporting.figures import save

        save(figure, out / "figures" / f"sweep-{sweep.name}")
    logger.info(
        "sweep %s: %d trials in %.0f s", sweep.name, len(table), time.perf_counter() - start
    )
    return table


def sweep_identity(sweep: Sweep, **common: Any) -> dict[str, Any]:
    """What a sweep's trials depend on: the config hash of its fixed settings (code and data
    included; a student's with its teacher's hash, found without training the teacher), its
    space, search, scheduler (grace period, reduction factor) and seed; not ``num_samples``:
    a resume may ask for more trials of the same sweep. The hash pins the searched keys at
    :func:`anchor_point`: every trial sets them, so the YAML values they replace (a chosen
    value shipped in ``properties/model/<dataset>/``) do not make it another sweep."""
    from recbole_mmkd.identity import config_hash
    from recbole_mmkd.prepare import hashed_config

    fixed = {**anchor_point(sweep), **sweep.overrides}
    return {
        "config_hash": config_hash(
            hashed_config(sweep.model, sweep.dataset, seed=sweep.seed, overrides=fixed, **common)
        ),
        "space": sweep.space,
        "search": sweep.search,
        "scheduler": [sweep.scheduler, sweep.grace_period, sweep.reduction_factor],
        "seed": sweep.seed,
    }


RUNNING = "running.json"  # in a sweep's folder while a process searches it: its host and pid


@contextmanager
def _running(out: Path) -> Iterator[None]:
    """Mark ``out`` as searched by this process until the block ends."""
    marker = out / RUNNING
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def search_running(out: Path) -> str | None:
    """Who is searching the sweep in ``out`` now ("pid N on HOST"), or None: no marker, or
    one left by a process of this host that has ended."""
    try:
        marker = json.loads((out / RUNNING).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if marker["host"] == socket.gethostname():
        try:
            os.kill(marker["pid"], 0)
        except ProcessLookupError:
            return None
    return f"pid {marker['pid']} on {marker['host']}"


def identity_digest(identity: dict[str, Any]) -> str:
    """A short digest of a sweep's identity, to name its folder."""
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]


def _claim(out: Path, identity: dict[str, Any]) -> None:
    """Record the sweep's identity in ``<out>/sweep.json``, or refuse when the folder holds
    trials of another one."""
    path = out / "sweep.json"
    if path.is_file() and json.loads(path.read_text()) != identity:
        raise DataError(
            path,
            "sweep",
            "its trials were run with other settings or code than this sweep's",
            "give another --out (or delete the folder to run it again)",
        )
    path.write_text(json.dumps(identity, indent=1, sort_keys=True))


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


def _scheduler(sweep: Sweep, config: Any):
    """ASHA over the trials' validations (one report per evaluation, so ``max_t`` is the
    number of evaluations the config's ``epochs`` and ``eval_step`` give); none for ``none``
    and for ``halving``, whose rounds are launches of their own."""
    if sweep.scheduler in ("none", "halving"):
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max(1, config["epochs"] // config["eval_step"]),
        grace_period=sweep.grace_period,
        reduction_factor=sweep.reduction_factor,
    )


def final_runs(
    sweep: Sweep,
    best: pd.Series,
    out: Path,
    *,
    data_path: Path | None = None,
    properties: Any = None,
) -> list:
    """Re-run the best configuration on ``final_seeds``; test once each; ordinary RunResults."""
    from recbole_mmkd.pipeline import run_one

    params = {k: plain(best[k]) for k in sweep.space}
    logger.info("best configuration on validation: %s", _short(params))
    overrides = {**sweep.overrides, **params}
    return [
        run_one(
            sweep.model,
            sweep.dataset,
            seed,
            Path(out) / "runs",
            overrides=overrides,
            data_path=data_path,
            properties=properties,
        )
        for seed in sweep.final_seeds
    ]
