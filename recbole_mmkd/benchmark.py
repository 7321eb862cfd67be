"""Running a benchmark (:mod:`recbole_mmkd.specs` reads it): every entry's settings are
checked, the entries with a search space are tuned on validation (one sweep per entry and
dataset), then every (dataset, model, seed) that is not on disk yet is trained."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.identity import config_hash
from recbole_mmkd.pipeline import adopted, run_one, stored_run
from recbole_mmkd.prepare import hashed_config
from recbole_mmkd.progress import BenchmarkProgress
from recbole_mmkd.result import RunResult, run_dir_for
from recbole_mmkd.specs import (
    Benchmark,
    Entry,
    Sweep,
    Tuning,
    check_benchmark,
    dependency_order,
    entry_width,
    resolve_entry,
    tuning_budget,
    tuning_sweep,
)
from recbole_mmkd.tune.backend import init_ray
from recbole_mmkd.tune.ledger import BEST, plain

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
        ("models", models, list(dict.fromkeys(e.name for e in bench.entries))),
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
        context=bench.context or bench.entries,
        entries=[e for e in bench.entries if models is None or e.name in models],
        datasets=[d for d in bench.datasets if datasets is None or d in datasets],
        seeds=[s for s in bench.seeds if seeds is None or s in seeds],
    )


def is_part(part: Benchmark, whole: Benchmark) -> bool:
    """Whether ``part`` leaves out some of ``whole``'s models or seeds (a part's tables would
    describe less than the benchmark; a run of whole datasets writes those datasets')."""
    return (part.entries, part.seeds) != (whole.entries, whole.seeds)


def stored_result(
    dataset: str, entry: Entry, seed: int, out: Path, *, data_path: Any, properties: Any
) -> RunResult | None:
    """The run on disk already for this (dataset, entry, seed), found without training
    anything: a student's config hash names its teacher by the teacher's config hash, so a
    stored student is reused without its teacher's artefacts (which stay local)."""
    return stored_run(entry_run_dir(dataset, entry, seed, out, data_path=data_path,
                               properties=properties))  # fmt: skip


def entry_run_dir(dataset: str, entry: Entry, seed: int, out: Path, **common: Any) -> Path:
    """The folder of the run of (dataset, entry, seed) under the current code and settings."""
    config = hashed_config(entry.model, dataset, seed=seed, overrides=entry.overrides, **common)
    return run_dir_for(out, dataset, entry.model, config_hash(config), seed)


# A search run or read for an entry: given the entry (built, not yet at its chosen point),
# its sweep and folder, the sweep's trial table once complete, else None (left unsettled).
Search = Callable[[Entry, Sweep, Path], "pd.DataFrame | None"]


def settle_entries(
    bench: Benchmark, dataset: str, out: Path, *, search: Search, data_path: Any,
    properties: Any,
) -> dict[str, Entry | None]:  # fmt: skip
    """Every entry of ``bench`` on ``dataset`` (and those they name) by name, built from the
    entries it names (:func:`~recbole_mmkd.specs.resolve_entry`, those settled first) and, if
    it has a space, set to the best point of the table ``search`` gives; None for an entry
    whose search gives no table yet, or that names such an entry."""
    from recbole_mmkd.tune import select_best

    common = {"data_path": data_path, "properties": properties}
    settled: dict[str, Entry | None] = {}
    bench = bench.on(dataset)
    dependency_order(bench.context or bench.entries)  # a ConfigError for a cycle

    def settle(entry: Entry) -> Entry | None:
        if entry.name in settled:
            return settled[entry.name]
        parents = [settle(bench.entry(name)) for name in entry.depends_on]
        if any(p is None for p in parents):
            settled[entry.name] = None
            return None
        entry = resolve_entry(entry, settled, width_of=lambda e: entry_width(e, dataset, **common),
                              shared=bench.dataset_settings(entry, dataset))  # fmt: skip
        if entry.space:
            sweep = tuning_sweep(bench, entry, dataset)
            trials = search(entry, sweep, sweep_folder(sweep, out, **common))
            if trials is None:
                settled[entry.name] = None
                return None
            best = select_best(trials)
            point = {k: plain(best[k]) for k in entry.space}
            entry = replace(entry, overrides={**entry.overrides, **point})
        settled[entry.name] = entry
        return entry

    for entry in bench.entries:
        settle(entry)
    return settled


def sweep_folder(sweep: Sweep, out: Path, **common: Any) -> Path:
    """Where ``sweep`` is stored under ``out``: named by its identity, so that other code or
    settings search anew."""
    from recbole_mmkd.tune.backend import identity_digest, sweep_identity

    digest = identity_digest(sweep_identity(sweep, **common))
    return Path(out) / "tuning" / sweep.dataset / f"{sweep.name}-{digest}"


def search_progress(
    sweep: Sweep, folder: Path, *, data_path: Any = None, properties: Any = None
) -> tuple[list[dict[str, Any]], int, int | None]:
    """The finished trials of ``sweep`` stored in ``folder`` and what its next launch runs:
    ``(done, todo, cap)``, ``todo`` 0 once the search is complete
    (:func:`~recbole_mmkd.tune.backend.pending_trials`)."""
    from recbole_mmkd.prepare import config_for
    from recbole_mmkd.tune import LEDGER, read_ledger
    from recbole_mmkd.tune.backend import pending_trials

    done = [r for r in read_ledger(folder / LEDGER) if r["status"] == "done"]
    config = config_for(
        sweep.model, sweep.dataset, overrides=dict(sweep.overrides),
        data_path=data_path, properties=properties,
    )  # fmt: skip
    todo, cap = pending_trials(sweep, done, epochs=config["epochs"])
    return done, todo, cap


def other_search_stored(sweep: Sweep, folder: Path) -> bool:
    """Whether ``folder`` (the sweep's, by identity) is absent while a search of the same name
    and other code or settings is stored beside it."""
    return not folder.is_dir() and any(folder.parent.glob(f"{sweep.name}-*"))


def _tuning_row(entry: Entry, trials: pd.DataFrame, tuning: Tuning) -> dict[str, Any]:
    from recbole_mmkd.tune import select_best

    best = select_best(trials)
    return {
        "entry": entry.name,
        "trials": int((trials["status"] == "done").sum()),
        "budget": tuning_budget(entry, tuning),
        "chosen": json.dumps({k: plain(best[k]) for k in entry.space}, sort_keys=True),
        "best valid": round(float(best[BEST]), 5),
        "seed": tuning.seed,
    }


def tuned_entries(
    bench: Benchmark,
    dataset: str,
    out: Path,
    *,
    data_path: Any,
    properties: Any,
    address: str | None = None,
) -> list[Entry]:
    """The benchmark's entries on ``dataset``, each with a ``space`` set to its point of best
    validation value (its sweep under ``<out>/tuning/<dataset>/``, resumed where it stopped;
    trials never read the test split). Writes ``tuning-<dataset>.{md,csv}``: per tuned entry,
    the budget (trials), the chosen point and its validation value. A key the entry's ``set``
    also gives is searched all the same: the space wins. An entry ``tuned_on`` another is
    searched with that entry's chosen point set (the other is tuned first, or its stored sweep
    read, also when a part of the benchmark leaves it out); its own ``set`` wins over it. An
    entry ``teacher_from`` or ``width`` another is built from that one as settled here
    (:func:`~recbole_mmkd.specs.resolve_entry`), then searched if it has a space."""
    from recbole_mmkd.tune import run_sweep

    common = {"data_path": data_path, "properties": properties}
    rows: dict[str, dict] = {}
    tuning = bench.tuning

    def search(entry: Entry, sweep: Sweep, folder: Path) -> pd.DataFrame:
        if other_search_stored(sweep, folder):
            logger.warning(
                "%s: the stored sweep on %s is of other settings or code, so it is "
                "searched again; after a code change, `recbole-mmkd carry %s --benchmark "
                "%s` carries it where the run at its chosen point replays identically",
                entry.name, dataset, out, bench.name,
            )  # fmt: skip
        logger.info("tuning %s on %s validation: %d trials", entry.name, dataset,
                    tuning_budget(entry, tuning))  # fmt: skip
        trials = run_sweep(
            sweep, folder, resume=True, teacher_root=Path(out), address=address, **common
        )
        rows[entry.name] = _tuning_row(entry, trials, tuning)
        return trials

    settled = settle_entries(bench, dataset, out, search=search, **common)
    if rows:
        _write_tuning(Path(out), dataset, pd.DataFrame(list(rows.values())))
    return [settled[e.name] for e in bench.on(dataset).entries]


def plan_benchmark(
    bench: Benchmark, out: Path, *, data_path: Any = None, properties: Any = None
) -> dict[str, pd.DataFrame]:
    """What a run of ``bench`` into ``out`` has left to do, read from disk without training
    or starting Ray: per dataset and entry, its search (``done``, the trials recorded and the
    next launch, or the entries it waits on), its chosen point and validation value, and its
    seeds stored under the current code and settings (a run of other code is not counted:
    ``carry`` moves it where it replays identically), and whether the search's seed has a
    model its search left, which that seed's run adopts instead of training."""
    common = {"data_path": data_path, "properties": properties}
    return {d: _plan_dataset(bench, d, out, **common) for d in bench.datasets}


def _plan_dataset(
    bench: Benchmark, dataset: str, out: Path, *, data_path: Any, properties: Any
) -> pd.DataFrame:
    from recbole_mmkd.tune import select_best, sweep_table

    common = {"data_path": data_path, "properties": properties}
    searches: dict[str, str] = {}
    values: dict[str, float] = {}

    def search(entry: Entry, sweep: Sweep, folder: Path) -> pd.DataFrame | None:
        done, todo, cap = search_progress(sweep, folder, **common)
        if todo == 0:
            table = sweep_table(done, sweep)
            searches[entry.name] = f"done ({len(done)} trials)"
            values[entry.name] = round(float(select_best(table)[BEST]), 5)
            return table
        length = f"capped at {cap} epochs" if cap else "to the early stop"
        searches[entry.name] = f"{len(done)} trials run; next {todo} {length}"
        if other_search_stored(sweep, folder):
            searches[entry.name] += " (the stored search is of other code or settings)"
        return None

    settled = settle_entries(bench, dataset, out, search=search, **common)
    rows = []
    for entry in bench.on(dataset).entries:
        at = settled[entry.name]
        waits = ", ".join(n for n in entry.depends_on if settled.get(n) is None)
        state = searches.get(entry.name, f"waits on {waits}" if waits else "-")
        chosen, stored = None, None
        if at is not None:
            if entry.space:
                chosen = json.dumps({k: at.overrides[k] for k in entry.space}, sort_keys=True)
            found = [s for s in bench.seeds if stored_result(dataset, at, s, out, **common)]
            stored = f"{len(found)} of {len(bench.seeds)}"
            seed = bench.tuning.on(dataset).seed
            if entry.space and seed in set(bench.seeds) - set(found):
                run_dir = entry_run_dir(dataset, at, seed, out, **common)
                if adopted(run_dir, run_dir.parent.name) is not None:
                    stored += f" (seed {seed}: its search's model, to test)"
        rows.append({"entry": entry.name, "search": state, "chosen": chosen,
                     "best valid": values.get(entry.name), "seeds stored": stored})  # fmt: skip
    return pd.DataFrame(rows)


def _write_tuning(out: Path, dataset: str, table: pd.DataFrame) -> None:
    """``tuning-<dataset>.{md,csv}``: these entries' rows replace theirs, other entries' rows
    (tuned by another part of the benchmark) stay."""
    path = out / f"tuning-{dataset}.csv"
    if path.is_file():
        kept = pd.read_csv(path)
        table = pd.concat([kept[~kept["entry"].isin(table["entry"])], table], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    (out / f"tuning-{dataset}.md").write_text(table.to_markdown(index=False) + "\n")


def tune_benchmark(
    bench: Benchmark,
    out: Path,
    *,
    data_path: Path | None = None,
    properties: Any = None,
    address: str | None = None,
) -> dict[str, pd.DataFrame]:
    """The first step of :func:`run_benchmark` alone: check every entry, then search every
    entry's space on validation (resuming stored sweeps), training no final seed; per dataset,
    the tuned entries' rows of ``tuning-<dataset>.csv`` (budget, chosen point, best
    validation value). A cheap first pass: which entry validation prefers, before any test.
    ``address``: the trials on that Ray cluster."""
    check_benchmark(bench, data_path=data_path, properties=properties)
    common = {"data_path": data_path, "properties": properties}
    tables = {}
    for dataset in bench.datasets:
        names = [e.name for e in tuned_entries(bench, dataset, out, address=address, **common)]
        path = Path(out) / f"tuning-{dataset}.csv"
        table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["entry"])
        tables[dataset] = table[table["entry"].isin(names)].reset_index(drop=True)
    return tables


def run_benchmark(
    bench: Benchmark,
    out: Path,
    *,
    data_path: Path | None = None,
    properties: Any = None,
    force: bool = False,
    address: str | None = None,
) -> dict[str, list[RunResult]]:
    """Check every entry, then run every (dataset, model, seed) that is not on disk yet;
    return the runs per dataset, named by their entries' labels. With ``address`` (``auto``,
    ``HOST:PORT``) the searches and the runs go to that Ray cluster: :func:`cluster_runs`."""
    check_benchmark(bench, data_path=data_path, properties=properties)
    common = {"data_path": data_path, "properties": properties}
    entries = {d: tuned_entries(bench, d, out, address=address, **common) for d in bench.datasets}
    plan = [(d, e, s) for d in bench.datasets for e in entries[d] for s in bench.seeds]
    if address is not None:
        return cluster_runs(bench, plan, out, address=address, force=force, **common)
    progress = BenchmarkProgress(len(plan))
    # entries that teach others there keep their tables, or each student would train them again
    teachers = {}
    for dataset in bench.datasets:
        here = bench.on(dataset)
        teachers[dataset] = {e.teacher_from for e in here.context or here.entries if e.teacher_from}
    runs: dict[str, list[RunResult]] = {}
    for dataset, entry, seed in plan:
        label = f"{dataset} / {entry.name} / seed {seed}"
        stored = None if force else stored_result(dataset, entry, seed, out, **common)
        progress.begin(label, stored=stored is not None)
        result = stored or run_one(
            entry.model,
            dataset,
            seed,
            out,
            overrides=entry.overrides,
            reuse=not force,
            keep_tables=entry.name in teachers[dataset],
            source=f"{bench.source}: models ({entry.name}) set",
            progress_title=label,
            **common,
        )
        progress.end(trained=stored is None)
        runs.setdefault(dataset, []).append(replace(result, model=entry.name))
    return runs


# A run whose worker dies (a node lost, a process killed) is run again, this many times.
RETRIES = 3


def _remote_run(model: str, dataset: str, seed: int, out: str, overrides: dict,
                options: dict) -> RunResult:  # fmt: skip
    """One (dataset, model, seed), in a Ray task."""
    import recbole_mmkd  # noqa: F401  (compat shims first, in the worker process)

    return run_one(model, dataset, seed, Path(out), overrides=overrides, **options)


def _remote_teacher(student: str, dataset: str, seed: int, out: str, overrides: dict,
                    options: dict) -> Any:  # fmt: skip
    """The teacher a student names, trained (or reused), in a Ray task."""
    import recbole_mmkd  # noqa: F401
    from recbole_mmkd.pipeline import teacher_for

    return teacher_for(student, dataset, seed, Path(out), overrides, **options)


def cluster_runs(
    bench: Benchmark,
    plan: list[tuple[str, Entry, int]],
    out: Path,
    *,
    address: str,
    force: bool = False,
    data_path: Path | None = None,
    properties: Any = None,
) -> dict[str, list[RunResult]]:
    """The ``plan``'s runs not on disk yet as Ray tasks on the cluster at ``address``, each
    with the benchmark's ``cpus_per_trial`` and ``gpus_per_trial``: first the students'
    teachers, one task per (dataset, teacher settings, seed), then every other run (a run
    that is also a teacher's is then found on disk, not trained twice). Each task writes its
    RunResult when it ends, so a killed benchmark resumes from what it wrote. A task whose
    worker dies (a lost node, a killed process) is run again (``RETRIES``) into the same run
    folder: nothing is lost or counted twice. Every node reads ``out`` and the datasets at the
    same paths (a shared file system). ``force`` is refused (its error says why)."""
    import ray

    from recbole_mmkd.model import get_model
    from recbole_mmkd.prepare import config_for

    if force:
        raise ConfigError(
            "--force", "--address",
            "a forced student re-trains its teacher inside its own task, where the students "
            "of one teacher would race on its folder",
            "delete the runs to redo (a benchmark trains what is missing), or force them "
            "without --address",
        )  # fmt: skip
    init_ray(address)
    resources = {"num_cpus": bench.tuning.cpus_per_trial, "num_gpus": bench.tuning.gpus_per_trial}
    common = {"data_path": data_path, "properties": properties}
    folder = str(Path(out).resolve())

    def options(entry: Entry) -> dict[str, Any]:
        return {**common, "source": f"{bench.source}: models ({entry.name}) set"}

    teachers: dict[str, Any] = {}
    teacher_task = ray.remote(max_retries=RETRIES)(_remote_teacher).options(**resources)
    for dataset, entry, seed in plan:
        if getattr(get_model(entry.model), "needs_teacher", False):
            probe = config_for(entry.model, dataset, overrides=entry.overrides, **common)
            key = json.dumps([dataset, probe["teacher"], probe["teacher_config"], seed],
                             sort_keys=True, default=str)  # fmt: skip
            if key not in teachers:
                teachers[key] = teacher_task.remote(
                    entry.model, dataset, seed, folder, entry.overrides, options(entry)
                )
    if teachers:
        logger.info("%s: %d teachers on the cluster at %s", bench.name, len(teachers), address)
        ray.get(list(teachers.values()))
    run_task = ray.remote(max_retries=RETRIES)(_remote_run).options(**resources)
    results: dict[int, RunResult] = {}
    pending: dict[Any, int] = {}
    for index, (dataset, entry, seed) in enumerate(plan):
        stored = stored_result(dataset, entry, seed, out, **common)
        if stored is not None:
            results[index] = stored
            continue
        ref = run_task.remote(entry.model, dataset, seed, folder, entry.overrides, options(entry))
        pending[ref] = index
    logger.info("%s: %d runs on the cluster at %s (%d stored)", bench.name, len(pending),
                address, len(results))  # fmt: skip
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ref)
        results[index] = ray.get(ref)
        dataset, entry, seed = plan[index]
        logger.info("[%d/%d] %s / %s / seed %d done", len(results), len(plan), dataset,
                    entry.name, seed)  # fmt: skip
    runs: dict[str, list[RunResult]] = {}
    for index, (dataset, entry, _) in enumerate(plan):
        runs.setdefault(dataset, []).append(replace(results[index], model=entry.name))
    return runs
