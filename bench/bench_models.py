#!/usr/bin/env python
"""Model costs on a dataset (default: the shipped TikTok).

Prints, in one process, per registered model on ``--dataset``: median training-epoch time and
full-sort test evaluation time, each as a ratio to LightGCN's (the reference), and what
inference holds in memory: parameters, buffers (graphs, features, labels) and the
resident-memory peak of one full-sort evaluation, so a teacher's cost beyond its parameter
count shows (a KD student at inference is its backbone: LightGCN or BPR; its buffers here are
the teacher tables and top-N lists it trains against); with ``--teacher RUN``, KD-LightGCN
with each kd_method (and logit and rrd with ``kd_shared_items``): its epoch against the same
LightGCN's without KD, the ratio issue 18 bounds (``--kd-only``: those alone). Graph
construction at the Amazon sets' scale: ``bench_graphs.py``.

  .venv/bin/python bench/bench_models.py [--dataset tiktok] [--epochs 3] [--models MMGCN ...]
      [--teacher results/kd/tiktok/FREEDOM/<hash>/seed-2020 [--kd-only]]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from time import perf_counter

import psutil
import torch

import recbole_mmkd  # noqa: F401
from recbole_mmkd.allocator import return_freed_memory
from recbole_mmkd.distill.methods import KD_METHODS
from recbole_mmkd.model import get_model, model_names
from recbole_mmkd.model.student import kd  # noqa: F401 (registers every built-in KD method)
from recbole_mmkd.pipeline import tensor_bytes
from recbole_mmkd.prepare import prepare
from recbole_mmkd.trainer import MMKDTrainer


def model_costs(
    name: str, dataset: str, epochs: int, overrides: dict | None = None
) -> dict[str, float]:
    """Median epoch seconds, median full-sort test evaluation seconds, parameter and buffer
    MB, and the resident-memory peak (MB above the start) of one full-sort evaluation."""
    run = prepare(name, dataset, overrides={"epochs": epochs, **(overrides or {})})
    model, train, test = run.model, run.train, run.test
    trainer = MMKDTrainer(run.config, model)
    times = []
    for epoch in range(epochs):
        start = perf_counter()
        model.on_epoch_start(epoch)
        trainer._train_epoch(train, epoch)
        times.append(perf_counter() - start)
    trainer.evaluate_full(test, per_user=False)  # warm-up: builds the cached batches
    evals = [trainer.evaluate_full(test, per_user=False).seconds for _ in range(3)]
    _, _, peak = _peak_during(lambda: trainer.evaluate_full(test, per_user=False))
    return {
        "epoch": statistics.median(times),
        "eval": statistics.median(evals),
        "params": sum(tensor_bytes(p) for p in model.parameters()) / 2**20,
        "buffers": sum(tensor_bytes(b) for b in model.buffers()) / 2**20,
        "peak": peak,
    }


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _high_water_mb() -> float:
    """The kernel's resident-memory high-water mark of this process (``VmHWM``), in MB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 2**10


def _peak_during(build) -> tuple[object, float, float]:
    """Run ``build()``; return its result, seconds, and its peak RSS growth (MB): the kernel's
    high-water mark, reset before it starts (``/proc/self/clear_refs``; Linux), so nothing
    samples beside the work (a sampling thread holds the GIL in turns with it, which slowed
    Python-heavy models many times over on a loaded machine)."""
    base = _rss_mb()
    Path("/proc/self/clear_refs").write_text("5")
    start = perf_counter()
    result = build()
    seconds = perf_counter() - start
    return result, seconds, _high_water_mb() - base


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--kd-only", action="store_true", help="only LightGCN and its KD methods")
    parser.add_argument(
        "--teacher",
        type=Path,
        help="a teacher run folder of --dataset (with representations.npz and state.npz, e.g. "
        "results/kd/tiktok/FREEDOM/<hash>/seed-2020): also time KD-LightGCN with each kd_method",
    )
    args = parser.parse_args()
    # students that run from a stored teacher need one: --teacher
    names = [] if args.kd_only else args.models or [
        m
        for m in model_names()
        if m != "LightGCN" and not getattr(get_model(m), "needs_teacher", False)
    ]  # fmt: skip
    runs = {name: (name, {}) for name in names}
    if args.teacher:
        teacher = {"teacher_run": str(args.teacher), "teacher_hash": "bench"}
        for method in KD_METHODS:
            runs[f"KD-LGCN/{method}"] = ("KD-LightGCN", {**teacher, "kd_method": method})
        for method in ("logit", "rrd"):  # their items drawn once per batch for all its rows
            runs[f"KD-LGCN/{method}+shared"] = (
                "KD-LightGCN", {**teacher, "kd_method": method, "kd_shared_items": True}
            )  # fmt: skip
    return_freed_memory()
    print(f"{args.dataset}, torch threads {torch.get_num_threads()}")
    ref = model_costs("LightGCN", args.dataset, args.epochs)
    print(
        f"{'model':<15} {'epoch s':>8} {'x LightGCN':>10} {'eval s':>8} {'x LightGCN':>10} "
        f"{'params MB':>9} {'buffers MB':>10} {'eval peak MB':>12}"
    )
    for name, (model, overrides) in {"LightGCN": ("LightGCN", {}), **runs}.items():
        c = ref if name == "LightGCN" else model_costs(model, args.dataset, args.epochs, overrides)
        print(
            f"{name:<15} {c['epoch']:8.3f} {c['epoch'] / ref['epoch']:10.2f} "
            f"{c['eval']:8.3f} {c['eval'] / ref['eval']:10.2f} "
            f"{c['params']:9.1f} {c['buffers']:10.1f} {c['peak']:12.0f}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
