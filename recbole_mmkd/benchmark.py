"""Running a benchmark (:mod:`recbole_mmkd.specs` reads it): every (dataset, model, seed) that
is not on disk yet is trained, after every entry's settings have been checked."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.identity import config_hash
from recbole_mmkd.model import get_model
from recbole_mmkd.pipeline import run_config, run_one, stored_run
from recbole_mmkd.progress import BenchmarkProgress
from recbole_mmkd.result import RunResult, run_dir_for
from recbole_mmkd.specs import Benchmark, Entry, check_benchmark

logger = logging.getLogger(__name__)


def restrict(
    bench: Benchmark,
    *,
    datasets: list[str] | None = None,
    seeds: list[int] | None = None,
    models: list[str] | None = None,
) -> Benchmark:
    """The part of a benchmark that ``datasets`` / ``seeds`` / ``models`` name (models by
    their table names), so that one benchmark can be split across processes or machines sharing
    its results folder (a later run of the whole benchmark reuses every finished run and reports
    them together)."""
    for key, given, known in (
        ("datasets", datasets, bench.datasets),
        ("seeds", seeds, bench.seeds),
        ("models", models, [e.name for e in bench.entries]),
    ):
        if given is not None and not set(given) <= set(known):
            raise ConfigError(
                f"--{key.removesuffix('s') if key == 'datasets' else key}",
                str(sorted(set(given) - set(known))),
                f"benchmark {bench.name} runs {known}",
                f"name some of {known}",
            )
    return replace(
        bench,
        entries=[e for e in bench.entries if models is None or e.name in models],
        datasets=[d for d in bench.datasets if datasets is None or d in datasets],
        seeds=[s for s in bench.seeds if seeds is None or s in seeds],
    )


def is_part(part: Benchmark, whole: Benchmark) -> bool:
    """Whether ``part`` leaves out some of ``whole``'s models or seeds (a part's tables would
    describe less than the benchmark; a run of whole datasets writes those datasets')."""
    return (part.entries, part.seeds) != (whole.entries, whole.seeds)


def is_stored(
    dataset: str, entry: Entry, seed: int, out: Path, *, data_path: Any, properties: Any
) -> bool:
    """Whether a run is on disk already, asked without training anything (a student is not
    asked: finding its config hash may train its teacher)."""
    if getattr(get_model(entry.model), "needs_teacher", False):
        return False
    common = {"data_path": data_path, "properties": properties}
    config = run_config(entry.model, dataset, seed, out, entry.overrides, **common)
    run_dir = run_dir_for(out, dataset, entry.model, config_hash(config), seed)
    return stored_run(run_dir) is not None


def run_benchmark(
    bench: Benchmark,
    out: Path,
    *,
    data_path: Path | None = None,
    properties: Any = None,
    force: bool = False,
) -> dict[str, list[RunResult]]:
    """Check every entry, then run every (dataset, model, seed) that is not on disk yet;
    return the runs per dataset, named by their entries' labels."""
    check_benchmark(bench, data_path=data_path, properties=properties)
    common = {"data_path": data_path, "properties": properties}
    plan = [(d, e, s) for d in bench.datasets for e in bench.entries for s in bench.seeds]
    progress = BenchmarkProgress(len(plan))
    runs: dict[str, list[RunResult]] = {}
    for dataset, entry, seed in plan:
        label = f"{dataset} / {entry.name} / seed {seed}"
        stored = not force and is_stored(dataset, entry, seed, out, **common)
        progress.begin(label, stored=stored)
        result = run_one(
            entry.model,
            dataset,
            seed,
            out,
            entry.overrides,
            reuse=not force,
            source=f"{bench.source}: models ({entry.name}) set",
            progress_title=label,
            **common,
        )
        progress.end(trained=not stored)
        runs.setdefault(dataset, []).append(replace(result, model=entry.name))
    return runs
