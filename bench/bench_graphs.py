#!/usr/bin/env python
"""Graph construction at the Amazon sets' scale, against the products it is made of.

For each set (MMRec's layout under ``--data``, default ``../shared/data``, imported and given
stand-in features of the published shapes as ``bench_scale.py`` does: cost only):

- the normalised user-item adjacency (``graph.normalized_adjacency``);
- per modality, the kNN item graph (``graph.knn_graph``, k = 10) against its floor, the same
  row blocks' bare similarity products ``unit[block] @ unit.T`` (``n^2 d`` multiply-adds; an
  exact cosine kNN in thousands of dimensions gets no cheaper in practice), both timed in one
  process, alternated over ``--rounds`` (medians), and the ratio of the two;
- the same graph read back from the on-disk cache (``graph.cached_knn_graph`` in a fresh cache
  folder, its in-process memo cleared): what every run after the first pays;
- each construction's resident-memory peak, in a fresh process of its own (a separate pass, so
  nothing measures memory beside what is timed).

  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_graphs.py [--datasets baby clothing]
      [--rounds 3] [--data DIR] [--work /tmp/recbole-mmkd-scale]
"""

from __future__ import annotations

import argparse
import inspect
import multiprocessing
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from time import perf_counter
from unittest import mock

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import recbole_mmkd  # noqa: F401
from recbole_mmkd.model import graph
from recbole_mmkd.model.graph import ENV_CACHE

sys.path.insert(0, str(Path(__file__).parent))
from bench_models import _peak_during
from bench_scale import SHARED, STAND_IN, dataset_folder

K = 10


def _interactions(folder: Path, name: str) -> sp.coo_matrix:
    inter = pd.read_csv(folder / name / f"{name}.inter", sep="\t")
    train = inter[inter["x_label"] == 0]
    return sp.coo_matrix(
        (np.ones(len(train), np.float32), (train["userID"], train["itemID"])),
        shape=(int(inter["userID"].max()) + 1, int(inter["itemID"].max()) + 1),
    )


def _features(folder: Path, name: str, modality: str) -> torch.Tensor:
    return torch.from_numpy(np.load(folder / name / f"{name}.{modality}.npy"))


def similarity_floor(features: torch.Tensor) -> None:
    """The products an exact cosine kNN must compute, in ``knn_graph``'s row blocks."""
    chunk = inspect.signature(graph.knn_graph).parameters["chunk"].default
    unit = F.normalize(features, dim=1)
    for start in range(0, unit.shape[0], chunk):
        unit[start : start + chunk] @ unit.T


def _timed(step, *args) -> float:
    start = perf_counter()
    step(*args)
    return perf_counter() - start


def _cached_read(features: torch.Tensor) -> float:
    """Seconds of ``cached_knn_graph`` reading the graph it stored (digest included)."""
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {ENV_CACHE: cache}):
        graph.cached_knn_graph(features, K)
        graph._KNN_CACHE.clear()
        seconds = _timed(graph.cached_knn_graph, features, K)
        graph._KNN_CACHE.clear()
        return seconds


def _peak(folder: Path, name: str, what: str) -> float:
    """In a fresh process: peak resident-memory growth (MB) of one construction, the inputs
    read before the measurement starts."""
    inputs = _interactions(folder, name) if what == "adjacency" else _features(folder, name, what)
    build = graph.normalized_adjacency if what == "adjacency" else lambda x: graph.knn_graph(x, K)
    return _peak_during(lambda: build(inputs))[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="MMRec-layout folder")
    parser.add_argument("--datasets", nargs="+", default=["baby", "clothing"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/recbole-mmkd-scale"))
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    print(f"torch threads {torch.get_num_threads()}; stand-in features: cost only")
    print("\n| set | graph | items x dim | build s | floor s (G multiply-adds) | x floor "
          "| cached read s | peak MB |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name in args.datasets:
        folder = dataset_folder(args.data, name, args.work, stand_in=True)
        adjacency = _interactions(folder, name)
        seconds = statistics.median(
            _timed(graph.normalized_adjacency, adjacency) for _ in range(args.rounds)
        )
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            peak = pool.submit(_peak, folder, name, "adjacency").result()
        print(f"| {name} | user-item adjacency | {adjacency.shape[0]} users, "
              f"{adjacency.nnz} edges | {seconds:.2f} | | | | {peak:.0f} |")  # fmt: skip
        for modality in STAND_IN:
            features = _features(folder, name, modality)
            builds, floors = [], []
            for _ in range(args.rounds):
                floors.append(_timed(similarity_floor, features))
                builds.append(_timed(graph.knn_graph, features, K))
            build, floor = statistics.median(builds), statistics.median(floors)
            read = _cached_read(features)
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                peak = pool.submit(_peak, folder, name, modality).result()
            n, dim = features.shape
            print(f"| {name} | kNN {modality} (k {K}) | {n} x {dim} | {build:.2f} "
                  f"| {floor:.2f} ({n * n * dim / 1e9:.0f}) | {build / floor:.2f} | {read:.2f} "
                  f"| {peak:.0f} |")  # fmt: skip
            sys.stdout.flush()


if __name__ == "__main__":
    main()
