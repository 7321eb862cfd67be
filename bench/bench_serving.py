#!/usr/bin/env python
"""What serving a teacher and its narrower students costs, measured in one process.

For a teacher model at its width and a student model at shares of that width, on one dataset
(default the shipped TikTok), untrained (costs do not depend on the weights' values):

- model MiB: what recomputing the tables needs (parameters and buffers: features, graphs);
- tables MiB: the user and item tables a dot-product model serves from once they are computed;
- forward ms: computing those tables once (the teacher's layers over its features and graphs);
- full-sort ms / 1k users: scoring every item for 1,000 users from the tables and taking the
  top 20 (the median of 5 passes after one untimed);

each also as a share of the teacher's, so the table says what a student saves at serving.

  .venv/bin/python bench/bench_serving.py [--dataset tiktok] [--teacher FREEDOM]
      [--width 128] [--student LightGCN] [--ratios 1 0.5 0.25 0.125 0.0625]
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter

import torch

from recbole_mmkd.pipeline import serving_sizes
from recbole_mmkd.prepare import prepare
from recbole_mmkd.serving import full_sort_ms


def costs(model: str, dataset: str, width: int) -> dict[str, float]:
    """Serving costs of ``model`` at ``width`` on ``dataset`` (see the module docstring)."""
    net = prepare(model, dataset, overrides={"embedding_size": width}).model
    net.eval()
    forwards = []
    with torch.no_grad():
        for _ in range(4):
            start = perf_counter()
            users, items = net.forward()
            forwards.append(perf_counter() - start)
    sizes = serving_sizes(net)
    return {
        "model MiB": sizes["model"] / 2**20,
        "tables MiB": sizes["tables"] / 2**20,
        "forward ms": 1000 * statistics.median(forwards[1:]),
        "full-sort ms / 1k users": full_sort_ms(users, items),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--teacher", default="FREEDOM")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--student", default="LightGCN")
    parser.add_argument("--ratios", type=float, nargs="+", default=[1, 0.5, 0.25, 0.125, 0.0625])
    args = parser.parse_args()
    print(f"{args.dataset}, torch threads {torch.get_num_threads()}")
    rows = {
        f"{args.teacher} (teacher), {args.width}": costs(args.teacher, args.dataset, args.width)
    }
    for ratio in args.ratios:
        width = max(1, round(ratio * args.width))
        rows[f"{args.student}, {width} ({ratio:g})"] = costs(args.student, args.dataset, width)
    teacher = next(iter(rows.values()))
    names = list(teacher)
    print(f"{'':<28}" + "".join(f"{n:>26}" for n in names))
    for label, row in rows.items():
        cells = "".join(f"{row[n]:>14.3f} ({row[n] / teacher[n]:6.3f}x)" for n in names)
        print(f"{label:<28}{cells}")


if __name__ == "__main__":
    main()
