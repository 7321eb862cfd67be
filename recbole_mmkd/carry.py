"""Carrying stored runs across a code change, honestly: ``recbole-mmkd carry FOLDER``.

A RunResult's config hash covers the code that made it (:mod:`recbole_mmkd.identity`), so any
edit to that code makes the run stale. A refactor that changes no number should not force
every benchmark to re-train, and a change that does change numbers must. On CPU a run is
deterministic, so its stored training trajectory is a fingerprint: the training loss and the
full validation evaluation of each of its first epochs (``valid_curve``), recorded when the
run was made. :func:`carry_run` re-runs the stored configuration on the same data and seed for
those epochs (with the CPU threads the run recorded; float sums depend on them), under the
current code, and compares bit for bit; a run made on another processor is compared by an A/B
replay of its own commit beside the current code instead. Only identical numbers move the
result to the current config hash; the RunResult then records the move in ``carried``. A run
whose numbers differ stays where it is (stale: ``run`` trains it again; reports name the runs
the current code would not reproduce). What the replay cannot see, it cannot vouch for: code
that acts only on the test split (``evaluate_full``'s per-user metrics, the robustness curves)
or only after the replayed epochs; a change there is carried as identical, so ``carry`` is
for refactors of the training path, and the RunResult's ``carried`` record says what was
compared.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_mmkd.config import RUN_KEYS, hashable_config
from recbole_mmkd.errors import MMKDError
from recbole_mmkd.identity import code_info, config_hash
from recbole_mmkd.model import get_model
from recbole_mmkd.past_code import CHECKOUT, PastCodeError, clean_commit, config_at, replay_at
from recbole_mmkd.pipeline import TRAINED_FILE, Trained, cpu_model, write_trained
from recbole_mmkd.prepare import config_for, hashed_config, prepare
from recbole_mmkd.result import RESULT_FILE, ResultError, RunResult, find_results, run_dir_for
from recbole_mmkd.specs import Benchmark
from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE, TeacherRef, teacher_arrays
from recbole_mmkd.trainer import MMKDTrainer
from recbole_mmkd.tune.ledger import BEST, LEDGER, plain, read_ledger


class CarryError(MMKDError):
    """A stored run that cannot be replayed (its settings no longer exist, its teacher's
    artefacts are not stored)."""


def fingerprint(curve: list[dict[str, float]], epochs: int) -> list[dict[str, float]]:
    """The part of a validation curve (loss and every validation metric per evaluated epoch)
    that covers the first ``epochs`` epochs."""
    return [row for row in curve if row["epoch"] < epochs]


def replayed_epochs(config: Any, epochs: int) -> int:
    """``epochs`` rounded up to a whole number of the config's validation intervals
    (``eval_step``), so that a replay's fingerprint holds at least one evaluation."""
    step = max(1, int(config["eval_step"]))
    return -(-max(1, epochs) // step) * step


def first_difference(stored: list[dict], replayed: list[dict]) -> str | None:
    """Where two fingerprints first differ (None when they are identical; two empty ones
    differ: they compare nothing)."""
    if not stored and not replayed:
        return "no validation within the replayed epochs"
    for a, b in zip(stored, replayed, strict=False):
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                was, now = (plain(row.get(key)) for row in (a, b))
                return f"epoch {a['epoch']} {key}: stored {was!r}, now {now!r}"
    if len(stored) != len(replayed):
        return f"{len(stored)} stored evaluations, {len(replayed)} now"
    return None


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def teacher_run(result: RunResult, root: Path) -> Path:
    """The folder of the run a student distilled from: its teacher's run under ``root`` whose
    config hash, current or carried from, is the student's ``teacher_hash``."""
    old = str(result.config["teacher_hash"])  # RecBole reads a hash of digits as a number
    folder = root / result.dataset / result.config["teacher"]
    for run_dir in sorted(folder.glob(f"*/seed-{result.seed}")):
        try:
            teacher = RunResult.load(run_dir)
        except ResultError:
            continue
        if old in {teacher.config_hash} | {c["from_hash"] for c in teacher.carried}:
            return run_dir
    raise CarryError(f"{result.model} seed {result.seed}: no run of its teacher {old} in {folder}")


def _teacher_keys(result: RunResult, root: Path, **common: Any) -> dict[str, str]:
    """The keys that point a student at its teacher's current run, whose artefacts are
    restored first where they are not on disk (:func:`restore_artefacts`)."""
    run_dir = teacher_run(result, root)
    teacher = RunResult.load(run_dir)
    ref = TeacherRef(teacher.model, teacher.config_hash, run_dir)
    if not ref.stored():
        restore_artefacts(run_dir, **common)
    return ref.keys()


def restore_artefacts(run_dir: Path, *, data_path: Any = None, properties: Any = None) -> None:
    """Write a stored teacher run's artefacts again (they stay local, uncommitted) by training
    its configuration in full under the current code: written only when the whole validation
    curve and every test metric come out identical to the stored run's, so they are the
    arrays its students read. Costs one training of the teacher."""
    result = RunResult.load(run_dir)
    config = replay_config(result, run_dir.parents[3], data_path=data_path, properties=properties)
    if config_hash(config) != result.config_hash:
        raise CarryError(
            f"{result.model} seed {result.seed}: its artefacts ({TABLES_FILE}, {STATE_FILE}) are "
            f"not in {run_dir} and it is not a run of the current code; carry it first"
        )
    with _threads(int(result.environment.get("threads", 1))):
        run = prepare(config["model"], config["dataset"], seed=result.seed, config=config)
        trainer = MMKDTrainer(config, run.model)
        curve = trainer.fit(run.train, run.valid).curve
        test = trainer.evaluate_full(run.test, per_user=False).means
    difference = first_difference(result.valid_curve, curve)
    if difference is None and test != result.test:
        difference = f"test metrics: stored {result.test}, now {test}"
    if difference:
        raise CarryError(
            f"{result.model} seed {result.seed}: its artefacts are not in {run_dir}, and "
            f"training it again differs ({difference}); `run` trains it and its students again"
        )
    for name, arrays in teacher_arrays(run.model).items():
        np.savez(run_dir / name, **arrays)


def stored_overrides(
    result: RunResult, *, data_path: Any = None, properties: Any = None
) -> dict[str, Any]:
    """A stored run's settings as overrides of today's defaults for its model and dataset (a
    key the code no longer knows is refused); its teacher's hash left out."""
    model = result.config.get("model", result.model)  # a report may have relabelled the run
    common = {"data_path": data_path, "properties": properties, "source": "stored config"}
    defaults = hashable_config(
        config_for(model, result.dataset, overrides={"seed": result.seed}, **common)
    )
    gone = sorted(
        k
        for k, v in result.config.items()
        if k not in defaults and k not in RUN_KEYS and v is not None
    )
    if gone:
        raise CarryError(f"{model} seed {result.seed}: settings {gone} no longer exist")
    overrides = {k: v for k, v in result.config.items() if k in defaults and defaults[k] != v}
    overrides.pop("teacher_hash", None)
    return overrides


def replay_config(result: RunResult, root: Path, *, data_path: Any = None, properties: Any = None):
    """The current config of a stored run (:func:`stored_overrides`), pointed at its teacher's
    current run."""
    common = {"data_path": data_path, "properties": properties}
    overrides = stored_overrides(result, **common)
    if getattr(get_model(result.model), "needs_teacher", False):
        overrides.update(_teacher_keys(result, root, **common))
    return config_for(
        result.model,
        result.dataset,
        overrides={**overrides, "seed": result.seed},
        source="stored config",
        **common,
    )


def is_current(result: RunResult, *, data_path: Any = None, properties: Any = None) -> bool:
    """Whether the current code gives a stored run's settings its config hash: the run is what
    this code computes (a student's teacher included). Trains nothing; a run whose settings,
    model or data cannot be found here is not current."""
    common = {"data_path": data_path, "properties": properties}
    try:
        config = hashed_config(
            result.config.get("model", result.model),
            result.dataset,
            seed=result.seed,
            overrides=stored_overrides(result, **common),
            **common,
        )
    except MMKDError:
        return False
    return config_hash(config) == result.config_hash


def replay(config: Any, *, seed: int, epochs: int, threads: int) -> list[dict[str, float]]:
    """The fingerprint of ``config`` under the current code: train ``epochs`` epochs, each
    followed by a full validation evaluation, exactly as the run did."""
    with _threads(threads):
        run = prepare(config["model"], config["dataset"], seed=seed, config=config)
        fit = MMKDTrainer(config, run.model).fit(run.train, run.valid, stop_after=epochs)
    return fingerprint(fit.curve, epochs)


def _probe_root(run_dir: Path, result: RunResult, root: Path, tmp: Path, **common: Any) -> Path:
    """A copy of the stored run under the results root ``tmp``, for replays that must not
    touch ``root``; a student's teacher run comes along, with probe artefacts (its untrained
    model's tables and state) where its own are not on disk: both codes of an A/B replay read
    the same teacher, which is all the comparison needs."""
    copy = tmp / run_dir.relative_to(root)
    shutil.copytree(run_dir, copy)
    _without_defaults(copy / "result.json")
    if not getattr(get_model(result.model), "needs_teacher", False):
        return tmp
    # Code before 04d4156 stored a hash of digits as the number RecBole read it as, and looks
    # its teacher up by that value: the copy holds it as the text it is.
    meta = json.loads((copy / "result.json").read_text())
    meta["config"]["teacher_hash"] = str(meta["config"]["teacher_hash"])
    (copy / "result.json").write_text(json.dumps(meta))
    source = teacher_run(result, root)
    target = tmp / source.relative_to(root)
    shutil.copytree(source, target)
    _without_defaults(target / "result.json")
    teacher = RunResult.load(target)
    if not TeacherRef(teacher.model, teacher.config_hash, target).stored():
        config = replay_config(teacher, tmp, **common)
        untrained = prepare(teacher.model, teacher.dataset, seed=teacher.seed, config=config).model
        for name, arrays in teacher_arrays(untrained).items():
            np.savez(target / name, **arrays)
    return tmp


def _without_defaults(path: Path) -> None:
    """Drop from a copied ``result.json`` the fields that hold their default (``serving: {}``
    on a run carried from before it existed): the older code an A/B replay runs reads a
    RunResult only with the fields it knows, and these say nothing it needs."""
    meta = json.loads(path.read_text())
    defaults = {
        name: spec.default if spec.default is not MISSING else spec.default_factory()
        for name, spec in RunResult.__dataclass_fields__.items()
        if (spec.default is not MISSING or spec.default_factory is not MISSING) and name in meta
    }
    for name, default in defaults.items():
        if meta[name] == default:
            del meta[name]
    path.write_text(json.dumps(meta))


def _replayable_commit(result: RunResult) -> str:
    commit = clean_commit(result.code)
    if commit is None:
        raise CarryError(
            f"made on {result.environment.get('cpu')} by code that is not a clean commit "
            f"({(result.code or {}).get('git_commit')}), so neither its fingerprint nor its "
            "code can be replayed here; `run` trains it again"
        )
    return commit


def carry_run(
    run_dir: Path,
    *,
    epochs: int = 3,
    dry_run: bool = False,
    data_path: Any = None,
    properties: Any = None,
) -> str:
    """Replay one stored run and move it to the current code if the replay shows the same
    numbers; a line that says what happened.

    On the processor the run was made on (or where it recorded none) the evidence is its own
    fingerprint: the first ``epochs`` of its stored validation curve, replayed bit for bit. On
    another processor that cannot match, so the evidence is an A/B replay: the commit the run
    recorded and the current code, both replayed here on a copy of it (:mod:`.past_code`),
    bit for bit the same."""
    run_dir = Path(run_dir)
    root = run_dir.parents[3]  # <root>/<dataset>/<model>/<hash>/seed-<n>
    result = RunResult.load(run_dir)
    name = f"{result.dataset} / {result.model} / seed {result.seed}"
    common = {"data_path": data_path, "properties": properties}
    threads = int(result.environment.get("threads", 1))
    made, here = result.environment.get("cpu"), cpu_model()
    method = "fingerprint" if made in (None, here) else "a/b"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if method == "fingerprint":
                config = replay_config(result, root, **common)
            else:
                commit = _replayable_commit(result)
                probe = _probe_root(run_dir, result, root, Path(tmp), **common)
                config = replay_config(result, probe, **common)
            if config_hash(config) == result.config_hash:
                return f"current {name} ({result.config_hash})"
            epochs = replayed_epochs(config, epochs)
            now = replay(config, seed=result.seed, epochs=epochs, threads=threads)
            if method == "fingerprint":
                before = fingerprint(result.valid_curve, epochs)
            else:
                copy = probe / run_dir.relative_to(root)
                before = replay_at(
                    commit, copy, epochs=epochs, threads=threads, data_path=data_path
                )
                now = json.loads(json.dumps(now))
            difference = first_difference(before, now)
    except MMKDError as err:  # a retired key or model, no teacher, no replayable code
        return f"kept    {name}: {err}"
    digest = config_hash(config)
    if difference:
        what = {"fingerprint": "fingerprint", "a/b": "replay of its commit beside the current code"}
        return (
            f"kept    {name}: {what[method]} differs ({difference}; made on "
            f"{made or 'an unrecorded processor'}, replayed on {here}); `run` trains it again"
        )
    if dry_run:
        return f"same    {name}: {result.config_hash} -> {digest} (dry run, not moved)"
    record = {
        "from_hash": result.config_hash,
        "from_code": result.code or "unrecorded",
        "epochs": epochs,
        "threads": threads,
        "method": method,
        "replayed_on": here,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    moved = replace(
        result,
        config_hash=digest,
        config=hashable_config(config),
        code=code_info(config, get_model(result.model)),
        carried=[*result.carried, record],
    )
    target = run_dir_for(root, result.dataset, result.model, digest, result.seed)
    if (target / "result.json").is_file():
        return f"kept    {name}: a run of the current code is stored already ({target})"
    moved.save(target)
    for artefact in (TABLES_FILE, STATE_FILE):
        if (run_dir / artefact).is_file():
            shutil.copy2(run_dir / artefact, target / artefact)
    shutil.rmtree(run_dir)
    if not any(run_dir.parent.iterdir()):
        run_dir.parent.rmdir()
    how = "identical" if method == "fingerprint" else f"the same under both codes on {here}"
    return f"carried {name}: {result.config_hash} -> {digest} ({epochs} epochs {how})"


def carry_folder(root: Path, *, datasets: list[str] | None = None, **options: Any) -> Iterator[str]:
    """:func:`carry_run` for every stored run under ``root`` (of ``datasets`` only, if given),
    teachers before students (a student is replayed against its teacher's carried run)."""
    runs = []
    for run_dir in find_results(root):
        if datasets is not None and run_dir.relative_to(root).parts[0] not in datasets:
            continue
        try:
            runs.append((run_dir, RunResult.load(run_dir)))
        except ResultError as err:
            yield f"skipped {err}"
    teachers = {r.config.get("teacher_hash") for _, r in runs} - {None}
    runs.sort(key=lambda pair: (pair[1].config_hash not in teachers, str(pair[0])))
    for run_dir, _ in runs:
        yield carry_run(run_dir, **options)


SWEEP_CARRIED = "carried.json"  # in a sweep folder: the moves that carried it, oldest first


def carry_sweeps(
    bench: Benchmark,
    out: Path,
    *,
    epochs: int = 3,
    dry_run: bool = False,
    data_path: Any = None,
    properties: Any = None,
) -> Iterator[str]:
    """Move the tuning sweeps of ``bench`` under ``out`` to the current code, one line each.

    A sweep's identity (:func:`~recbole_mmkd.tune.backend.sweep_identity`) holds the config
    hash of its fixed settings, so a code change makes every sweep another one, and ``run``
    would search again. A sweep is carried when its stored identity differs from the current
    one in that hash alone (same space, search, scheduler and seed) and the benchmark's run at
    its chosen point and the sweep's seed, the same training as its best trial, is a carried
    run (its fingerprint replayed identically under the current code; carry the runs first) or
    a run of the current code whose whole training equals a stored older run's at the same
    settings and seed. Where no such run is stored (a benchmark searched but not yet run), an
    A/B replay vouches instead: the chosen point trained ``epochs`` epochs under the commit
    whose code made the sweep and under the current code, bit for bit the same
    (:func:`_replayed_beside_its_code`). A search not finished is carried the same way, by
    an A/B replay of its best trial so far, and left unsettled: ``run`` goes on with it.
    The folder moves to the current identity's name; ``carried.json`` in it records the move
    and what vouched for it."""
    from recbole_mmkd.benchmark import entry_run_dir, search_progress
    from recbole_mmkd.specs import dependency_order, entry_width, resolve_entry, tuning_sweep
    from recbole_mmkd.tune.backend import identity_digest, search_running, sweep_identity

    common = {"data_path": data_path, "properties": properties}
    for dataset in bench.datasets:
        settled: dict[str, Any] = {}  # entries built and at their current sweeps' points
        for entry in dependency_order(bench.entries_on(dataset)):
            name = f"{dataset} / {entry.name} sweep"
            missing = [n for n in entry.depends_on if n not in settled]
            if missing:
                if entry.space:
                    yield f"kept    {name}: the sweep of {missing[0]} is not current"
                continue
            entry = resolve_entry(
                entry, settled, width_of=lambda e, d=dataset: entry_width(e, d, **common),
                shared=bench.dataset_settings(entry, dataset),
            )  # fmt: skip
            if not entry.space:
                settled[entry.name] = entry
                continue
            sweep = tuning_sweep(bench, entry, dataset)
            identity = sweep_identity(sweep, **common)
            folder = Path(out) / "tuning" / dataset
            target = folder / f"{sweep.name}-{identity_digest(identity)}"
            if target.is_dir():
                if search_progress(sweep, target, **common)[1]:
                    yield f"current {name} ({target.name}; its search is not finished)"
                    continue
                point = _chosen_point(target, sweep, entry)
                settled[entry.name] = _at_point(entry, point)
                yield f"current {name} ({target.name})"
                records = _read_carried(target)
                if records:  # carried before its trained model was, perhaps
                    run_dir = entry_run_dir(dataset, settled[entry.name], sweep.seed, out, **common)
                    vouched_by = records[-1]["vouched_by"]
                    yield from _carry_trained(target, point, run_dir, vouched_by, dry_run=dry_run)
                continue
            older = [
                f for f in sorted(folder.glob(f"{sweep.name}-*"))
                if _same_but_code(f / "sweep.json", identity)
            ]  # fmt: skip
            if not older:
                yield f"none    {name}: no stored sweep of these settings"
                continue
            source = older[-1]
            running = search_running(source)
            if running is not None:
                yield f"kept    {name}: {source.name} is being searched ({running}); carry it after"
                continue
            done, todo, _ = search_progress(sweep, source, **common)
            if todo and not done:
                yield f"kept    {name}: its stored search ({source.name}) has no finished trial"
                continue
            # an unfinished search is vouched for at its best trial so far, by A/B replay
            point = _chosen_point(source, sweep, entry) if not todo else _best_so_far(done, entry)
            chosen = _at_point(entry, point)
            run_dir = entry_run_dir(dataset, chosen, sweep.seed, out, **common)
            try:
                vouch = None if todo else RunResult.load(run_dir)
            except ResultError:
                vouch = None
            if vouch is not None and not vouch.carried:
                vouch = vouch if _reproduced_older_run(vouch, run_dir) else None
            stored = json.loads((source / "sweep.json").read_text())
            if vouch is not None:
                vouched_by = str(run_dir.relative_to(out))
            else:
                vouched_by, why = _replayed_beside_its_code(
                    source, sweep, stored["config_hash"], point, epochs=epochs, **common
                )
                if vouched_by is None:
                    yield (
                        f"kept    {name}: no carried run at its chosen point {point} and seed "
                        f"{sweep.seed} vouches for it, and {why}; `run` searches again"
                    )
                    continue
            if dry_run:
                yield f"same    {name}: {source.name} -> {target.name} (dry run, not moved)"
                continue
            record = {
                "from": source.name,
                "from_config_hash": stored["config_hash"],
                "vouched_by": vouched_by,
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            records = [*_read_carried(source), record]
            source.rename(target)
            (target / "sweep.json").write_text(json.dumps(identity, indent=1, sort_keys=True))
            (target / SWEEP_CARRIED).write_text(json.dumps(records, indent=1))
            yield f"carried {name}: {source.name} -> {target.name} (vouched by {vouched_by})"
            if not todo:
                settled[entry.name] = chosen
                yield from _carry_trained(target, point, run_dir, vouched_by, dry_run=False)


def _at_point(entry: Any, point: dict[str, Any]) -> Any:
    """``entry`` with the searched ``point`` set."""
    return replace(entry, overrides={**entry.overrides, **point})


def _carry_trained(
    folder: Path, point: dict[str, Any], run_dir: Path, vouched_by: str, *, dry_run: bool
) -> Iterator[str]:
    """Move the model a trial of the sweep in ``folder`` trained at ``point`` to its early stop
    (:func:`~recbole_mmkd.pipeline.leave_trained`, in the folder of the run of its settings
    under the code that made the sweep) to ``run_dir``, that run's folder under the current
    code, so the benchmark's run there adopts it instead of training it again: the evidence
    that carries the sweep (``vouched_by``, which the moved model's ``by`` records) carries the
    model its chosen trial trained. A model is that trial's where it names the trial and its
    training ended as the ledger records (epochs and best validation value). Nothing to move
    where that run is stored, where a model is there already, or where the trial left none
    (capped, or older than trained models)."""
    if (run_dir / TRAINED_FILE).exists() or (run_dir / RESULT_FILE).exists():
        return
    trials = {
        row["trial_id"]: row for row in read_ledger(folder / LEDGER)
        if all(row["point"].get(k) == v for k, v in point.items())
    }  # fmt: skip
    digest = run_dir.parent.name
    for path in sorted(run_dir.parents[1].glob(f"*/{run_dir.name}/{TRAINED_FILE}")):
        try:
            trained = torch.load(path, map_location="cpu", weights_only=False)
        except (EOFError, RuntimeError, pickle.UnpicklingError, AttributeError) as err:
            yield f"kept    {path}: cannot be read ({err})"
            continue
        row = next((r for t, r in trials.items() if f"trial {t} (" in getattr(trained, "by", "")),
                   None)  # fmt: skip
        if (
            not isinstance(trained, Trained)
            or row is None
            or not _trained_as_recorded(trained, row)
        ):
            continue
        moved = f"its trained model: {path.parent.parent.name} -> {digest} ({run_dir})"
        if dry_run:
            yield f"same    {moved} (dry run, not moved)"
            return
        by = (f"{trained.by}, carried from {trained.config_hash} with its search (the moves in "
              f"{folder.name}/{SWEEP_CARRIED}, the last vouched by {vouched_by})")  # fmt: skip
        write_trained(run_dir, replace(trained, config_hash=digest, by=by))
        path.unlink()
        for empty in (path.parent, path.parent.parent):
            if not any(empty.iterdir()):
                empty.rmdir()
        yield f"carried {moved}"
        return


def _trained_as_recorded(trained: Trained, row: dict[str, Any]) -> bool:
    """Whether ``trained`` ended its training as the ledger ``row`` of its trial records."""
    fit = trained.fit
    return fit.epochs_run == row.get("epochs") and row.get(BEST) in fit.best_valid.values()


def _replayed_beside_its_code(
    source: Path,
    sweep: Any,
    stored_hash: str,
    point: dict[str, Any],
    *,
    epochs: int,
    data_path: Any = None,
    properties: Any = None,
) -> tuple[str | None, str]:
    """An A/B replay for a sweep no stored run vouches for: a commit of this checkout whose
    code made it and the current code each train its chosen ``point`` at the sweep's seed for
    ``epochs`` epochs on this processor, one thread. The commit is the first, among those that
    committed the folder or one it was carried from (``carried.json``: code shown to compute
    the same), under which the settings hash as that folder records (``stored_hash`` for the
    folder itself). ``(what vouched, "")`` when the two fingerprints are identical, else
    ``(None, why not)``."""
    from recbole_mmkd.tune.backend import anchor_point

    fixed = {**anchor_point(sweep), **sweep.overrides}
    where = {"seed": sweep.seed, "fixed": fixed, "data_path": data_path}
    made = [(source, stored_hash)] + [
        (source.parent / r["from"], r["from_config_hash"]) for r in reversed(_read_carried(source))
    ]
    commit = next(
        (c for folder, digest in made for c in _commits_of(folder)
         if _hash_at(c, sweep, where) == digest),
        None,
    )  # fmt: skip
    if commit is None:
        return None, f"no commit of this checkout that stored {source.name} has its code"
    config = hashed_config(sweep.model, sweep.dataset, seed=sweep.seed,
                           overrides={**fixed, **point}, data_path=data_path,
                           properties=properties)  # fmt: skip
    epochs = replayed_epochs(config, epochs)
    try:
        _, before = config_at(commit, sweep.model, sweep.dataset, point=point, epochs=epochs,
                              **where)  # fmt: skip
    except PastCodeError as err:
        return None, str(err)
    now = json.loads(json.dumps(replay(config, seed=sweep.seed, epochs=epochs, threads=1)))
    difference = first_difference(before, now)
    if difference:
        return None, f"its replay under {commit[:12]} and the current code differ ({difference})"
    return (
        f"a/b replay of {point}, seed {sweep.seed}, {epochs} epochs, under {commit[:12]} and "
        f"the current code on {cpu_model()}"
    ), ""


def _commits_of(folder: Path) -> list[str]:
    """Commits of this checkout that changed ``folder``, oldest first (none outside it)."""
    command = ["git", "-C", str(CHECKOUT), "log", "--format=%H", "--reverse", "--"]
    done = subprocess.run([*command, str(folder.resolve())], capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []


def _hash_at(commit: str, sweep: Any, where: dict[str, Any]) -> str | None:
    """The hash of the sweep's fixed settings under ``commit``'s code (None where that code
    cannot compute it)."""
    try:
        return config_at(commit, sweep.model, sweep.dataset, **where)[0]
    except PastCodeError:
        return None


def _best_so_far(done: list[dict[str, Any]], entry: Any) -> dict[str, Any]:
    """The point of the finished trial of best validation value, capped or not."""
    best = max(done, key=lambda r: -math.inf if r.get(BEST) is None else r[BEST])
    return {k: best["point"][k] for k in entry.space}


def _chosen_point(folder: Path, sweep: Any, entry: Any) -> dict[str, Any]:
    """The point of best validation value in the sweep ledger under ``folder``."""
    from recbole_mmkd.tune import read_ledger, select_best, sweep_table

    best = select_best(sweep_table(read_ledger(folder / LEDGER), sweep))
    return {k: plain(best[k]) for k in entry.space}


def _reproduced_older_run(run: RunResult, run_dir: Path) -> bool:
    """Whether ``run`` (of the current code, at ``run_dir``) trained exactly as a stored run of
    older code did: same settings and seed, every epoch's loss and validation metrics equal. A
    whole identical curve is a stronger fingerprint than carry's first epochs, so such a run
    vouches for a sweep as a carried one does."""
    for other in sorted(run_dir.parent.parent.glob(f"*/{run_dir.name}")):
        if other == run_dir:
            continue
        try:
            older = RunResult.load(other)
        except ResultError:
            continue
        if older.config == run.config and older.valid_curve == run.valid_curve:
            return True
    return False


def _same_but_code(path: Path, identity: dict[str, Any]) -> bool:
    """Whether the sweep identity stored at ``path`` differs from ``identity`` in its config
    hash alone."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return {**stored, "config_hash": None} == {**identity, "config_hash": None}


def _read_carried(folder: Path) -> list[dict[str, Any]]:
    path = folder / SWEEP_CARRIED
    return json.loads(path.read_text()) if path.is_file() else []
