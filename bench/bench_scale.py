#!/usr/bin/env python
"""Model costs at the scale the field reports on: MMRec's Amazon Baby, Sports and Clothing.

Reads each set's interactions from a folder in MMRec's layout (``<folder>/<name>/<name>.inter``;
default ``../shared/data``) and imports it into ``--work`` in this project's layout. Where the
folder has no features, ``--stand-in`` writes features of the published shapes (image 4,096-d,
non-negative like CNN activations; text 384-d, Gaussian like sentence embeddings): they give
cost only, never a quality figure, and every table says so. Then, per model (every registered
model but the students; ``KD-LightGCN/<method>`` for each KD method over a 1-epoch LightGCN
teacher):

- pass 1, one process for all models: load seconds (dataset, loaders and model), median
  training-epoch seconds over ``--epochs``, one full validation pass, each also as a ratio to
  LightGCN measured first in the same process;
- pass 2, a fresh process per model: the resident-memory peak of the same work (load, one
  epoch, one validation pass), the kernel's high-water mark, so that no model's allocations
  count in another's and nothing samples beside what pass 1 times;

and, with two or more datasets, each model's growth of epoch time from the first to the last.

  .venv/bin/python bench/bench_scale.py --stand-in [--data DIR] [--datasets baby clothing]
      [--models LightGCN FREEDOM ...] [--epochs 2] [--work /tmp/recbole-mmkd-scale]
      [--peaks-only]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd
import torch

import recbole_mmkd  # noqa: F401
from recbole_mmkd.allocator import return_freed_memory
from recbole_mmkd.data.importers import import_dataset
from recbole_mmkd.distill.methods import KD_METHODS
from recbole_mmkd.model import get_model, model_names
from recbole_mmkd.model.student import kd  # noqa: F401 (registers every built-in KD method)
from recbole_mmkd.pipeline import teacher_for
from recbole_mmkd.prepare import prepare
from recbole_mmkd.trainer import MMKDTrainer

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import _peak_during

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STAND_IN = {"image": 4096, "text": 384}  # MMRec's Amazon features: CNN image, SBERT text
QUICK = {"robustness_shares": [], "stopping_step": 1000}


def dataset_folder(source: Path, name: str, work: Path, *, stand_in: bool) -> Path:
    """``work`` holding ``name`` in this project's layout, imported from MMRec's layout once;
    with ``stand_in``, features of the published shapes are written where it has none."""
    target = work / name
    if not target.is_dir():
        import_dataset("mmrec", source / name, name, work)
    has_features = any(target.glob(f"{name}.*.npy"))
    if stand_in and not has_features:
        rng = np.random.default_rng(0)
        n_items = int(pd.read_csv(target / f"{name}.inter", sep="\t")["itemID"].max()) + 1
        np.save(target / f"{name}.image.npy", np.abs(rng.standard_normal((n_items, 4096)))
                .astype(np.float32))  # fmt: skip
        np.save(target / f"{name}.text.npy",
                rng.standard_normal((n_items, 384)).astype(np.float32))  # fmt: skip
        (target / "STAND-IN FEATURES").write_text(
            "random features of the published shapes, for cost measurements only\n"
        )
    return work


def _work(model: str, dataset: str, data: Path, epochs: int, overrides: dict) -> dict:
    """Load, train ``epochs`` epochs, one validation pass: seconds of each."""
    start = perf_counter()
    run = prepare(model, dataset, overrides={"epochs": epochs, **QUICK, **overrides},
                  data_path=data)  # fmt: skip
    load = perf_counter() - start
    trainer = MMKDTrainer(run.config, run.model)
    times = []
    for epoch in range(epochs):
        start = perf_counter()
        run.model.on_epoch_start(epoch)
        trainer._train_epoch(run.train, epoch)
        times.append(perf_counter() - start)
    valid = trainer.evaluate_full(run.valid, per_user=False).seconds
    return {"load": load, "epoch": statistics.median(times), "valid": valid}


def _peak(model: str, dataset: str, data: Path, overrides: dict) -> float:
    """In a fresh process: the resident-memory peak (MB above the start) of load, one epoch
    and one validation pass."""
    return_freed_memory()
    _, _, peak = _peak_during(lambda: _work(model, dataset, data, 1, overrides))
    return peak


def kd_students(dataset: str, data: Path, out: Path) -> dict[str, tuple[str, dict]]:
    """``KD-LightGCN/<method>`` for every KD method, over a LightGCN teacher trained 1 epoch."""
    quick = {"epochs": 1, **QUICK}
    probe = {"teacher": "LightGCN", "teacher_config": quick, **quick}
    ref = teacher_for("KD-LightGCN", dataset, 0, out, probe, data_path=data)
    keys = {"teacher": "LightGCN", "teacher_config": quick, **ref.keys()}
    return {f"KD-LightGCN/{m}": ("KD-LightGCN", {**keys, "kd_method": m}) for m in KD_METHODS}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=SHARED, help="MMRec-layout folder")
    parser.add_argument("--datasets", nargs="+", default=["baby", "clothing"])
    parser.add_argument("--models", nargs="+", help="default: every model but the students")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stand-in", action="store_true", help="stand-in features of the "
                        "published shapes where the data has none (cost only)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/tmp/recbole-mmkd-scale"))
    parser.add_argument("--peaks-only", action="store_true", help="pass 2 alone: memory peaks "
                        "(valid beside other work, which the seconds are not)")  # fmt: skip
    args = parser.parse_args()
    names = args.models or [
        m for m in model_names() if not getattr(get_model(m), "needs_teacher", False)
    ]
    names = ["LightGCN", *[n for n in names if n != "LightGCN"]]
    return_freed_memory()
    spawn = multiprocessing.get_context("spawn")
    epoch_seconds: dict[str, dict[str, float]] = {}
    for dataset in args.datasets:
        data = dataset_folder(args.data, dataset, args.work, stand_in=args.stand_in)
        stand_in = (data / dataset / "STAND-IN FEATURES").exists()
        runs = {n: (n, {}) for n in names}
        if not args.models:
            runs.update(kd_students(dataset, data, args.work / "teachers"))
        print(f"\n## {dataset} ({'stand-in features: cost only' if stand_in else 'real data'};"
              f" torch threads {torch.get_num_threads()}, {args.epochs} epochs)\n")  # fmt: skip
        keys = ["peak"] if args.peaks_only else ["load", "epoch", "valid", "peak"]
        names = {"load": "load s", "epoch": "epoch s", "valid": "valid s", "peak": "peak MB"}
        print(f"| model | {' | '.join(names[k] for k in keys)} | x LightGCN: {', '.join(keys)} |")
        print("|---" * (len(keys) + 2) + "|")
        ref = None
        for label, (model, overrides) in runs.items():
            try:
                cost = (
                    {} if args.peaks_only else _work(model, dataset, data, args.epochs, overrides)
                )
                with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                    cost["peak"] = pool.submit(_peak, model, dataset, data, overrides).result()
            except (MemoryError, BrokenProcessPool) as err:  # a model too big here: its row says
                print(f"| {label} | out of memory ({type(err).__name__}) |{' |' * len(keys)}")
                continue
            ref = ref or cost
            figures = " | ".join(
                f"{cost[k]:.0f}" if k == "peak" else f"{cost[k]:.2f}" for k in keys
            )
            ratios = ", ".join(f"{cost[k] / ref[k]:.2f}" for k in keys)
            print(f"| {label} | {figures} | {ratios} |")
            sys.stdout.flush()
            if not args.peaks_only:
                epoch_seconds.setdefault(label, {})[dataset] = cost["epoch"]
    if len(args.datasets) > 1 and not args.peaks_only:
        first, last = args.datasets[0], args.datasets[-1]
        print(f"\n## epoch time, {last} / {first}\n\n| model | growth |\n|---|---|")
        for label, seconds in epoch_seconds.items():
            if first in seconds and last in seconds:
                print(f"| {label} | {seconds[last] / seconds[first]:.2f} |")


if __name__ == "__main__":
    main()
