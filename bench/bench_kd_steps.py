#!/usr/bin/env python
"""A KD student's training step against the same student's without KD, per KD method, in one
process: the ratio issue 18 bounds at 1.5x, without needing a trained teacher.

KD-LightGCN on a dataset (default the shipped TikTok) distils from stand-in teacher tables of
width 64 (random, seed 0: a step's cost does not depend on the teacher's values); each step
is forward, backward and an Adam update on one training batch; the median of the steps after
the first three. ``METHOD:shared`` sets ``kd_shared_items``.

  .venv/bin/python bench/bench_kd_steps.py [--dataset tiktok] [--steps 20]
      [--methods logit logit:shared rd rrd rrd:shared cd de de_rrd ftd htd dcd unkd]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from time import perf_counter

import numpy as np
import torch

from recbole_mmkd.prepare import prepare
from recbole_mmkd.teacher import TABLES_FILE

METHODS = ["logit", "logit:shared", "rd", "rrd", "rrd:shared", "cd", "de", "de_rrd", "ftd",
           "htd", "dcd", "unkd"]  # fmt: skip


def step_seconds(model: torch.nn.Module, train, steps: int) -> float:
    """Median seconds of a training step over ``steps`` batches, the first three left out."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    model.on_epoch_start(0)
    times = []
    for _, batch in zip(range(steps), train, strict=False):
        start = perf_counter()
        optimizer.zero_grad()
        model.calculate_loss(batch).backward()
        optimizer.step()
        times.append(perf_counter() - start)
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    args = parser.parse_args()
    base = prepare("LightGCN", args.dataset, overrides={"epochs": 1})
    reference = step_seconds(base.model, base.train, args.steps)
    print(f"{args.dataset}, torch threads {torch.get_num_threads()}")
    print(f"LightGCN step {1000 * reference:.1f} ms")
    with tempfile.TemporaryDirectory() as folder:
        data, rng = base.train.dataset, np.random.default_rng(0)
        np.savez(
            Path(folder) / TABLES_FILE,
            user=rng.normal(size=(data.user_num, 64)).astype(np.float32),
            item=rng.normal(size=(data.item_num, 64)).astype(np.float32),
        )
        for method in args.methods:
            name, _, shared = method.partition(":")
            overrides = {"epochs": 1, "teacher_run": folder, "teacher_hash": "bench",
                         "kd_method": name, "kd_shared_items": bool(shared)}  # fmt: skip
            run = prepare("KD-LightGCN", args.dataset, overrides=overrides)
            seconds = step_seconds(run.model, run.train, args.steps)
            print(f"{method:<14} {1000 * seconds:8.1f} ms {seconds / reference:6.2f}x LightGCN")


if __name__ == "__main__":
    main()
