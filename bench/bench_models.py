#!/usr/bin/env python
"""Model costs on the shipped TikTok data and graph construction at Amazon-Baby scale.

Prints, in one process:
1. per registered model: median training-epoch time and full-sort test evaluation time on
   TikTok, each as a ratio to LightGCN's (the reference);
2. graph construction on ../shared/data/baby interactions with stand-in features of the
   published shapes (image 4096-d, text 384-d): normalised user-item adjacency and the kNN
   item-item graph (k = 10), time and resident-memory growth.

  .venv/bin/python bench/bench_models.py [--epochs 3] [--models MMGCN LATTICE ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from time import perf_counter

import numpy as np
import pandas as pd
import psutil
import scipy.sparse as sp
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

import recbole_mmkd  # noqa: F401
from recbole_mmkd.config import ROOT, build_config
from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.model import get_model, model_names
from recbole_mmkd.model.graph import knn_graph, normalized_adjacency
from recbole_mmkd.trainer import MMKDTrainer

BABY = ROOT.parent / "shared" / "data" / "baby" / "baby.inter"


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def model_costs(name: str, epochs: int) -> tuple[float, float]:
    config = build_config(name, "tiktok", {"epochs": epochs})
    init_seed(0, True)
    train, _, test = data_preparation(config, MultimodalDataset(config))
    model = get_model(name)(config, train.dataset).to(config["device"])
    trainer = MMKDTrainer(config, model)
    times = []
    for epoch in range(epochs):
        start = perf_counter()
        model.on_epoch_start(epoch)
        trainer._train_epoch(train, epoch)
        times.append(perf_counter() - start)
    trainer.evaluate_full(test, per_user=False)  # warm-up: builds the cached batches
    evals = [trainer.evaluate_full(test, per_user=False).seconds for _ in range(3)]
    return statistics.median(times), statistics.median(evals)


def graph_construction() -> None:
    if not BABY.is_file():
        print(f"[graph] skipped: {BABY} not found (needs ../shared beside the checkout)")
        return
    inter = pd.read_csv(BABY, sep="\t")
    train = inter[inter["x_label"] == 0]
    n_users, n_items = inter["userID"].max() + 1, inter["itemID"].max() + 1
    matrix = sp.coo_matrix(
        (np.ones(len(train), np.float32), (train["userID"], train["itemID"])),
        shape=(n_users, n_items),
    )
    before, start = rss_mb(), perf_counter()
    adjacency = normalized_adjacency(matrix)
    print(
        f"[graph] Baby user-item adjacency ({n_users} users, {n_items} items, "
        f"{len(train)} train edges): {perf_counter() - start:.3f} s, +{rss_mb() - before:.0f} MB"
    )
    del adjacency
    rng = np.random.default_rng(0)
    for modality, dim in (("image", 4096), ("text", 384)):
        features = torch.from_numpy(rng.standard_normal((n_items, dim), dtype=np.float32))
        before, start = rss_mb(), perf_counter()
        graph = knn_graph(features, k=10)
        print(
            f"[graph] Baby kNN item graph, stand-in {modality} {n_items}x{dim}, k=10: "
            f"{perf_counter() - start:.3f} s, +{rss_mb() - before:.0f} MB "
            f"(dense similarity would be {n_items**2 * 4 / 2**20:.0f} MB), "
            f"{graph._nnz()} edges"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=None)
    args = parser.parse_args()
    names = args.models or [m for m in model_names() if m != "LightGCN"]
    print(f"torch threads {torch.get_num_threads()}")
    ref_epoch, ref_eval = model_costs("LightGCN", args.epochs)
    print(f"{'model':<12} {'epoch s':>8} {'x LightGCN':>10} {'eval s':>8} {'x LightGCN':>10}")
    print(f"{'LightGCN':<12} {ref_epoch:8.3f} {1:10.2f} {ref_eval:8.3f} {1:10.2f}")
    for name in names:
        epoch, evaluation = model_costs(name, args.epochs)
        print(
            f"{name:<12} {epoch:8.3f} {epoch / ref_epoch:10.2f} "
            f"{evaluation:8.3f} {evaluation / ref_eval:10.2f}"
        )
        sys.stdout.flush()
    graph_construction()


if __name__ == "__main__":
    main()
