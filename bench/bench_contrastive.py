#!/usr/bin/env python
"""InfoNCE over a training batch two ways, forward and backward, in one process.

MGCN and SMORE add two InfoNCE terms to every step, each over a batch x batch score matrix
(2048 x 2048 at MMRec's batch size): the largest tensors of their steps. Measured here:

- ``cross_entropy``: ``F.cross_entropy(a @ c.T / tau, arange(B))`` on the normalised rows (the
  form this project used before 2026-12-07: a division of the whole score matrix, a one-hot
  gradient through it);
- ``info_nce``: :func:`recbole_mmkd.model.contrastive.info_nce` (``1/tau`` on the anchors,
  ``logsumexp`` of the scores minus the row-wise positive dot products, MMRec's form).

Repeats alternate between the two; the medians, their ratio and the largest difference of the
losses are printed.

  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_contrastive.py [--batch 2048] [--dim 64]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from time import perf_counter

import torch
import torch.nn.functional as F

from recbole_mmkd.model.contrastive import info_nce


def cross_entropy(anchor: torch.Tensor, candidates: torch.Tensor, tau: float) -> torch.Tensor:
    """The baseline: a cross entropy over the scaled cosine score matrix."""
    scores = F.normalize(anchor, dim=-1) @ F.normalize(candidates, dim=-1).T / tau
    return F.cross_entropy(scores, torch.arange(scores.shape[0]))


def seconds(loss: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> float:
    """Wall seconds of one forward and backward of ``loss``."""
    for leaf in leaves:
        leaf.grad = None
    start = perf_counter()
    loss().backward()
    return perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--tau", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    a = torch.randn(args.batch, args.dim, requires_grad=True)
    c = torch.randn(args.batch, args.dim, requires_grad=True)
    forms = {
        "cross_entropy": lambda: cross_entropy(a, c, args.tau),
        "info_nce": lambda: info_nce(a, c, temperature=args.tau),
    }
    gap = abs(forms["cross_entropy"]().item() - forms["info_nce"]().item())
    times: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(3):  # warm-up
        for form in forms.values():
            seconds(form, [a, c])
    for _ in range(args.repeats):
        for name, form in forms.items():
            times[name].append(seconds(form, [a, c]))
    medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    print(f"batch {args.batch}, dim {args.dim}, threads {torch.get_num_threads()}, "
          f"{args.repeats} repeats, |loss difference| {gap:.2e}")  # fmt: skip
    for name, ms in medians.items():
        print(f"{name:>14}: {ms:7.2f} ms forward + backward")
    print(f"cross_entropy / info_nce: {medians['cross_entropy'] / medians['info_nce']:.2f}x")


if __name__ == "__main__":
    main()
