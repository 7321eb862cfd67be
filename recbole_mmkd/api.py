"""The Python API: what the command line does, as functions a notebook can call.

.. code-block:: python

    import recbole_mmkd as mm

    runs = mm.run("LightGCN", "tiktok", seeds=[2020, 2021], overrides={"epochs": 50})
    report = mm.run_benchmark("kd", datasets=["tiktok"])   # trains what is missing
    report = mm.report("results/kd", reference="LightGCN") # trains nothing
    print(report.to_markdown()); report.comparisons; report.save("results/kd")
    result = mm.sweep("kd-lightgcn-freedom", resume=True)
    mm.export_tables("KD-LightGCN", "tiktok", "student.npz")  # its tables, to serve elsewhere

Results go under ``results/<name>`` of the working directory unless ``out`` says otherwise.
Datasets and ``properties/`` folders of your own come by ``data_path`` / ``properties`` or
``$RECBOLE_MMKD_DATA`` / ``$RECBOLE_MMKD_PROPERTIES`` (:mod:`recbole_mmkd.config`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from recbole_mmkd import benchmark as _benchmark
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.reporting.leaderboard import label_runs
from recbole_mmkd.reporting.report import Report
from recbole_mmkd.result import RunResult, load_results
from recbole_mmkd.serving import export_tables
from recbole_mmkd.specs import DEFAULT_METRICS, Benchmark, Entry, Sweep, load_benchmark, load_sweep

__all__ = ["Report", "RunResult", "SweepResult", "export_tables", "load_results", "report", "run",
           "run_benchmark", "run_models", "sweep"]  # fmt: skip
DEFAULT_SEEDS = (2020, 2021, 2022)


def _out(out: str | Path | None, *parts: str) -> Path:
    return Path(out) if out is not None else Path.cwd().joinpath("results", *parts)


def run(
    model: str,
    dataset: str,
    *,
    seeds: Iterable[int] = DEFAULT_SEEDS,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    reuse: bool = True,
    data_path: str | Path | None = None,
    properties: Any = None,
) -> list[RunResult]:
    """Train ``model`` on ``dataset`` once per seed (validation-only selection, test read once)
    and store each RunResult under ``out`` (default ``results/adhoc``); with ``reuse``, a run
    already stored for the same settings and code is loaded instead."""
    return run_models([model], dataset, seeds=seeds, overrides=overrides, out=out, reuse=reuse,
                      data_path=data_path, properties=properties)[dataset]  # fmt: skip


def run_models(
    models: Sequence[str],
    dataset: str,
    *,
    seeds: Iterable[int] = DEFAULT_SEEDS,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    reuse: bool = True,
    data_path: str | Path | None = None,
    properties: Any = None,
    address: str | None = None,
) -> dict[str, list[RunResult]]:
    """:func:`run` for several models, as one ad hoc benchmark (every setting checked first);
    ``address``: its runs as tasks on that Ray cluster."""
    entries = [Entry(m, dict(overrides or {})) for m in models]
    bench = Benchmark("adhoc", [dataset], list(seeds), list(DEFAULT_METRICS), entries, [],
                      source="--set")  # fmt: skip
    return _benchmark.run_benchmark(bench, _out(out, "adhoc"), data_path=data_path,
                                    properties=properties, force=not reuse,
                                    address=address)  # fmt: skip


def _benchmark_spec(name_or_spec: str | Path | Benchmark, properties: Any) -> Benchmark:
    if isinstance(name_or_spec, Benchmark):
        return name_or_spec
    return load_benchmark(name_or_spec, properties=properties)


def run_benchmark(
    name_or_spec: str | Path | Benchmark,
    *,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    force: bool = False,
    data_path: str | Path | None = None,
    properties: Any = None,
    address: str | None = None,
) -> Report:
    """Run a benchmark (its name, its YAML path or a :class:`~recbole_mmkd.specs.Benchmark`):
    train every (dataset, model, seed) not stored under ``out`` (default
    ``results/<name>``), then report. ``address`` (``auto``, ``HOST:PORT``) runs the
    searches and each (dataset, model, seed) as Ray tasks on that cluster, teachers first.

    ``datasets`` / ``models`` (table names) / ``seeds`` run a part of it, so a benchmark can
    split across processes sharing ``out``. The report of the whole benchmark, or of some of
    its datasets with all their models and seeds, is saved to ``out``; a part's is returned
    but not saved, since the benchmark's tables describe all of it. ``overrides`` apply to
    every entry, and a run with them counts as a part (its report is not the benchmark's)."""
    whole = _benchmark_spec(name_or_spec, properties)
    if overrides:
        entries = [replace(e, overrides={**e.overrides, **overrides}) for e in whole.entries]
        whole = replace(whole, entries=entries)
    bench = _benchmark.restrict(whole, datasets=datasets, seeds=seeds, models=models)
    folder = _out(out, whole.name)
    runs = _benchmark.run_benchmark(
        bench, folder, data_path=data_path, properties=properties, force=force, address=address
    )
    result = Report(bench, runs, teachers_from=folder, data_path=data_path, properties=properties)
    if not overrides and not _benchmark.is_part(bench, whole):  # overrides make it another
        result.save(folder)
    return result


def tune_benchmark(
    name_or_spec: str | Path | Benchmark,
    *,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    out: str | Path | None = None,
    data_path: str | Path | None = None,
    properties: Any = None,
    address: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Search the space of every entry (or of ``models``) of a benchmark on validation, as
    :func:`run_benchmark` does first, and train no final seed: per dataset, each tuned entry's
    budget, chosen point and best validation value (``tuning-<dataset>.csv`` under ``out``).
    A later ``run_benchmark`` reuses the sweeps. ``address``: the trials on that Ray
    cluster."""
    whole = _benchmark_spec(name_or_spec, properties)
    bench = _benchmark.restrict(whole, datasets=datasets, models=models)
    folder = _out(out, whole.name)
    return _benchmark.tune_benchmark(
        bench, folder, data_path=data_path, properties=properties, address=address
    )


def plan_benchmark(
    name_or_spec: str | Path | Benchmark,
    *,
    datasets: list[str] | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    out: str | Path | None = None,
    data_path: str | Path | None = None,
    properties: Any = None,
) -> dict[str, pd.DataFrame]:
    """What :func:`run_benchmark` has left to do under ``out``, read from disk (nothing
    trains, no Ray): per dataset, each entry's search (done, or its trials so far and next
    launch, or the entries it waits on), chosen point, best validation value and seeds stored
    under the current code and settings."""
    whole = _benchmark_spec(name_or_spec, properties)
    bench = _benchmark.restrict(whole, datasets=datasets, seeds=seeds, models=models)
    folder = _out(out, whole.name)
    return _benchmark.plan_benchmark(bench, folder, data_path=data_path, properties=properties)


def report(
    folder: str | Path,
    *,
    reference: str | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    test: str = "t",
    correction: str = "holm",
    data_path: str | Path | None = None,
    properties: Any = None,
) -> Report:
    """The report of every RunResult under ``folder`` (trains nothing), comparing every model
    with ``reference``. A model found under several configurations is named by the config
    keys that differ (``GRCN (routing=paper)``), or by its config hash. ``data_path`` and
    ``properties`` are where the runs' datasets and YAML are found, to tell which runs the
    current code reproduces."""
    from recbole_mmkd.reporting.stats import CORRECTIONS, TESTS

    folder = Path(folder)
    results = label_runs(load_results(folder))
    if not results:
        raise ConfigError(
            "report", str(folder), "no RunResults (result.json) under it", "run models first"
        )
    for key, value, known in (("test", test, TESTS), ("correction", correction, CORRECTIONS)):
        if value not in known:
            raise ConfigError("report", key, f"unknown {value!r}", f"use one of {list(known)}")
    metrics = [m.lower() for m in metrics]
    for metric in metrics:
        lacking = [r for r in results if metric not in r.test]
        if lacking:
            first = lacking[0]
            raise ConfigError(
                "--metrics", metric, f"is not among the test metrics of {len(lacking)} runs "
                f"(e.g. {first.dataset} / {first.model} / seed {first.seed})",
                "name metrics the runs were evaluated with (topk and metrics of their config)",
            )  # fmt: skip
    names = sorted({r.model for r in results})
    if reference is not None and reference not in names:
        raise ConfigError("--reference", reference, f"is not among {names}", "name one of them")
    runs: dict[str, list[RunResult]] = {}
    for r in results:
        runs.setdefault(r.dataset, []).append(r)
    pairs = [(n, reference) for n in names if reference and n != reference]
    seeds = sorted({r.seed for r in results})
    bench = Benchmark(folder.name, list(runs), seeds, metrics, [], pairs,
                      test, correction, reference, str(folder))  # fmt: skip
    return Report(bench, runs, link_comparisons=False, data_path=data_path, properties=properties)


@dataclass
class SweepResult:
    """A sweep's trials, the configuration chosen on validation, and its final runs."""

    sweep: Sweep
    trials: pd.DataFrame
    best: dict[str, Any]  # the chosen trial's row
    runs: list[RunResult]  # the best configuration on final_seeds (empty without final)
    report: Report | None


def sweep(
    name_or_spec: str | Path | Sweep,
    *,
    resume: bool = False,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    address: str | None = None,
    final: bool = True,
    data_path: str | Path | None = None,
    properties: Any = None,
) -> SweepResult:
    """Run (or continue) a Ray Tune sweep, select on validation only and, with ``final``,
    re-run the chosen configuration on the sweep's ``final_seeds`` (test read once each).
    ``address`` joins an existing Ray cluster (``auto``, ``ray://host:10001``)."""
    from recbole_mmkd.tune import final_runs, run_sweep, select_best

    spec = (
        name_or_spec
        if isinstance(name_or_spec, Sweep)
        else load_sweep(name_or_spec, properties=properties)
    )
    if overrides:
        spec = replace(spec, overrides={**spec.overrides, **overrides})
    folder = _out(out, "sweeps", spec.name)
    common = {"data_path": data_path, "properties": properties}
    trials = run_sweep(spec, folder, resume=resume, address=address, **common)
    best = select_best(trials)
    if not final:
        return SweepResult(spec, trials, best.to_dict(), [], None)
    runs = final_runs(spec, best, folder, **common)
    bench = Benchmark(spec.name, [spec.dataset], spec.final_seeds, list(DEFAULT_METRICS),
                      [Entry(spec.model)], [], source=spec.source)  # fmt: skip
    result = Report(bench, {spec.dataset: runs}, teachers_from=folder / "runs", **common)
    result.save(folder)
    return SweepResult(spec, trials, best.to_dict(), runs, result)
