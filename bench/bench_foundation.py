#!/usr/bin/env python
"""Foundation benchmark on the shipped TikTok data, one process, ratios against baselines.

Prints:
1. dataset load time and memory (MultimodalDataset + data_preparation);
2. full-sort test evaluation of LightGCN (the project's evaluate_full: scoring, masking,
   top-k, metrics, per-user vectors) against bare ``users @ items.T`` + ``topk`` on the same
   tensors;
3. training epoch time of the project's LightGCN against RecBole's own LightGCN, same data
   and config.

  .venv/bin/python bench/bench_foundation.py [--epochs 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter

import psutil
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

import recbole_mmkd  # noqa: F401
from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.model import get_model
from recbole_mmkd.prepare import config_for
from recbole_mmkd.trainer import MMKDTrainer

SHARED = {"n_layers": 2, "embedding_size": 64, "reg_weight": 1e-4, "epochs": 1}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def load(model: str):
    config = config_for(model, "tiktok", overrides=dict(SHARED))
    init_seed(0, True)
    before, start = rss_mb(), perf_counter()
    data = MultimodalDataset(config)
    loaded = perf_counter() - start
    loaders = data_preparation(config, data)
    return config, loaders, loaded, perf_counter() - start, rss_mb() - before


def epoch_times(config, model_name: str, train, epochs: int) -> list[float]:
    init_seed(0, True)
    model = get_model(model_name)(config, train.dataset).to(config["device"])
    trainer = MMKDTrainer(config, model)
    times = []
    for epoch in range(epochs):
        start = perf_counter()
        trainer._train_epoch(train, epoch)
        times.append(perf_counter() - start)
    return times, trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    config, (train, _, test), t_data, t_prep, mem = load("LightGCN")
    print(f"torch threads {torch.get_num_threads()}, device {config['device']}")
    print(
        f"[load] MultimodalDataset(tiktok): {t_data:.3f} s; + data_preparation: {t_prep:.3f} s; "
        f"RSS +{mem:.0f} MB"
    )

    ours, trainer = epoch_times(config, "LightGCN", train, args.epochs)
    trainer.evaluate_full(test)  # warm-up
    full = [trainer.evaluate_full(test).seconds for _ in range(args.repeats)]
    model = trainer.model
    users = torch.as_tensor(test.uid_list, device=config["device"])
    bare = []
    with torch.no_grad():
        for _ in range(args.repeats):
            start = perf_counter()
            user_e, item_e = model.forward()
            torch.topk(user_e[users] @ item_e.T, 50, dim=1)
            bare.append(perf_counter() - start)
    n_users = len(users)
    f, b = statistics.median(full), statistics.median(bare)
    print(
        f"[eval] LightGCN full-sort test ({n_users} users x {model.n_items} items): "
        f"evaluate_full {f:.3f} s, bare matmul+topk {b:.3f} s, ratio {f / b:.2f}x"
    )

    rb_config, (rb_train, _, _), *_ = load("recbole.LightGCN")
    theirs, _ = epoch_times(rb_config, "recbole.LightGCN", rb_train, args.epochs)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(
        f"[train] LightGCN epoch (median of {args.epochs}): ours {o:.3f} s, "
        f"RecBole's {t:.3f} s, ratio ours/RecBole {o / t:.2f}x"
    )


if __name__ == "__main__":
    main()
