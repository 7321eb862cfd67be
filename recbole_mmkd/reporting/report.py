"""A benchmark's report: leaderboards, significance-tested comparisons, student / teacher
costs, LaTeX tables and figures, held as DataFrames and rendered on demand (in the manner of
ranx's ``compare(...) -> Report``).

.. code-block:: python

    report = Report(bench, runs)          # runs: {dataset: [RunResult, ...]}
    report.leaderboard                    # one DataFrame over every dataset
    report.comparisons                    # one row per (dataset, comparison, metric)
    print(report.to_markdown())
    report.save("results/mine")           # md, csv, tex and figures (PNG + PDF)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_mmkd.reporting.compression import compression_table, smallest_within, width_gains
from recbole_mmkd.reporting.leaderboard import leaderboard, to_markdown
from recbole_mmkd.reporting.stats import ALPHA, adjust, adjust_seed_p, compare
from recbole_mmkd.reporting.tables import caption, significant_vs, to_latex
from recbole_mmkd.result import RunResult, load_results
from recbole_mmkd.specs import Benchmark


def comparison_table(bench: Benchmark, results: list[RunResult]) -> pd.DataFrame:
    """One row per (comparison, metric), at both levels of :mod:`~.stats`: over users (the
    benchmark's paired ``test`` on seed-averaged per-user values, its bootstrap 95% CI of the
    relative change, Cohen's d) and over seeds (Welch's t on the runs' means, the two-level
    bootstrap CI, the smallest change the seeds could detect and the seeds the observed change
    would need). Each level's p-values are corrected (``correction``) across the comparisons
    of the same metric; ``established`` reads the seed level."""
    by_model: dict[str, list[RunResult]] = {}
    for r in results:
        by_model.setdefault(r.model, []).append(r)
    rows = []
    for metric in bench.metrics:
        found = [
            compare(by_model[model], by_model[reference], metric, test=bench.test)
            for model, reference in bench.comparisons
            if model in by_model and reference in by_model  # a folder report's other datasets
        ]
        by_users = adjust([c.p_value for c in found], correction=bench.correction)
        by_seeds = adjust_seed_p([c.seed_p_value for c in found], correction=bench.correction)
        for c, p_users, p_seeds in zip(found, by_users, by_seeds, strict=True):
            rows.append(
                {
                    "model": c.model,
                    "reference": c.reference,
                    "metric": metric,
                    "model mean": round(c.mean, 4),
                    "reference mean": round(c.reference_mean, 4),
                    "relative": f"{100 * c.relative:+.1f}%",
                    "95% CI (users)": _interval(c.relative_low, c.relative_high),
                    f"p ({c.test}, users)": f"{c.p_value:.2g}",
                    f"p ({bench.correction}, users)": f"{p_users:.2g}",
                    "95% CI (seeds x users)": _interval(c.seed_low, c.seed_high),
                    "p (welch, seeds)": _p(c.seed_p_value),
                    f"p ({bench.correction}, seeds)": _p(p_seeds),
                    "min detectable": _percent(c.min_detectable),
                    "seeds needed": _count(c.seeds_needed),
                    "established": _verdict(p_seeds, c.n_seeds),
                    "Cohen's d": round(c.cohens_d, 3),
                    "users": c.n_users,
                    "seeds": f"{c.n_seeds[0]}/{c.n_seeds[1]}",
                }
            )
    return pd.DataFrame(rows)


def summary_table(
    bench: Benchmark, results: list[RunResult], comparisons: pd.DataFrame
) -> pd.DataFrame:
    """What a benchmark found on one dataset, a row per entry (and per further comparison of
    it): the point its search chose and the validation value of that point (the run at the
    tuning seed is the chosen trial's training), its test means ± std over seeds, and, for
    each comparison it is the model of, the change against the reference with both levels'
    interval and corrected p, the smallest change its seeds detect, the seeds the change would
    need and the verdict, for the first metric. Teachers of students come first."""
    metric = bench.metrics[0]
    by_model: dict[str, list[RunResult]] = {}
    for run in results:
        by_model.setdefault(run.model, []).append(run)
    spaces = {e.name: e.space for e in bench.entries}
    found = comparisons[comparisons["metric"] == metric] if not comparisons.empty else comparisons
    rows = []
    order = [m for m in by_model if m not in spaces] + [e.name for e in bench.entries]
    for name in (m for m in order if m in by_model):
        runs = by_model[name]
        row = {"model": name, "chosen on validation": _chosen(runs, spaces.get(name), bench)}
        for m in bench.metrics[:2]:
            values = [r.test[m] for r in runs]
            spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
            row[f"test {m}"] = f"{np.mean(values):.4f} ± {spread:.4f}"
        mine = found[found["model"] == name] if not found.empty else found
        if mine.empty:
            rows.append(row)
        for i, c in enumerate(mine.to_dict("records")):
            rows.append({**(row if i == 0 else {"model": name}), **_findings(c, bench)})
    return pd.DataFrame(rows).fillna("")


def _chosen(runs: list[RunResult], space: dict | None, bench: Benchmark) -> str:
    """``key value, ... (valid V)`` of a tuned entry, from its run at the tuning seed."""
    if not space:
        return ""
    point = ", ".join(f"{k} {runs[0].config.get(k)}" for k in space)
    tuned = [r for r in runs if r.seed == bench.tuning.seed]
    if not tuned:
        return point
    valid = tuned[0].best_valid.get(tuned[0].valid_metric, float("nan"))
    return f"{point} ({valid:.5f})"


def _findings(c: dict, bench: Benchmark) -> dict[str, str]:
    users, seeds = f"p ({bench.correction}, users)", f"p ({bench.correction}, seeds)"
    return {
        "against": c["reference"],
        "change": c["relative"],
        "over users: 95% CI, p": f"{c['95% CI (users)']}, {c[users]}",
        "over seeds x users: 95% CI, p": f"{c['95% CI (seeds x users)']}, {c[seeds]}",
        "smallest change the seeds detect": c["min detectable"],
        "seeds it needs": c["seeds needed"],
        "established": c["established"],
    }


def _interval(low: float, high: float) -> str:
    return "n/a" if math.isnan(low) else f"[{100 * low:+.1f}%, {100 * high:+.1f}%]"


def _p(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2g}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _count(value: float) -> str:
    return "n/a" if math.isnan(value) else "inf" if math.isinf(value) else str(int(value))


def _verdict(p_seeds: float, n_seeds: tuple[int, int]) -> str:
    """Whether the change is established over re-training: the seed-level corrected p."""
    if math.isnan(p_seeds):
        return f"n/a ({min(n_seeds)} seed)"
    return "yes" if p_seeds < ALPHA else "no"


def teacher_runs(results: list[RunResult], out: Path) -> list[RunResult]:
    """The stored runs of the teachers that students among ``results`` distilled from (under
    ``out``, where the pipeline trained them), named ``<teacher> (teacher)``; teachers already
    among ``results`` are not repeated."""
    have = {r.config_hash for r in results}
    wanted = {
        (r.dataset, r.config["teacher"], _teacher_hash(r))
        for r in results
        if _teacher_hash(r) and _teacher_hash(r) not in have
    }
    return [
        replace(run, model=f"{teacher} (teacher)")
        for dataset, teacher, digest in sorted(wanted)
        for run in load_results(Path(out) / dataset / teacher / digest)
    ]


def teacher_links(results: list[RunResult]) -> list[tuple[str, str]]:
    """(teacher, student) names for every student among ``results`` whose teacher is too."""
    names = {r.config_hash: r.model for r in results}
    return sorted(
        {(names[_teacher_hash(r)], r.model) for r in results if _teacher_hash(r) in names}
    )


def _teacher_hash(run: RunResult) -> str | None:
    """The config hash of a student's teacher, as text: RecBole's config evaluates override
    strings, so a hash of digits alone is stored as a number."""
    digest = run.config.get("teacher_hash")
    return None if digest is None else str(digest)


def efficiency_table(
    results: list[RunResult], pairs: list[tuple[str, str]], metric: str
) -> pd.DataFrame:
    """One row per (teacher or reference, student) pair: the student (``model``) and what it
    is set ``against``, each side's trainable parameters, full-sort inference seconds per
    1,000 test users and test ``metric`` (means over seeds), and model / against ratios."""
    table = leaderboard(results, metrics=[metric]).set_index("model")
    columns = {"params": "params", "eval_s_per_1k_users": "s / 1k users", metric: metric}
    rows = []
    for teacher, student in pairs:
        row = {"model": student, "against": teacher}
        for key, name in columns.items():
            a, b = table.loc[student, key], table.loc[teacher, key]
            row |= {name: a, f"{name} (against)": b, f"{name} ratio": a / b}
        rows.append(row)
    return pd.DataFrame(rows).round(4)


def combined_table(runs: dict[str, list[RunResult]], metrics: list[str]) -> pd.DataFrame:
    """One row per model, one ``mean ± std`` column per (dataset, metric)."""
    columns = {}
    for dataset, results in runs.items():
        table = leaderboard(results, metrics=metrics).set_index("model")
        for m in metrics:
            std = table[f"{m} std"].fillna(0.0)
            columns[f"{dataset} {m}"] = {
                model: f"{table.loc[model, m]:.4f} ± {std[model]:.4f}" for model in table.index
            }
    return pd.DataFrame(columns).rename_axis("model").reset_index().fillna("")


def stale_runs(results: list[RunResult], **common: Any) -> list[RunResult]:
    """The runs whose config hash the current code does not give their settings
    (:func:`recbole_mmkd.carry.is_current`): made by other code, data or settings."""
    from recbole_mmkd.carry import is_current

    return [r for r in results if not is_current(r, **common)]


@dataclass
class DatasetReport:
    """One dataset's part of a report."""

    dataset: str
    results: list[RunResult]  # the benchmark's runs and the teachers its students used
    leaderboard: pd.DataFrame
    comparisons: pd.DataFrame
    efficiency: pd.DataFrame
    links: list[tuple[str, str]]  # (from, to) arrows of the efficiency figure
    latex: str
    stale: list[RunResult] = field(default_factory=list)  # not what the current code computes
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)  # summary_table
    # a compression benchmark's tables (reporting.compression); empty otherwise
    compression: pd.DataFrame = field(default_factory=pd.DataFrame)
    smallest: pd.DataFrame = field(default_factory=pd.DataFrame)
    width_gains: pd.DataFrame = field(default_factory=pd.DataFrame)

    def compression_markdown(self, metric: str, tolerance: float) -> str:
        """The compression tables as one Markdown text."""
        parts = [
            "Every entry against the teacher (costs measured by its runs; tables: what a "
            "student serves from once propagated, model: parameters and buffers):\n\n"
            + self.compression.to_markdown(index=False),
            f"The narrowest student of each method within {100 * tolerance:g}% of the "
            f"teacher's {metric}:\n\n" + self.smallest.to_markdown(index=False),
        ]
        if not self.width_gains.empty:
            parts.append(
                "Each method against the student alone at the same width (established: over "
                "seeds, corrected):\n\n" + self.width_gains.to_markdown(index=False)
            )
        return "\n\n".join(parts)

    def board_markdown(self, metrics: list[str]) -> str:
        """The leaderboard as Markdown, with a warning naming the runs that the current code
        would not reproduce (other code, data or settings)."""
        text = to_markdown(self.leaderboard, metrics=metrics)
        if self.stale:
            counts = Counter(r.model for r in self.stale)
            named = ", ".join(f"{m} ({n})" for m, n in sorted(counts.items()))
            text += (
                f"\n\n**Not the current code**: {len(self.stale)} of {len(self.results)} runs "
                f"were made by other code, data or settings than the current code gives them "
                f"({named}); `recbole-mmkd carry` moves them where a replay shows the same "
                "numbers, `run` trains them again."
            )
        return text


class Report:
    """The report of a benchmark's runs, per dataset. ``teachers_from`` is the results folder
    where the pipeline stored the teachers that students among the runs distilled from: they
    join the leaderboard and figures as ``<teacher> (teacher)`` (not the comparisons). With
    ``link_comparisons`` the efficiency figure also draws each comparison's arrow."""

    def __init__(
        self,
        bench: Benchmark,
        runs: dict[str, list[RunResult]],
        *,
        teachers_from: Path | None = None,
        link_comparisons: bool = True,
        data_path: Any = None,
        properties: Any = None,
    ) -> None:
        self.bench = bench
        self.datasets: dict[str, DatasetReport] = {}
        common = {"data_path": data_path, "properties": properties}
        for dataset, results in runs.items():
            if teachers_from is not None:
                results = results + teacher_runs(results, teachers_from)
            self.datasets[dataset] = self._dataset(dataset, results, link_comparisons, common)

    def _dataset(
        self,
        dataset: str,
        results: list[RunResult],
        link_comparisons: bool,
        common: dict[str, Any],
    ) -> DatasetReport:
        bench = self.bench.on(dataset)
        table = leaderboard(results, metrics=bench.metrics)
        p_adj = (
            significant_vs(results, bench.reference, bench.metrics, correction=bench.correction)
            if any(r.model == bench.reference for r in results)  # a folder's other datasets
            else {}
        )
        title = caption(dataset, len(bench.seeds), bench.reference, bench.correction)
        latex = to_latex(
            table,
            bench.metrics,
            p_adj=p_adj,
            caption_text=title,
            label=f"tab:{bench.name}-{dataset}",
        )
        comparisons = comparison_table(bench, results) if bench.comparisons else pd.DataFrame()
        links = teacher_links(results)
        if link_comparisons:
            present = {r.model for r in results}  # a part of a benchmark may lack some
            links += [(r, m) for m, r in bench.comparisons if {m, r} <= present]
        efficiency = efficiency_table(results, links, bench.metrics[0]) if links else None
        report = DatasetReport(
            dataset,
            results,
            table,
            comparisons,
            efficiency if efficiency is not None else pd.DataFrame(),
            links,
            latex,
            stale_runs(results, **common),
        )
        report.summary = summary_table(bench, results, comparisons)
        spec, metric = bench.compression, bench.metrics[0]
        if spec is not None and any(r.model == spec.teacher for r in results):
            report.compression = compression_table(results, spec.teacher, metric)
            report.smallest = smallest_within(report.compression, metric, tolerance=spec.tolerance)
            report.width_gains = width_gains(report.compression, comparisons, metric)
        return report

    @property
    def leaderboard(self) -> pd.DataFrame:
        """Every dataset's leaderboard, one row per (dataset, model, config)."""
        return pd.concat([d.leaderboard for d in self.datasets.values()], ignore_index=True)

    @property
    def comparisons(self) -> pd.DataFrame:
        """Every dataset's comparisons, with a ``dataset`` column."""
        parts = [
            d.comparisons.assign(dataset=d.dataset)
            for d in self.datasets.values()
            if not d.comparisons.empty
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    def combined(self) -> pd.DataFrame:
        """One row per model, a ``mean ± std`` column per (dataset, metric)."""
        return combined_table(
            {name: d.results for name, d in self.datasets.items()}, self.bench.metrics
        )

    def to_latex(self, dataset: str | None = None) -> str:
        """The booktabs table of ``dataset`` (default: every dataset's, one after another)."""
        names = [dataset] if dataset else list(self.datasets)
        return "\n\n".join(self.datasets[n].latex for n in names)

    def to_markdown(self) -> str:
        bench, parts = self.bench, []
        for d in self.datasets.values():
            parts.append(f"## {d.dataset}\n\n{d.board_markdown(bench.metrics)}")
            if not d.comparisons.empty:
                parts.append(
                    f"Over users: paired {bench.test} test on seed-averaged per-user test "
                    f"metrics. Over seeds: Welch t test on the runs' test means, with a "
                    f"two-level (seeds x users) bootstrap interval; `established` reads this "
                    f"level. Each {bench.correction}-corrected per metric:\n\n"
                    + d.comparisons.to_markdown(index=False)
                )
            if not d.efficiency.empty:
                parts.append(
                    "Student / teacher costs (inference time per 1,000 users):\n\n"
                    + d.efficiency.to_markdown(index=False)
                )
            if not d.compression.empty:
                parts.append(d.compression_markdown(bench.metrics[0], bench.compression.tolerance))
        if len(self.datasets) > 1:
            parts.append(f"## all datasets\n\n{self.combined().to_markdown(index=False)}")
        return "\n\n".join(parts)

    def figures(self, folder: Path) -> list[Path]:
        """Write every figure (PNG + PDF) under ``folder``; the paths written."""
        from recbole_mmkd.reporting import compression, figures

        folder, written = Path(folder), []
        for d in self.datasets.values():
            for metric in self.bench.metrics:
                slug = metric.replace("@", "")
                bars = figures.leaderboard_bars(d.results, metric)
                written += figures.save(bars, folder / f"bars-{d.dataset}-{slug}")
            curves = figures.training_curves(d.results)
            written += figures.save(curves, folder / f"curves-{d.dataset}")
            frontier = figures.efficiency_frontier(d.results, self.bench.metrics[0], pairs=d.links)
            written += figures.save(frontier, folder / f"efficiency-{d.dataset}")
            if not d.compression.empty:
                frontier = compression.compression_frontier(d.compression, self.bench.metrics[0])
                written += figures.save(frontier, folder / f"compression-{d.dataset}")
            if any(r.robustness for r in d.results):
                robust = figures.robustness_curves(d.results, self.bench.metrics[0])
                written += figures.save(robust, folder / f"robustness-{d.dataset}")
        return written

    def save(self, folder: Path) -> Path:
        """Write each dataset's ``leaderboard-``, ``comparisons-``, ``efficiency-<dataset>``
        (md, csv), ``table-<dataset>.tex``, ``leaderboard-all`` across datasets, and
        ``figures/``; return ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        metrics = self.bench.metrics
        for d in self.datasets.values():
            _write(out, f"leaderboard-{d.dataset}", d.leaderboard, d.board_markdown(metrics))
            (out / f"table-{d.dataset}.tex").write_text(d.latex + "\n")
            if not d.comparisons.empty:
                _write(out, f"comparisons-{d.dataset}", d.comparisons)
            if not d.efficiency.empty:
                _write(out, f"efficiency-{d.dataset}", d.efficiency)
            _write(out, f"summary-{d.dataset}", d.summary)
            if not d.compression.empty:
                text = d.compression_markdown(metrics[0], self.bench.compression.tolerance)
                _write(out, f"compression-{d.dataset}", d.compression, text)
        if len(self.datasets) > 1:
            _write(out, "leaderboard-all", self.combined())
        self.figures(out / "figures")
        return out


def _write(out: Path, stem: str, table: pd.DataFrame, markdown: str | None = None) -> None:
    table.to_csv(out / f"{stem}.csv", index=False)
    text = markdown if markdown is not None else table.to_markdown(index=False)
    (out / f"{stem}.md").write_text(text + "\n")
