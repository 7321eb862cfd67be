#!/usr/bin/env python
"""A model's training step under two versions of this project's code, alternated.

A change to a model's code cannot be timed against the code before it in one process (both
are ``recbole_mmkd``), so each measurement is a fresh process importing one checkout's package
(``PYTHONPATH``; ``git worktree add ../before <commit>`` makes the other), the two taking turns
over ``--rounds`` rounds so that a machine's load falls on both alike. Each process prepares
the model on ``--dataset`` (default: the shipped TikTok), takes one warm-up step and then
times ``--steps`` training steps (forward, backward, Adam) on the first batches of its
training loader, at one thread. Prints every measurement, the median per checkout and the
ratio of the second checkout's median to the first's.

  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_step_ab.py MVGAE ../before . [--rounds 2]
      [--steps 5] [--dataset tiktok]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from time import perf_counter

import torch


def step_seconds(model: str, dataset: str, steps: int) -> float:
    """Median seconds of ``steps`` training steps of ``model`` after one warm-up step, in this
    process (whichever ``recbole_mmkd`` it imports)."""
    import recbole_mmkd  # noqa: F401
    from recbole_mmkd.allocator import keep_freed_memory
    from recbole_mmkd.prepare import prepare

    keep_freed_memory()
    torch.set_num_threads(1)
    run = prepare(model, dataset, overrides={"epochs": 1})
    net = run.model.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = []
    for batch in run.train:
        batches.append(batch)
        if len(batches) > steps:
            break
    times = []
    for i, batch in enumerate(batches):
        start = perf_counter()
        optimizer.zero_grad()
        net.calculate_loss(batch).backward()
        optimizer.step()
        if i:  # the first is the warm-up
            times.append(perf_counter() - start)
    return statistics.median(times)


def measured(checkout: Path, model: str, dataset: str, steps: int) -> float:
    """:func:`step_seconds` in a fresh process that imports ``checkout``'s package."""
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve()), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--child", model, str(checkout), str(checkout),
               "--dataset", dataset, "--steps", str(steps)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("first", type=Path, help="a checkout of this project (the baseline)")
    parser.add_argument("second", type=Path, help="another checkout")
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(step_seconds(args.model, args.dataset, args.steps))
        return
    for checkout in (args.first, args.second):
        if not (checkout / "recbole_mmkd" / "__init__.py").is_file():
            parser.error(
                f"{checkout} holds no recbole_mmkd package: give a checkout of this project"
            )
    seconds: dict[Path, list[float]] = {args.first: [], args.second: []}
    for round_ in range(args.rounds):
        for checkout in seconds:
            value = measured(checkout, args.model, args.dataset, args.steps)
            seconds[checkout].append(value)
            print(f"round {round_ + 1}: {checkout}: {value * 1000:.0f} ms a step")
    first, second = (statistics.median(v) for v in seconds.values())
    print(f"{args.model} on {args.dataset}: {first * 1000:.0f} ms ({args.first}) -> "
          f"{second * 1000:.0f} ms ({args.second}), {second / first:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
