"""Comparison figures (matplotlib's object API: no pyplot state, no window), each written as
PNG and PDF by :func:`save`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from scipy import stats

from recbole_mmkd.reporting.stats import per_user_means
from recbole_mmkd.reporting.tables import metric_label
from recbole_mmkd.result import RunResult


def _by_model(runs: Iterable[RunResult]) -> dict[str, list[RunResult]]:
    out: dict[str, list[RunResult]] = {}
    for r in runs:
        out.setdefault(r.model, []).append(r)
    return out


def _styles(models: Iterable[str]) -> dict[str, dict[str, str]]:
    """A colour (tab10) and, past ten models, a line style and a marker per model, in sorted
    order so that a model looks the same in every figure of a report."""
    dashes, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D"]
    return {
        m: {
            "color": f"C{i % 10}",
            "linestyle": dashes[(i // 10) % 4],
            "marker": markers[(i // 10) % 4],
        }
        for i, m in enumerate(sorted(set(models)))
    }


def mean_ci(
    values: np.ndarray, *, seed: int = 0, n_resamples: int = 2000
) -> tuple[float, float, float]:
    """Mean and its 95% bootstrap percentile interval (scipy)."""
    result = stats.bootstrap(
        (values,), np.mean, n_resamples=n_resamples, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return (
        float(values.mean()),
        float(result.confidence_interval.low),
        float(result.confidence_interval.high),
    )


def leaderboard_bars(runs: Iterable[RunResult], metric: str, *, title: str = "") -> Figure:
    """One bar per model: test ``metric`` (seed-averaged per-user values), 95% bootstrap CI
    over users; sorted best first."""
    rows = []
    for model, group in _by_model(runs).items():
        _, values = per_user_means(group, metric)
        rows.append((model, *mean_ci(values)))
    rows.sort(key=lambda r: r[1])  # horizontal bars: the best ends up on top
    fig = Figure(figsize=(5.5, 0.9 + 0.32 * len(rows)))
    ax = fig.subplots()
    means = [r[1] for r in rows]
    errors = [[r[1] - r[2] for r in rows], [r[3] - r[1] for r in rows]]
    ax.barh(range(len(rows)), means, xerr=errors, capsize=2, color="#4C72B0", height=0.7)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    for i, row in enumerate(rows):  # the mean, right of its interval
        ax.text(row[3], i, f"  {row[1]:.4f}", va="center", ha="left", fontsize=7)
    ax.set_xlabel(f"test {metric_label(metric)}")
    ax.set_title(title or f"test {metric_label(metric)}, 95% CI over users", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def training_curves(runs: Iterable[RunResult], *, metric: str | None = None) -> Figure:
    """Validation metric per epoch, one line per model: the mean over its seeds, drawn up to
    the last epoch every seed reached (so the line never jumps where a seed stopped early)."""
    fig = Figure(figsize=(7.5, 3.4))
    ax = fig.subplots()
    key = metric
    groups = _by_model(runs)
    styles = _styles(groups)
    for model, group in sorted(groups.items()):
        key = metric or group[0].valid_metric
        curves = [pd.Series({p["epoch"]: p[key] for p in r.valid_curve}) for r in group]
        mean = pd.concat(curves, axis=1).dropna().mean(axis=1).sort_index()
        color, dash = styles[model]["color"], styles[model]["linestyle"]
        ax.plot(mean.index, mean.values, label=model, linewidth=1.2, color=color, linestyle=dash)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric_label(key)}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def efficiency_frontier(
    runs: Iterable[RunResult], metric: str, *, pairs: Iterable[tuple[str, str]] = ()
) -> Figure:
    """Test ``metric`` against inference time per 1,000 users and against parameter count
    (log scale where the values span more than 10x), one point per model (named in the
    legend); each (teacher, student) pair joined by an arrow from the first to the second."""
    groups = _by_model(runs)
    points = {
        m: (
            np.mean([r.test_seconds_per_1k_users for r in g]),
            g[0].n_params,
            np.mean([r.test[metric] for r in g]),
        )
        for m, g in groups.items()
    }
    styles = _styles(points)
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, index, label in (
        (axes[0], 0, "full-sort inference s / 1,000 users"),
        (axes[1], 1, "trainable parameters"),
    ):
        for model, p in sorted(points.items()):
            style = styles[model]
            ax.scatter(p[index], p[2], s=26, color=style["color"], marker=style["marker"],
                       label=model, zorder=3)  # fmt: skip
        for teacher, student in pairs:
            if teacher in points and student in points:
                a, b = points[teacher], points[student]
                ax.annotate("", (b[index], b[2]), (a[index], a[2]),
                            arrowprops={"arrowstyle": "->", "color": "grey"})  # fmt: skip
        values = [p[index] for p in points.values()]
        if max(values) > 10 * min(values) > 0:  # log only where the spread calls for it
            ax.set_xscale("log")
        if index == 1:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1e6:g}M"))
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test {metric_label(metric)}")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def robustness_curves(runs: Iterable[RunResult], metric: str) -> Figure:
    """Test ``metric`` against the share of items missing a modality, one panel per
    modality, one line per model (mean over seeds); models without robustness rows skipped."""
    runs = list(runs)
    frame = pd.DataFrame(
        [{"model": r.model, "seed": r.seed, **row} for r in runs for row in r.robustness]
    )
    if frame.empty:
        raise ValueError("no RunResult has robustness rows (multimodal models only)")
    modalities = sorted(frame["modality"].unique())
    styles = _styles(r.model for r in runs)  # the colours of the report's other figures
    fig = Figure(figsize=(4.2 * len(modalities) + 1.5, 3.3))
    axes = fig.subplots(1, len(modalities), sharey=True, squeeze=False)
    for ax, modality in zip(axes[0], modalities, strict=True):
        part = frame[frame["modality"] == modality]
        for model, rows in part.groupby("model"):
            curve = rows.groupby("share")[metric].mean()
            ax.plot(100 * curve.index, curve.values, markersize=3, label=model, **styles[model])
        ax.set_title(f"items missing {modality}")
        ax.set_xlabel(f"% of items without {modality}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test {metric_label(metric)}")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _tick(value: object) -> str:
    """A swept value as a label: numbers compactly (0.01, 1e+03), anything else as text."""
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


def sweep_heatmaps(
    table: pd.DataFrame,
    *,
    x: str = "kd_weight",
    y: str = "ce_weight",
    facet: str | None = "t_decay",
    value: str = "best_valid",
    label: str = "best validation value",
) -> Figure:
    """Grid sweeps: validation ``value`` over ``x`` by ``y``, one panel per ``facet`` value
    (mean over repeated cells), one colour scale; the best cell of all is outlined in red.
    Keys may be numeric or categorical (``kd_method``)."""
    from matplotlib.patches import Rectangle

    facets = sorted(table[facet].unique()) if facet and facet in table else [None]
    lo, hi = table[value].min(), table[value].max()
    best = table.loc[table[value].idxmax()]
    fig = Figure(figsize=(3.0 * len(facets) + 1.2, 3.0))
    axes = fig.subplots(1, len(facets), squeeze=False, sharey=True)
    image = None
    for ax, level in zip(axes[0], facets, strict=True):
        part = table if level is None else table[table[facet] == level]
        grid = part.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
        image = ax.imshow(grid.values, origin="lower", vmin=lo, vmax=hi, cmap="viridis")
        ax.set_xticks(range(len(grid.columns)), [_tick(v) for v in grid.columns])
        ax.set_yticks(range(len(grid.index)), [_tick(v) for v in grid.index])
        for (i, j), v in np.ndenumerate(grid.values):
            if np.isfinite(v):  # dark text on the bright end of viridis
                shade = "black" if image.norm(v) > 0.6 else "white"
                ax.text(j, i, f"{v:.4f}", ha="center", va="center", fontsize=6, color=shade)
        if level is None or level == best[facet]:
            i, j = grid.index.get_loc(best[y]), grid.columns.get_loc(best[x])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
        ax.set_xlabel(x)
        ax.set_title(f"{facet} = {_tick(level)}" if level is not None else "", fontsize=9)
    axes[0][0].set_ylabel(y)
    fig.colorbar(image, ax=axes[0].tolist(), label=label)
    return fig


def sweep_scatter(
    table: pd.DataFrame, x: str, y: str, *, value: str = "best_valid",
    label: str = "best validation value", log: bool = True,
) -> Figure:  # fmt: skip
    """Random or model-based sweeps: one point per trial at its (``x``, ``y``), coloured by
    validation ``value``, the best trial starred; log axes by default (the KD weights are
    searched on log scales)."""
    fig = Figure(figsize=(4.6, 3.4))
    ax = fig.subplots()
    points = ax.scatter(table[x], table[y], c=table[value], cmap="viridis", s=28)
    best = table.loc[table[value].idxmax()]
    ax.scatter([best[x]], [best[y]], marker="*", s=160, facecolor="none", edgecolor="red")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    fig.colorbar(points, ax=ax, label=label)
    fig.tight_layout()
    return fig


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem``.png (150 dpi) and ``stem``.pdf. The PDF carries no creation date, so
    re-writing a report from the same runs leaves committed figures byte-identical."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, dpi=150, bbox_inches="tight", metadata={"CreationDate": None})
    return [png, pdf]
