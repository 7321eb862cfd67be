#!/usr/bin/env python
"""Ray Tune overhead and sweep throughput on the shipped TikTok data.

Prints, in one process:
1. Ray's overhead per trial: the wall time of one BPR run (``--epochs`` epochs) inside a
   1-trial Ray sweep, against the same run outside Ray (same process, same data), as a ratio;
   Ray's own start is timed separately.
2. Throughput of a ``--trials``-trial grid sweep with ``cpus_per_trial`` 1 on the machine's
   CPUs: trials per minute and the wall time per trial against the outside-Ray run.

  .venv/bin/python bench/bench_tune.py [--epochs 3] [--trials 16]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path
from time import perf_counter

import pandas as pd
import ray
import torch

import recbole_mmkd  # noqa: F401
from recbole_mmkd.prepare import prepare
from recbole_mmkd.trainer import MMKDTrainer
from recbole_mmkd.tune import Sweep, run_sweep


def outside_ray(epochs: int) -> float:
    """The trial's work in this process: data, model, ``epochs`` epochs with validation."""
    start = perf_counter()
    torch.set_num_threads(1)
    run = prepare("BPR", "tiktok", overrides=_fixed(epochs) | {"use_gpu": False})
    MMKDTrainer(run.config, run.model).fit(run.train, run.valid)
    return perf_counter() - start


def _fixed(epochs: int) -> dict:
    return {"epochs": epochs, "stopping_step": 1000, "robustness_shares": []}


def sweep_seconds(trials: int, epochs: int, out: Path) -> tuple[float, pd.Series]:
    """Wall time of a ``trials``-trial BPR grid sweep, and each trial's own time in its actor."""
    values = [10.0 ** -(4 + i / max(trials - 1, 1)) for i in range(trials)]
    sweep = Sweep(
        name=f"bench{trials}",
        model="BPR",
        dataset="tiktok",
        space={"reg_weight": values},
        overrides=_fixed(epochs),
        seed=0,
        cpus_per_trial=1,
    )
    start = perf_counter()
    table = run_sweep(sweep, out)
    assert len(table) == trials and set(table["status"]) == {"done"}
    return perf_counter() - start, table["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = min(outside_ray(args.epochs) for _ in range(2))  # the first pays one-off warm-up
    print(f"one BPR run outside Ray ({args.epochs} epochs, 1 thread, best of 2): {base:.1f} s")
    start = perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {perf_counter() - start:.1f} s, {ray.available_resources().get('CPU')} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        one, _ = sweep_seconds(1, args.epochs, Path(tmp) / "one")
        print(
            f"1-trial sweep: {one:.1f} s wall = {one / base:.2f}x the run outside Ray "
            f"(+{one - base:.1f} s fixed cost: actor start, imports, Tune bookkeeping)"
        )
        many, seconds = sweep_seconds(args.trials, args.epochs, Path(tmp) / "many")
    cpus = ray.available_resources().get("CPU", 1)
    print(
        f"{args.trials}-trial sweep, cpus_per_trial 1 on {cpus:g} CPUs: {many:.1f} s wall, "
        f"{60 * args.trials / many:.1f} trials/min; per trial inside its reused actor: "
        f"median {seconds.median():.1f} s = {seconds.median() / base:.2f}x the run outside Ray; "
        f"speed-up over running the trials one after another outside Ray: "
        f"{args.trials * base / many:.2f}x"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
