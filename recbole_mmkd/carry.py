"""Carrying stored runs across a code change, honestly: ``recbole-mmkd carry FOLDER``.

A RunResult's config hash covers the code that made it (:mod:`recbole_mmkd.identity`), so any
edit to that code makes the run stale. A refactor that changes no number should not force
every benchmark to re-train, and a change that does change numbers must. On CPU a run is
deterministic, so its stored training trajectory is a fingerprint: the training loss and the
full validation evaluation of each of its first epochs (``valid_curve``), recorded when the
run was made. :func:`carry_run` re-runs the stored configuration on the same data and seed for
those epochs (with the CPU threads the run recorded; float sums depend on them), under the
current code, and compares bit for bit. Only an identical fingerprint moves the result to the
current config hash; the RunResult then records the move in ``carried``. A fingerprint that
differs leaves the run where it is (stale: ``run`` trains it again; reports flag tables that
mix code versions). What the fingerprint cannot see, it cannot vouch for: code that acts
only on the test split (``evaluate_full``'s per-user metrics, the robustness curves) or only
after the replayed epochs; a change there is carried as identical, so ``carry`` is for
refactors of the training path, and the RunResult's ``carried`` record says what was compared.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from recbole_mmkd.config import RUN_KEYS, hashable_config
from recbole_mmkd.errors import MMKDError
from recbole_mmkd.identity import code_info, config_hash
from recbole_mmkd.model import get_model
from recbole_mmkd.pipeline import cpu_model
from recbole_mmkd.prepare import config_for, prepare
from recbole_mmkd.result import ResultError, RunResult, find_results, run_dir_for
from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE, TeacherRef
from recbole_mmkd.trainer import MMKDTrainer
from recbole_mmkd.tune.ledger import plain


class CarryError(MMKDError):
    """A stored run that cannot be replayed (its settings no longer exist, its teacher's
    artefacts are not stored)."""


def fingerprint(curve: list[dict[str, float]], epochs: int) -> list[dict[str, float]]:
    """The part of a validation curve (loss and every validation metric per evaluated epoch)
    that covers the first ``epochs`` epochs."""
    return [row for row in curve if row["epoch"] < epochs]


def first_difference(stored: list[dict], replayed: list[dict]) -> str | None:
    """Where two fingerprints first differ (None when they are identical)."""
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


def _teacher_keys(result: RunResult, root: Path) -> dict[str, str]:
    """The current teacher run of a student whose teacher was carried (or is current)."""
    old = str(result.config["teacher_hash"])  # RecBole reads a hash of digits as a number
    folder = root / result.dataset / result.config["teacher"]
    for run_dir in sorted(folder.glob(f"*/seed-{result.seed}")):
        try:
            teacher = RunResult.load(run_dir)
        except ResultError:
            continue
        hashes = {teacher.config_hash} | {c["from_hash"] for c in teacher.carried}
        if old in hashes:
            ref = TeacherRef(teacher.model, teacher.config_hash, run_dir)
            if not ref.stored():
                raise CarryError(
                    f"{result.model} seed {result.seed}: its teacher's artefacts "
                    f"({TABLES_FILE}, {STATE_FILE}) are not stored in {run_dir}; `run` trains "
                    "the teacher (and the student) again"
                )
            return ref.keys()
    raise CarryError(f"{result.model} seed {result.seed}: no run of its teacher {old} in {folder}")


def replay_config(result: RunResult, root: Path, *, data_path: Any = None, properties: Any = None):
    """The current config of a stored run: its settings as overrides of today's defaults (a
    key the code no longer knows is refused), pointed at its teacher's current run."""
    common = {"data_path": data_path, "properties": properties, "source": "stored config"}
    defaults = hashable_config(
        config_for(result.model, result.dataset, overrides={"seed": result.seed}, **common)
    )
    gone = sorted(
        k
        for k, v in result.config.items()
        if k not in defaults and k not in RUN_KEYS and v is not None
    )
    if gone:
        raise CarryError(f"{result.model} seed {result.seed}: settings {gone} no longer exist")
    overrides = {k: v for k, v in result.config.items() if k in defaults and defaults[k] != v}
    overrides.pop("teacher_hash", None)
    if getattr(get_model(result.model), "needs_teacher", False):
        overrides.update(_teacher_keys(result, root))
    return config_for(
        result.model, result.dataset, overrides={**overrides, "seed": result.seed}, **common
    )


def replay(config: Any, *, seed: int, epochs: int, threads: int) -> list[dict[str, float]]:
    """The fingerprint of ``config`` under the current code: train ``epochs`` epochs, each
    followed by a full validation evaluation, exactly as the run did."""
    with _threads(threads):
        run = prepare(config["model"], config["dataset"], seed=seed, config=config)
        fit = MMKDTrainer(config, run.model).fit(run.train, run.valid, stop_after=epochs)
    return fingerprint(fit.curve, epochs)


def carry_run(
    run_dir: Path,
    *,
    epochs: int = 3,
    dry_run: bool = False,
    data_path: Any = None,
    properties: Any = None,
) -> str:
    """Replay one stored run and move it to the current code if its fingerprint is identical;
    a line that says what happened."""
    run_dir = Path(run_dir)
    root = run_dir.parents[3]  # <root>/<dataset>/<model>/<hash>/seed-<n>
    result = RunResult.load(run_dir)
    name = f"{result.dataset} / {result.model} / seed {result.seed}"
    try:
        config = replay_config(result, root, data_path=data_path, properties=properties)
    except MMKDError as err:  # a retired key or model, a value now out of range, no teacher
        return f"kept    {name}: {err}"
    digest = config_hash(config)
    if digest == result.config_hash:
        return f"current {name} ({digest})"
    threads = int(result.environment.get("threads", 1))
    stored = fingerprint(result.valid_curve, epochs)
    difference = first_difference(
        stored, replay(config, seed=result.seed, epochs=epochs, threads=threads)
    )
    if difference:
        made = result.environment.get("cpu", "an unrecorded processor")
        return (
            f"kept    {name}: fingerprint differs ({difference}; made on {made}, replayed on "
            f"{cpu_model()}); `run` trains it again"
        )
    if dry_run:
        return f"same    {name}: {result.config_hash} -> {digest} (dry run, not moved)"
    record = {
        "from_hash": result.config_hash,
        "from_code": result.code or "unrecorded",
        "epochs": epochs,
        "threads": threads,
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
    return f"carried {name}: {result.config_hash} -> {digest} ({epochs} epochs identical)"


def carry_folder(root: Path, **options: Any) -> Iterator[str]:
    """:func:`carry_run` for every stored run under ``root``, teachers before students (a
    student is replayed against its teacher's carried run)."""
    runs = []
    for run_dir in find_results(root):
        try:
            runs.append((run_dir, RunResult.load(run_dir)))
        except ResultError as err:
            yield f"skipped {err}"
    teachers = {r.config.get("teacher_hash") for _, r in runs} - {None}
    runs.sort(key=lambda pair: (pair[1].config_hash not in teachers, str(pair[0])))
    for run_dir, _ in runs:
        yield carry_run(run_dir, **options)
