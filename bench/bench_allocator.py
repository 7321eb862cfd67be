#!/usr/bin/env python
"""Training-step seconds with glibc's default allocator and with freed memory kept
(:func:`recbole_mmkd.allocator.keep_freed_memory`, what the CLI runs with; Ray's workers start
with the same settings, ``allocator.KEEP_ENV``).

The allocator's settings hold for the whole process, so each setting runs in a fresh process
of its own, the two alternated ``--rounds`` times per model; a process trains ``--steps``
batches of the model's first epoch on ``--dataset`` after one warm-up batch, on one thread,
and reports the median step and its resident-memory peak. Prints per model the median over
rounds of each setting and their ratio (kept / default).

  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_allocator.py [--models DAMRS LGMRec ...]
      [--dataset tiktok] [--steps 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

DEFAULT_MODELS = ["LightGCN", "MGCN", "SMORE", "DRAGON", "LGMRec", "DAMRS"]


def steps(model: str, dataset: str, n: int, *, keep: bool) -> dict[str, float]:
    """Median training-step seconds of ``n`` batches and the process's peak RSS in MB."""
    import resource
    import time

    import torch

    import recbole_mmkd  # noqa: F401
    from recbole_mmkd.allocator import keep_freed_memory
    from recbole_mmkd.prepare import prepare

    if keep:
        keep_freed_memory()
    torch.set_num_threads(1)
    run = prepare(model, dataset, overrides={"epochs": 1})
    net = run.model.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.on_epoch_start(0)  # per-epoch draws (graphs some models rebuild each epoch)
    times = []
    for i, batch in enumerate(run.train):
        if i > n:
            break
        start = time.perf_counter()
        optimizer.zero_grad()
        net.calculate_loss(batch).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step": statistics.median(times[1:]), "peak": peak}


def measured(model: str, dataset: str, n: int, *, keep: bool) -> dict[str, float]:
    code = (f"import json, bench_allocator as b; print(json.dumps(b.steps({model!r}, "
            f"{dataset!r}, {n}, keep={keep})))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=sys.path[0], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument("--dataset", default="tiktok")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print("| model | default s/step | kept s/step | kept / default | peak MB default, kept |")
    print("|---|---|---|---|---|")
    for model in args.models:
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for keep in (False, True):
                runs[keep].append(measured(model, args.dataset, args.steps, keep=keep))
        default, kept = (statistics.median(r["step"] for r in runs[k]) for k in (False, True))
        peaks = [max(r["peak"] for r in runs[k]) for k in (False, True)]
        print(f"| {model} | {default:.3f} | {kept:.3f} | {kept / default:.2f} "
              f"| {peaks[0]:.0f}, {peaks[1]:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
