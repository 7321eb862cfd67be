"""A compression benchmark's report: students of several widths, alone and distilled by each
KD method, against their teacher (a benchmark's ``compression: {teacher: ENTRY}``).

- :func:`compression_table`: one row per entry, the teacher first: its backbone, KD method
  (``alone`` for the plain student), width and share of the teacher's, test metric (mean and
  std over seeds) and its change against the teacher, and what serving it costs, measured by
  its runs: parameters, bytes of its model (parameters and buffers: features, graphs) and of
  its tables, and its test evaluation's milliseconds per 1,000 test users (the full sort with
  the forward pass that computes the tables and the metrics, as its runs timed it, under the
  load their machine had; ``bench/bench_serving.py`` times the full sort alone).
- :func:`smallest_within`: per (backbone, method), the narrowest student within ``tolerance``
  of the teacher's mean, with its costs as shares of the teacher's.
- :func:`width_gains`: per width, each method's change against the same-width student alone,
  read off the benchmark's comparisons (tested over seeds, corrected), one column a width.
- :func:`compression_frontier`: the figure of metric against each serving cost, a line per
  (backbone, method) over widths, the teacher as a reference line.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recbole_mmkd.reporting.tables import metric_label
from recbole_mmkd.result import RunResult

ALONE = "alone"
COSTS = {  # column: axis label of the frontier figure
    "table MiB": "serving tables (MiB)",
    "eval ms / 1k users": "test evaluation ms per 1,000 users",
    "params": "parameters",
}


def _kind(run: RunResult) -> tuple[str, str]:
    """(backbone, KD method) of a run: ``KD-LightGCN`` with ``rd`` is (LightGCN, rd)."""
    model = str(run.config.get("model", run.model))
    method = run.config.get("kd_method") if model.startswith("KD-") else None
    return model.removeprefix("KD-"), str(method) if method else ALONE


def compression_table(results: list[RunResult], teacher: str, metric: str) -> pd.DataFrame:
    """One row per entry (runs grouped by ``model``), the ``teacher`` entry first (method
    ``teacher``); widths are ``embedding_size``, costs the means over its runs."""
    groups: dict[str, list[RunResult]] = {}
    for run in results:
        groups.setdefault(run.model, []).append(run)
    if teacher not in groups:
        raise ValueError(f"no runs of the teacher entry {teacher!r} among {sorted(groups)}")
    teacher_width = groups[teacher][0].config["embedding_size"]
    teacher_mean = float(np.mean([r.test[metric] for r in groups[teacher]]))
    rows = []
    for name, runs in groups.items():
        backbone, method = _kind(runs[0])
        width = int(runs[0].config["embedding_size"])
        values = [r.test[metric] for r in runs]
        rows.append(
            {
                "entry": name,
                "backbone": runs[0].config.get("model", name) if name == teacher else backbone,
                "method": "teacher" if name == teacher else method,
                "width": width,
                "share of teacher width": round(width / teacher_width, 4),
                metric: round(float(np.mean(values)), 6),
                f"{metric} std": round(float(np.std(values, ddof=1)), 4) if len(runs) > 1 else 0.0,
                "vs teacher": f"{100 * (np.mean(values) / teacher_mean - 1):+.1f}%",
                "seeds": len(runs),
                "params": runs[0].n_params,
                "model MiB": round(_mean_size(runs, "model") / 2**20, 3),
                "table MiB": round(_mean_size(runs, "tables") / 2**20, 3),
                "eval ms / 1k users": round(
                    float(np.mean([1000 * r.test_seconds_per_1k_users for r in runs])), 2
                ),
            }
        )
    table = pd.DataFrame(rows).assign(student=lambda t: t["method"] != "teacher")
    keys, ascending = ["student", "backbone", "method", "width"], [True, True, True, False]
    return (
        table.sort_values(keys, ascending=ascending).drop(columns="student").reset_index(drop=True)
    )


def _mean_size(runs: list[RunResult], key: str) -> float:
    sizes = [r.serving[key] for r in runs if key in r.serving]
    return float(np.mean(sizes)) if sizes else float("nan")


def smallest_within(table: pd.DataFrame, metric: str, *, tolerance: float = 0.02) -> pd.DataFrame:
    """Per (backbone, method), the narrowest width whose mean ``metric`` is at least ``1 -
    tolerance`` of the teacher's, with its change and its serving costs as shares of the
    teacher's (tables against the teacher's model: what each needs to serve); ``none`` where
    no width is."""
    teacher = table[table["method"] == "teacher"].iloc[0]
    floor = (1 - tolerance) * teacher[metric]
    rows = []
    for (backbone, method), group in table[table["method"] != "teacher"].groupby(
        ["backbone", "method"], sort=True
    ):
        within = group[group[metric] >= floor].sort_values("width")
        row = {"backbone": backbone, "method": method}
        if within.empty:
            rows.append({**row, "smallest width": f"none within {100 * tolerance:g}%"})
            continue
        best = within.iloc[0]
        rows.append(
            {
                **row,
                "smallest width": int(best["width"]),
                "share of teacher width": best["share of teacher width"],
                metric: best[metric],
                "vs teacher": best["vs teacher"],
                "tables / teacher model": round(best["table MiB"] / teacher["model MiB"], 4),
                "eval ms / teacher's": round(
                    best["eval ms / 1k users"] / teacher["eval ms / 1k users"], 3
                ),
                "params / teacher params": round(best["params"] / teacher["params"], 4),
            }
        )
    return pd.DataFrame(rows)


def width_gains(table: pd.DataFrame, comparisons: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (backbone, method), one column per width: the method's change against the
    same-width student alone and whether it is established over seeds (``yes``/``no``), from
    those of ``comparisons`` (a benchmark's comparison table) that set an entry against the
    student alone of its width."""
    if comparisons.empty:
        return pd.DataFrame()
    kinds = table.set_index("entry")[["backbone", "method", "width"]]
    cells: dict[tuple[str, str], dict[int, str]] = {}
    for row in comparisons[comparisons["metric"] == metric].itertuples(index=False):
        model, reference = row.model, row.reference
        if model not in kinds.index or reference not in kinds.index:
            continue
        m, r = kinds.loc[model], kinds.loc[reference]
        if r["method"] != ALONE or (m["backbone"], m["width"]) != (r["backbone"], r["width"]):
            continue
        cell = f"{row.relative} ({row.established})"
        cells.setdefault((m["backbone"], m["method"]), {})[int(m["width"])] = cell
    if not cells:
        return pd.DataFrame()
    frame = pd.DataFrame.from_dict(cells, orient="index")
    frame = frame[sorted(frame.columns, reverse=True)].fillna("")
    frame.columns = [f"width {w}" for w in frame.columns]
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["backbone", "method"])
    return frame.sort_index().reset_index()


def compression_frontier(table: pd.DataFrame, metric: str) -> Figure:
    """``metric`` against each serving cost (:data:`COSTS`, log scales), a line per (backbone,
    method) through its widths, error bars the std over seeds; the teacher a dashed line at
    its mean and a star at its own costs (its model's bytes where the students' are tables)."""
    fig = Figure(figsize=(12, 3.8))
    axes = fig.subplots(1, len(COSTS), sharey=True)
    teacher = table[table["method"] == "teacher"].iloc[0]
    students = table[table["method"] != "teacher"]
    for ax, (column, label) in zip(axes, COSTS.items(), strict=True):
        for (backbone, method), group in students.groupby(["backbone", "method"], sort=True):
            group = group.sort_values("width")
            ax.errorbar(
                group[column], group[metric], yerr=group[f"{metric} std"], marker="o",
                markersize=3, capsize=2, linewidth=1, label=f"{backbone} {method}",
            )  # fmt: skip
        x = teacher["model MiB"] if column == "table MiB" else teacher[column]
        ax.scatter([x], [teacher[metric]], marker="*", s=120, color="black", zorder=4,
                   label=f"teacher ({teacher['backbone']})")  # fmt: skip
        ax.axhline(teacher[metric], color="black", linestyle="--", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test {metric_label(metric)}")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig
