#!/usr/bin/env python
"""``graph.csr_mm`` against ``torch.sparse.mm``, in one process on the shipped TikTok data.

Prints, alternating the two in rounds (the median of each): one product of the normalised
user-item adjacency (16,020 nodes) with a 64-column table, whether the two results are equal
bit for bit, and a LightGCN training step (forward, backward, Adam) with the project's
propagation using each product, as a ratio to ``torch.sparse.mm``.

  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_spmm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter

import torch

import recbole_mmkd  # noqa: F401
from recbole_mmkd.allocator import keep_freed_memory
from recbole_mmkd.model import graph
from recbole_mmkd.prepare import prepare


def timed(step, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``step`` (after one call to warm up)."""
    step()
    times = []
    for _ in range(repeats):
        start = perf_counter()
        step()
        times.append(perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    run = prepare("LightGCN", "tiktok", overrides={"epochs": 1})
    model, adjacency = run.model, run.model.adjacency
    dense = torch.randn(adjacency.shape[0], 64)
    equal = torch.equal(torch.sparse.mm(adjacency, dense), graph.csr_mm(adjacency, dense))
    batches = [b for _, b in zip(range(6), run.train, strict=False)]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    products = {"torch.sparse.mm": torch.sparse.mm, "csr_mm": graph.csr_mm}
    product_s = {name: [] for name in products}
    step_s = {name: [] for name in products}

    def train_step() -> None:
        for batch in batches:
            optimizer.zero_grad()
            model.calculate_loss(batch).backward()
            optimizer.step()

    try:
        for _ in range(args.rounds):
            for name, product in products.items():
                graph.csr_mm = product  # what graph.propagate's Function calls
                product_s[name].append(timed(lambda p=product: p(adjacency, dense), 20))
                step_s[name].append(timed(train_step, 1) / len(batches))
    finally:
        graph.csr_mm = products["csr_mm"]
    print(f"TikTok adjacency {tuple(adjacency.shape)}, {adjacency._nnz()} entries, 64 columns, "
          f"torch threads {torch.get_num_threads()}, {args.rounds} rounds; equal bit for bit: "
          f"{equal}")  # fmt: skip
    base_product = statistics.median(product_s["torch.sparse.mm"])
    base_step = statistics.median(step_s["torch.sparse.mm"])
    for name in products:
        product, step = statistics.median(product_s[name]), statistics.median(step_s[name])
        print(f"{name:16s} product {product * 1e3:6.2f} ms  x {product / base_product:4.2f}   "
              f"LightGCN step {step * 1e3:6.1f} ms  x {step / base_step:4.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
