#!/usr/bin/env python
"""The kd benchmark's comparisons (issue 4's committed runs, moved to results/kd-issue4) at both
levels of recbole_mmkd.reporting.stats: over users and over seeds. Trains nothing.

    .venv/bin/python scripts/kd_seed_level.py

The committed runs carry the config hashes of the code that made them, so each is matched to
its kd.yaml entry by its settings: the KD student of the entry (logit KD, weight 0.01), and
on ml-100k-mm the LightGCN of patience 50 (that dataset's YAML), not the older patience-20
runs kept in the same folder. The FREEDOM teachers are not compared.
"""

from __future__ import annotations

from dataclasses import replace

import recbole_mmkd  # noqa: F401
from recbole_mmkd.reporting.report import comparison_table
from recbole_mmkd.result import RunResult, load_results
from recbole_mmkd.specs import load_benchmark

COLUMNS = ["model", "reference", "metric", "model mean", "reference mean", "relative",
           "95% CI (users)", "p (holm, users)", "95% CI (seeds x users)", "p (welch, seeds)",
           "p (holm, seeds)", "min detectable", "seeds needed", "established", "seeds"]  # fmt: skip


def entry(run: RunResult) -> str | None:
    """The kd.yaml entry a committed run belongs to (None: not one of the benchmark's)."""
    if run.model == "KD-LightGCN":
        chosen = run.config.get("kd_method") == "logit" and run.config.get("kd_weight") == 0.01
        return run.model if chosen else None
    if run.model == "LightGCN" and run.dataset == "ml-100k-mm":
        return run.model if run.config.get("stopping_step") == 50 else None
    return None if run.model == "FREEDOM" else run.model


def main() -> None:
    bench = load_benchmark("kd")
    runs = load_results("results/kd-issue4")
    for dataset in bench.datasets:
        mine = [replace(r, model=entry(r)) for r in runs if r.dataset == dataset and entry(r)]
        table = comparison_table(bench, mine)
        print(f"## {dataset}\n\n{table[COLUMNS].to_markdown(index=False)}\n")


if __name__ == "__main__":
    main()
