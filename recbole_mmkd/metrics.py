"""Per-user top-k metrics from RecBole's evaluation data.

RecBole reports only means. Its collector keeps, per evaluated user, the hit flags of the top
``max(topk)`` ranks and the number of positives (``rec.topk``); each metric class's
``metric_info`` turns these into per-user values at every cut-off. Calling the same functions
here gives per-user vectors whose means are exactly RecBole's reported figures.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from recbole.evaluator import metrics as recbole_metrics

from recbole_mmkd.errors import ConfigError

TOPK_METRICS = {
    "recall": recbole_metrics.Recall,
    "ndcg": recbole_metrics.NDCG,
    "precision": recbole_metrics.Precision,
    "hit": recbole_metrics.Hit,
    "map": recbole_metrics.MAP,
    "mrr": recbole_metrics.MRR,
}


def per_user_topk(
    topk_matrix: torch.Tensor, metrics: list[str], topk: list[int]
) -> dict[str, np.ndarray]:
    """``{"recall@20": values per user, ...}`` from a ``rec.topk`` matrix.

    ``topk_matrix`` has one row per user: ``max(topk)`` hit flags, then the positive count.
    """
    max_k = max(topk)
    hits, pos_len = torch.split(topk_matrix, [max_k, 1], dim=1)
    pos_index = hits.to(torch.bool).numpy()
    pos_len = pos_len.squeeze(-1).numpy()
    out = {}
    for name in metrics:
        key = name.lower()
        if key not in TOPK_METRICS:
            raise ConfigError(
                "config",
                "metrics",
                f"{name!r} is not a top-k metric",
                f"use {sorted(TOPK_METRICS)}",
            )
        metric = TOPK_METRICS[key]({"metric_decimal_place": 10, "topk": topk})
        n_args = len(inspect.signature(metric.metric_info).parameters)
        values = (
            metric.metric_info(pos_index, pos_len) if n_args == 2 else metric.metric_info(pos_index)
        )
        for k in topk:
            out[f"{key}@{k}"] = np.asarray(values[:, k - 1], dtype=np.float64)
    return out
