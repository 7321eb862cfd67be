"""Figures: written as PNG and PDF, with the expected axes labels and number of series."""

from __future__ import annotations

import numpy as np
import pandas as pd
from test_stats import _result

from recbole_mmkd.reporting import figures


def _runs():
    rng = np.random.default_rng(0)
    users = np.arange(200)
    runs = []
    for i, model in enumerate(["Teacher", "Student", "Baseline"]):
        for seed in (1, 2):
            r = _result(model, seed, users, rng.random(200) * (0.1 + 0.05 * i))
            r.test = {"recall@20": float(r.test_per_user["recall@20"].mean())}
            r.valid_curve = [
                {"epoch": e, "recall@20": 0.01 * e + 0.001 * i} for e in range(5 + seed)
            ]
            r.best_epoch, r.n_params, r.test_seconds = 3, 1000 * (i + 1), 0.1 * (i + 1)
            r.robustness = [
                {"modality": m, "share": s, "recall@20": 0.1 - s / 10}
                for m in ("image", "text")
                for s in (0.0, 0.5, 1.0)
            ] if model != "Baseline" else []  # fmt: skip
            runs.append(r)
    return runs


def test_every_figure_is_written_with_labelled_axes_and_one_series_per_model(tmp_path):
    runs = _runs()
    bars = figures.leaderboard_bars(runs, "recall@20")
    (ax,) = bars.axes
    assert len(ax.patches) == 3 and ax.get_xlabel() == "test Recall@20"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["Teacher", "Student", "Baseline"]
    curves = figures.training_curves(runs)
    (ax,) = curves.axes
    lines = [
        line for line in ax.get_lines() if line.get_label() in {"Teacher", "Student", "Baseline"}
    ]
    assert len(lines) == 3 and ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "validation Recall@20"
    frontier = figures.efficiency_frontier(runs, "recall@20", pairs=[("Teacher", "Student")])
    assert [a.get_xlabel() for a in frontier.axes] == [
        "full-sort inference s / 1,000 users",
        "trainable parameters",
    ]
    assert all(len(a.collections) == 3 for a in frontier.axes)
    robust = figures.robustness_curves(runs, "recall@20")
    assert len(robust.axes) == 2 and all(len(a.get_lines()) == 2 for a in robust.axes)
    table = pd.DataFrame(
        [
            {"kd_weight": k, "ce_weight": c, "t_decay": t, "best_valid": k + c + t / 100}
            for k in (0.1, 1.0) for c in (0.1, 1.0) for t in (5, 50)
        ]
    )  # fmt: skip
    heat = figures.sweep_heatmaps(table)
    panels = [a for a in heat.axes if a.get_xlabel() == "kd_weight"]
    assert [a.get_title() for a in panels] == ["t_decay = 5", "t_decay = 50"]
    # the best cell (kd 1, ce 1, t 50) is outlined, in the t_decay = 50 panel only
    assert [len(a.patches) for a in panels] == [0, 1]
    assert panels[1].patches[0].get_xy() == (0.5, 0.5)
    methods = pd.DataFrame(
        [{"kd_weight": k, "kd_method": m, "best_valid": k + len(m)}
         for k in (0.01, 1.0) for m in ("logit", "rd", "rrd")]
    )  # fmt: skip
    by_method = figures.sweep_heatmaps(methods, x="kd_weight", y="kd_method", facet=None).axes[0]
    assert [t.get_text() for t in by_method.get_yticklabels()] == ["logit", "rd", "rrd"]
    assert by_method.patches[0].get_xy() == (0.5, -0.5)  # logit (5 letters) at kd_weight 1
    scatter = figures.sweep_scatter(table, "kd_weight", "ce_weight")
    assert len(scatter.axes[0].collections) == 2 and scatter.axes[0].get_xscale() == "log"
    for name, fig in [("bars", bars), ("curves", curves), ("frontier", frontier),
                      ("robust", robust), ("heat", heat), ("scatter", scatter)]:  # fmt: skip
        for path in figures.save(fig, tmp_path / name):
            assert path.stat().st_size > 1000


def test_a_figure_saved_twice_gives_the_same_bytes(tmp_path):
    """Re-writing a report from the same runs must not change committed figures."""
    fig = figures.leaderboard_bars(_runs(), "recall@20")
    first = [p.read_bytes() for p in figures.save(fig, tmp_path / "a")]
    second = [p.read_bytes() for p in figures.save(fig, tmp_path / "b")]
    assert first == second
