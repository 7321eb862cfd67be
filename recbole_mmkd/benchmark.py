"""Benchmarks as data: ``properties/benchmark/<name>.yaml`` names datasets, models, seeds,
metrics and the (model, reference) pairs to test; running one trains what is missing and
reports.

.. code-block:: yaml

    datasets: [tiktok]
    seeds: [2020, 2021, 2022]
    metrics: [recall@20, ndcg@20]
    models:
      - LightGCN
      - {model: KD-LightGCN, set: {teacher: FREEDOM}}   # per-model config overrides
      - {model: GRCN, set: {routing: paper}, label: GRCN-paper}  # a model twice needs labels
    comparisons:                                         # [label, reference] pairs, or all
      - [KD-LightGCN, LightGCN]
    reference: LightGCN       # the LaTeX table marks significant differences from it
    test: t                   # paired test over per-user metrics: t | randomisation | wilcoxon
    correction: holm          # across each metric's comparisons: holm | bh | none
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recbole_mmkd.config import PROPERTIES
from recbole_mmkd.data.files import DataError
from recbole_mmkd.report.stats import CORRECTIONS, TESTS
from recbole_mmkd.result import RunResult, find_results

logger = logging.getLogger(__name__)
BENCHMARKS = PROPERTIES / "benchmark"


@dataclass(frozen=True)
class Entry:
    model: str
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # the name in tables, figures and comparisons; the model's by default

    @property
    def name(self) -> str:
        return self.label or self.model


@dataclass(frozen=True)
class Benchmark:
    name: str
    datasets: list[str]
    seeds: list[int]
    metrics: list[str]
    entries: list[Entry]
    comparisons: list[tuple[str, str]]
    test: str = "t"  # paired test: t | randomisation | wilcoxon
    correction: str = "holm"  # across a metric's comparisons: holm | bh | none
    reference: str | None = None  # the model the LaTeX table marks significance against


def load_benchmark(name: str, folder: Path = BENCHMARKS) -> Benchmark:
    """Read and validate ``<folder>/<name>.yaml``; errors name the file, the field and the fix."""
    path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise DataError(
            path, "benchmark", "no such file", f"name one of: {', '.join(known) or 'none'}"
        )
    spec = yaml.safe_load(path.read_text()) or {}

    def need(key: str, kind: type) -> Any:
        value = spec.get(key)
        if not isinstance(value, kind) or not value:
            raise DataError(path, key, "missing or empty", f"give a non-empty {kind.__name__}")
        return value

    entries = []
    for item in need("models", list):
        if isinstance(item, str):
            entries.append(Entry(item))
        elif isinstance(item, dict) and isinstance(item.get("model"), str):
            entries.append(Entry(item["model"], dict(item.get("set") or {}), item.get("label", "")))
        else:
            raise DataError(
                path,
                "models",
                f"bad entry {item!r}",
                "use NAME or {model: NAME, set: {...}, label: NAME}",
            )
    names = [e.name for e in entries]
    comparisons = []
    pairs = spec.get("comparisons") or []
    if pairs == "all":  # every model against every model listed before it
        pairs = [[b, a] for i, a in enumerate(names) for b in names[i + 1 :]]
    for pair in pairs:
        if not (isinstance(pair, list) and len(pair) == 2 and set(pair) <= set(names)):
            raise DataError(
                path,
                "comparisons",
                f"bad entry {pair!r}",
                "use [NAME, REFERENCE] pairs of listed models (their labels where given)",
            )
        comparisons.append((pair[0], pair[1]))
    if len(set(names)) != len(names):
        raise DataError(
            path,
            "models",
            "a name is listed twice",
            "give entries of the same model distinct `label`s (or list each model once)",
        )
    metrics = [m.lower() for m in spec.get("metrics") or ["recall@20", "ndcg@20"]]
    test, correction = spec.get("test", "t"), spec.get("correction", "holm")
    if test not in TESTS:
        raise DataError(path, "test", f"unknown {test!r}", f"use one of {TESTS}")
    if correction not in CORRECTIONS:
        raise DataError(
            path, "correction", f"unknown {correction!r}", f"use one of {tuple(CORRECTIONS)}"
        )
    reference = spec.get("reference")
    if reference is not None and reference not in names:
        raise DataError(path, "reference", f"{reference!r} is not a listed model", "name one")
    return Benchmark(
        name, need("datasets", list), need("seeds", list), metrics, entries, comparisons,
        test, correction, reference,
    )  # fmt: skip


def run_benchmark(
    bench: Benchmark, out: Path, data_path: Path | None = None, force: bool = False
) -> dict[str, list[RunResult]]:
    """Run every (dataset, model, seed) that is not on disk yet; return the runs per dataset."""
    from recbole_mmkd.pipeline import run_one

    runs: dict[str, list[RunResult]] = {}
    for dataset in bench.datasets:
        for entry in bench.entries:
            for seed in bench.seeds:
                logger.info("== %s / %s / seed %d", dataset, entry.name, seed)
                result = run_one(
                    entry.model, dataset, seed, out, entry.overrides, data_path, not force
                )
                runs.setdefault(dataset, []).append(replace(result, model=entry.name))
    return runs


def comparison_table(bench: Benchmark, results: list[RunResult]) -> pd.DataFrame:
    """One row per (comparison, metric): means, relative change with its bootstrap 95% CI,
    Cohen's d, the paired test's p-value and the p-value corrected across the comparisons of
    the same metric (``test``, ``correction`` of the benchmark)."""
    from recbole_mmkd.report.stats import adjust, compare

    by_model: dict[str, list[RunResult]] = {}
    for r in results:
        by_model.setdefault(r.model, []).append(r)
    rows = []
    for metric in bench.metrics:
        found = [
            compare(by_model[model], by_model[reference], metric, bench.test)
            for model, reference in bench.comparisons
            if model in by_model and reference in by_model  # a folder report's other datasets
        ]
        corrected = adjust([c.p_value for c in found], bench.correction)
        for c, p_adj in zip(found, corrected, strict=True):
            rows.append(
                {
                    "model": c.model,
                    "reference": c.reference,
                    "metric": metric,
                    "model mean": round(c.mean, 4),
                    "reference mean": round(c.reference_mean, 4),
                    "relative": f"{100 * c.relative:+.1f}%",
                    "95% CI": f"[{100 * c.relative_low:+.1f}%, {100 * c.relative_high:+.1f}%]",
                    "Cohen's d": round(c.cohens_d, 3),
                    f"p ({c.test})": f"{c.p_value:.2g}",
                    f"p ({bench.correction})": f"{p_adj:.2g}",
                    "users": c.n_users,
                    "seeds": f"{len(by_model[c.model])}/{len(by_model[c.reference])}",
                }
            )
    return pd.DataFrame(rows)


def teacher_runs(results: list[RunResult], out: Path) -> list[RunResult]:
    """The stored runs of the teachers that students among ``results`` distilled from (under
    ``out``, where the pipeline trained them), named ``<teacher> (teacher)``; teachers already
    among ``results`` are not repeated."""
    have = {r.config_hash for r in results}
    wanted = {
        (r.dataset, r.config["teacher"], r.config["teacher_hash"])
        for r in results
        if r.config.get("teacher_hash") and r.config["teacher_hash"] not in have
    }
    return [
        replace(RunResult.load(path), model=f"{teacher} (teacher)")
        for dataset, teacher, digest in sorted(wanted)
        for path in find_results(Path(out) / dataset / teacher / digest)
    ]


def teacher_links(results: list[RunResult]) -> list[tuple[str, str]]:
    """(teacher, student) names for every student among ``results`` whose teacher is too."""
    names = {r.config_hash: r.model for r in results}
    return sorted(
        {
            (names[r.config["teacher_hash"]], r.model)
            for r in results
            if r.config.get("teacher_hash") in names
        }
    )


def efficiency_table(
    results: list[RunResult], pairs: list[tuple[str, str]], metric: str
) -> pd.DataFrame:
    """One row per (teacher or reference, student) pair: the student (``model``) and what it
    is set ``against``, each side's trainable parameters, full-sort inference seconds per
    1,000 test users and test ``metric`` (means over seeds), and model / against ratios."""
    from recbole_mmkd.report.leaderboard import leaderboard

    table = leaderboard(results, [metric]).set_index("model")
    columns = {"params": "params", "eval_s_per_1k_users": "s / 1k users", metric: metric}
    rows = []
    for teacher, student in pairs:
        row = {"model": student, "against": teacher}
        for key, name in columns.items():
            a, b = table.loc[student, key], table.loc[teacher, key]
            row |= {name: a, f"{name} (against)": b, f"{name} ratio": a / b}
        rows.append(row)
    return pd.DataFrame(rows).round(4)


def report(
    bench: Benchmark, runs: dict[str, list[RunResult]], out: Path, link_comparisons: bool = True
) -> str:
    """Write each dataset's leaderboard (md, csv), comparisons (md, csv), student / teacher
    costs (``efficiency-<dataset>.{md,csv}``), LaTeX table and figures (PNG + PDF under
    ``figures/``); return the Markdown text. The teachers that
    students distilled from join the leaderboard and the figures (not the comparisons);
    the efficiency figure draws an arrow from each teacher to its students and, with
    ``link_comparisons``, from each comparison's reference to its model."""
    from recbole_mmkd.report import figures
    from recbole_mmkd.report.leaderboard import leaderboard, to_markdown
    from recbole_mmkd.report.tables import caption, significant_vs, to_latex

    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for dataset, results in runs.items():
        results = results + teacher_runs(results, out)
        table = leaderboard(results, bench.metrics)
        text = to_markdown(table, bench.metrics)
        (out / f"leaderboard-{dataset}.md").write_text(text + "\n")
        table.to_csv(out / f"leaderboard-{dataset}.csv", index=False)
        parts.append(f"## {dataset}\n\n{text}")
        p_adj = (
            significant_vs(results, bench.reference, bench.metrics, bench.test, bench.correction)
            if any(r.model == bench.reference for r in results)  # a folder's other datasets
            else {}
        )
        title = caption(dataset, len(bench.seeds), bench.reference, bench.test, bench.correction)
        latex = to_latex(table, bench.metrics, p_adj, title, f"tab:{bench.name}-{dataset}")
        (out / f"table-{dataset}.tex").write_text(latex + "\n")
        if bench.comparisons:
            comparisons = comparison_table(bench, results)
            md = comparisons.to_markdown(index=False)
            (out / f"comparisons-{dataset}.md").write_text(md + "\n")
            comparisons.to_csv(out / f"comparisons-{dataset}.csv", index=False)
            parts.append(
                f"Paired {bench.test} test over seed-averaged per-user test metrics, "
                f"{bench.correction}-corrected per metric:\n\n{md}"
            )
        folder = out / "figures"
        for metric in bench.metrics:
            slug = metric.replace("@", "")
            figures.save(
                figures.leaderboard_bars(results, metric), folder / f"bars-{dataset}-{slug}"
            )
        figures.save(figures.training_curves(results), folder / f"curves-{dataset}")
        pairs = teacher_links(results)
        if link_comparisons:
            pairs += [(ref, model) for model, ref in bench.comparisons]
        frontier = figures.efficiency_frontier(results, bench.metrics[0], pairs)
        figures.save(frontier, folder / f"efficiency-{dataset}")
        if pairs:
            costs = efficiency_table(results, pairs, bench.metrics[0])
            costs.to_csv(out / f"efficiency-{dataset}.csv", index=False)
            md = costs.to_markdown(index=False)
            (out / f"efficiency-{dataset}.md").write_text(md + "\n")
            parts.append(f"Student / teacher costs (inference time per 1,000 users):\n\n{md}")
        if any(r.robustness for r in results):
            robust = figures.robustness_curves(results, bench.metrics[0])
            figures.save(robust, folder / f"robustness-{dataset}")
    if len(runs) > 1:
        combined = combined_table(runs, bench.metrics)
        combined.to_csv(out / "leaderboard-all.csv", index=False)
        text = combined.to_markdown(index=False)
        (out / "leaderboard-all.md").write_text(text + "\n")
        parts.append(f"## all datasets\n\n{text}")
    return "\n\n".join(parts)


def combined_table(runs: dict[str, list[RunResult]], metrics: list[str]) -> pd.DataFrame:
    """One row per model, one ``mean ± std`` column per (dataset, metric)."""
    from recbole_mmkd.report.leaderboard import leaderboard

    columns = {}
    for dataset, results in runs.items():
        table = leaderboard(results, metrics).set_index("model")
        for m in metrics:
            std = table[f"{m} std"].fillna(0.0)
            columns[f"{dataset} {m}"] = {
                model: f"{table.loc[model, m]:.4f} ± {std[model]:.4f}" for model in table.index
            }
    return pd.DataFrame(columns).rename_axis("model").reset_index().fillna("")
