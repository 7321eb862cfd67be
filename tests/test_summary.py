"""A benchmark's summary: each entry's chosen point and validation value, test means and its
comparisons at both levels, one row per finding."""

from __future__ import annotations

import numpy as np
from test_stats import _result

from recbole_mmkd.reporting.report import Report
from recbole_mmkd.specs import load_benchmark


def test_the_summary_joins_the_search_the_seeds_and_the_tests(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(
        "datasets: [d]\nseeds: [2020, 2021]\nmetrics: [recall@20]\nmodels:\n"
        "  - {model: BPR, label: A, space: {reg_weight: [0.1, 0.01]}}\n"
        "  - {model: BPR, label: B, space: {reg_weight: [0.1, 0.01]}}\n"
        "  - {model: BPR, label: C, space: {reg_weight: [0.1, 0.01]}}\n"
        "  - {model: BPR, label: D}\n"
        "comparisons: [[B, A], [B, C]]\n"
    )
    rng, runs = np.random.default_rng(0), []
    entries = (("A", 0.1, 0.20), ("B", 0.01, 0.25), ("C", 0.01, 0.2), ("D", 0.1, 0.1))
    for name, reg, level in entries:
        for seed, shift in ((2020, 0.0), (2021, 0.01)):
            run = _result(name, seed, np.arange(300), level + shift + rng.normal(0, 0.05, 300))
            run.test = {"recall@20": float(run.test_per_user["recall@20"].mean())}
            run.config = {"reg_weight": reg}
            run.best_valid = {"recall@20": 0.3 + seed / 1e5}
            run.n_params, run.test_seconds = 1000, 0.1
            runs.append(run)
    summary = Report(load_benchmark(spec), {"d": runs}).datasets["d"].summary
    rows = summary.to_dict("records")
    assert [r["model"] for r in rows] == ["A", "B", "B", "C", "D"]  # B once per comparison
    assert rows[0]["chosen on validation"] == "reg_weight 0.1 (0.32020)"  # the 2020 run's
    assert rows[0]["against"] == "" and rows[4]["chosen on validation"] == ""  # D: untuned
    assert rows[1]["against"] == "A" and rows[2]["against"] == "C"
    assert rows[2]["chosen on validation"] == "" and rows[2]["test recall@20"] == ""
    mean_b = np.mean([r.test["recall@20"] for r in runs if r.model == "B"])
    assert rows[1]["test recall@20"].startswith(f"{mean_b:.4f} ± ")
    assert rows[1]["change"].startswith("+") and rows[1]["established"] in {"yes", "no"}
