"""Leaderboard of seed-averaged test metrics, read from RunResults on disk."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pandas as pd

from recbole_mmkd.result import RunResult

DEFAULT_METRICS = ("recall@20", "ndcg@20")


def label_runs(results: Iterable[RunResult]) -> list[RunResult]:
    """The runs with ``model`` made unique per configuration within each dataset, for reports
    of a results folder.

    A model run under one configuration on a dataset keeps its name. One run under several is
    named by the config keys whose values differ between them, ``GRCN (routing=paper)`` (keys
    set in every configuration first; a key that some runs lack shows as ``=None``), or, where
    only the code differed, by its config hash, ``GRCN [f43d8a5e74]``.
    """
    results = list(results)
    configs: dict[tuple[str, str], dict[str, dict]] = {}
    for r in results:
        configs.setdefault((r.dataset, r.model), {})[r.config_hash] = r.config
    names = {}
    for (dataset, model), by_hash in configs.items():
        keys = sorted({k for c in by_hash.values() for k in c})
        differ = [k for k in keys if len({repr(c.get(k)) for c in by_hash.values()}) > 1]
        # keys every configuration sets say more than keys that older runs did not know yet
        differ = [k for k in differ if all(k in c for c in by_hash.values())] or differ
        for config_hash, config in by_hash.items():
            if len(by_hash) == 1:
                name = model
            elif differ:
                name = f"{model} ({', '.join(f'{k}={config.get(k)}' for k in differ)})"
            else:
                name = f"{model} [{config_hash}]"
            names[dataset, model, config_hash] = name
    return [replace(r, model=names[r.dataset, r.model, r.config_hash]) for r in results]


def leaderboard(
    results: Iterable[RunResult], *, metrics: Iterable[str] = DEFAULT_METRICS
) -> pd.DataFrame:
    """One row per (dataset, model, config): mean and std over seeds of each test metric, the
    number of seeds, best epoch, parameter count and timings. Sorted by the first metric."""
    rows = [
        {
            "dataset": r.dataset,
            "model": r.model,
            "config": r.config_hash,
            "seed": r.seed,
            **{m: r.test[m] for m in metrics},
            "best_epoch": r.best_epoch,
            "params": r.n_params,
            "train_s": r.train_seconds,
            "eval_s_per_1k_users": r.test_seconds_per_1k_users,
        }
        for r in results
    ]
    if not rows:
        raise ValueError("no RunResults to rank")
    frame = pd.DataFrame(rows)
    metrics = list(metrics)
    grouped = frame.groupby(["dataset", "model", "config"], sort=False)
    table = grouped[metrics].mean()
    for m in metrics:
        table[f"{m} std"] = grouped[m].std(ddof=1) if grouped.size().max() > 1 else np.nan
    table["seeds"] = grouped.size()
    table["best_epoch"] = grouped["best_epoch"].mean()
    table["params"] = grouped["params"].first()
    table["train_s"] = grouped["train_s"].mean()
    table["eval_s_per_1k_users"] = grouped["eval_s_per_1k_users"].mean()
    return table.reset_index().sort_values(["dataset", metrics[0]], ascending=[True, False])


def to_markdown(table: pd.DataFrame, *, metrics: Iterable[str] = DEFAULT_METRICS) -> str:
    """Markdown table with ``mean ± std`` cells."""
    metrics = list(metrics)
    shown = pd.DataFrame(
        {"dataset": table["dataset"], "model": table["model"], "config": table["config"]}
    )
    for m in metrics:
        std = table[f"{m} std"].fillna(0.0)
        shown[m] = [f"{a:.4f} ± {s:.4f}" for a, s in zip(table[m], std, strict=True)]
    shown["seeds"] = table["seeds"]
    shown["best epoch"] = table["best_epoch"].round(1)
    shown["params"] = table["params"]
    shown["train s"] = table["train_s"].round(1)
    shown["eval s / 1k users"] = table["eval_s_per_1k_users"].round(4)
    return shown.to_markdown(index=False)
