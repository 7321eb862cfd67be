"""The compression benchmark's reading: every student against its teacher, the narrowest
within a tolerance, each method's gain per width, and the frontier figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_stats import _result

from recbole_mmkd.errors import DataError
from recbole_mmkd.reporting.compression import (
    compression_frontier,
    compression_table,
    smallest_within,
    width_gains,
)
from recbole_mmkd.reporting.report import Report
from recbole_mmkd.specs import load_benchmark

N_USERS, N_ITEMS = 100, 50
# entry: (model, kd_method, width, per-seed test Recall@20)
ENTRIES = {
    "teacher": ("FREEDOM", None, 128, (0.099, 0.101)),
    "LightGCN x1": ("LightGCN", None, 128, (0.096, 0.098)),
    "LightGCN x1/2": ("LightGCN", None, 64, (0.094, 0.096)),
    "LightGCN x1/4": ("LightGCN", None, 32, (0.079, 0.081)),
    "rd x1": ("KD-LightGCN", "rd", 128, (0.098, 0.100)),
    "rd x1/2": ("KD-LightGCN", "rd", 64, (0.098, 0.099)),
    "rd x1/4": ("KD-LightGCN", "rd", 32, (0.089, 0.091)),
}


def _runs():
    rng, runs = np.random.default_rng(0), []
    for name, (model, method, width, values) in ENTRIES.items():
        for seed, value in enumerate(values, start=1):
            users = np.arange(N_USERS)
            run = _result(name, seed, users, value + rng.normal(0, 0.01, N_USERS))
            run.test = {"recall@20": value}
            config = {"model": model, "embedding_size": width}
            run.config = config if method is None else {**config, "kd_method": method}
            run.n_params = (N_USERS + N_ITEMS) * width
            run.serving = {"tables": 4 * run.n_params, "model": 4 * run.n_params + 10**6}
            run.test_seconds = 0.001 * width
            runs.append(run)
    return runs


def test_the_table_sets_every_student_against_its_teacher():
    table = compression_table(_runs(), "teacher", "recall@20")
    assert table["entry"].tolist()[0] == "teacher"
    rows = table.set_index("entry")
    assert rows.loc["rd x1/2", ["backbone", "method", "width"]].tolist() == ["LightGCN", "rd", 64]
    assert rows.loc["LightGCN x1/4", "method"] == "alone"
    assert rows.loc["LightGCN x1/4", "share of teacher width"] == 0.25
    assert rows.loc["rd x1/4", "recall@20"] == pytest.approx(0.09)
    assert rows.loc["rd x1/4", "vs teacher"] == "-10.0%"
    assert rows.loc["LightGCN x1/2", "table MiB"] == pytest.approx(4 * 150 * 64 / 2**20, abs=1e-3)
    assert rows.loc["teacher", "eval ms / 1k users"] == pytest.approx(1000 * 0.128 * 1000 / N_USERS)
    with pytest.raises(ValueError, match="no runs of the teacher entry 'T'"):
        compression_table(_runs(), "T", "recall@20")


def test_the_narrowest_student_within_the_tolerance():
    table = compression_table(_runs(), "teacher", "recall@20")
    smallest = smallest_within(table, "recall@20", tolerance=0.02).set_index("method")
    # the floor is 0.098: rd holds it down to half the teacher's width, the student alone never
    assert smallest.loc["rd", "smallest width"] == 64
    assert smallest.loc["rd", "params / teacher params"] == 0.5
    assert smallest.loc["alone", "smallest width"] == "none within 2%"
    loose = smallest_within(table, "recall@20", tolerance=0.21).set_index("method")
    assert loose.loc["alone", "smallest width"] == 32  # 0.08 >= 0.79 x 0.1


def test_width_gains_read_the_same_width_comparisons():
    table = compression_table(_runs(), "teacher", "recall@20")
    comparisons = pd.DataFrame(
        [
            {"model": "rd x1/2", "reference": "LightGCN x1/2", "metric": "recall@20",
             "relative": "+3.7%", "established": "yes"},
            {"model": "rd x1/4", "reference": "LightGCN x1/4", "metric": "recall@20",
             "relative": "+12.5%", "established": "no"},
            {"model": "rd x1/4", "reference": "LightGCN x1/2", "metric": "recall@20",
             "relative": "-5.3%", "established": "yes"},  # another width: not a cell
            {"model": "rd x1/4", "reference": "LightGCN x1/4", "metric": "ndcg@20",
             "relative": "+1%", "established": "no"},  # another metric
        ]
    )  # fmt: skip
    gains = width_gains(table, comparisons, "recall@20")
    assert gains.to_dict("records") == [
        {"backbone": "LightGCN", "method": "rd", "width 64": "+3.7% (yes)",
         "width 32": "+12.5% (no)"},
    ]  # fmt: skip


def test_a_compression_benchmark_reports_its_tables_and_frontier(tmp_path):
    spec = tmp_path / "c.yaml"
    models = "".join(f"  - {{model: BPR, label: '{name}'}}\n" for name in ENTRIES)
    spec.write_text(
        f"datasets: [d]\nseeds: [1, 2]\nmetrics: [recall@20]\nmodels:\n{models}"
        "comparisons: [['rd x1/2', 'LightGCN x1/2'], ['rd x1/4', 'LightGCN x1/4']]\n"
        "compression: {teacher: teacher}\n"
    )
    report = Report(load_benchmark(spec), {"d": _runs()})
    part = report.datasets["d"]
    assert part.smallest.set_index("method").loc["rd", "smallest width"] == 64
    assert list(part.width_gains.columns) == ["backbone", "method", "width 64", "width 32"]
    report.save(tmp_path / "out")
    text = (tmp_path / "out" / "compression-d.md").read_text()
    assert "narrowest student of each method within 2%" in text
    assert (tmp_path / "out" / "figures" / "compression-d.png").is_file()
    fig = compression_frontier(part.compression, "recall@20")
    assert len(fig.axes) == 3 and all(ax.get_xscale() == "log" for ax in fig.axes)
    labels = fig.axes[-1].get_legend_handles_labels()[1]  # a line per method, the teacher
    assert sorted(labels) == ["LightGCN alone", "LightGCN rd", "teacher (FREEDOM)"]
    assert fig.axes[-1].get_legend() is not None and fig.axes[0].get_legend() is None


@pytest.mark.parametrize(
    ("section", "problem"),
    [("{teacher: nobody}", "'nobody' is not an entry"), ("{teacher: A, tolerance: 2}", "bad value"),
     ("{teacher: A, slack: 1}", "unknown key")],
)  # fmt: skip
def test_a_bad_compression_section_is_refused(tmp_path, section, problem):
    spec = tmp_path / "c.yaml"
    spec.write_text(f"datasets: [d]\nseeds: [1]\nmodels: [{{model: BPR, label: A}}]\n"
                    f"compression: {section}\n")  # fmt: skip
    with pytest.raises(DataError, match=problem):
        load_benchmark(spec)
