"""Running a stored run's own code beside the current code: the commit a RunResult records
(``code.git_commit``) checked out in a temporary git worktree, and a fingerprint replay there in
a subprocess that imports the package from it (:func:`replay_at`).

A replay on another processor cannot reproduce a run's stored fingerprint bit for bit (float
sums follow the processor's vector kernels and BLAS paths), but the run's code and the current
code replayed on the same processor can be compared bit for bit: identical fingerprints there
show the change between them computes the same numbers, which is what carrying a run claims
(:func:`recbole_mmkd.carry.carry_run`).
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from recbole_mmkd.config import PACKAGE
from recbole_mmkd.errors import MMKDError

CHECKOUT = PACKAGE.parent  # the source checkout the package runs from

# Run under the past code: the fingerprint of a stored run, as that code's carry replays it.
_REPLAY = """
import json, sys
from pathlib import Path
import recbole_mmkd
from recbole_mmkd.carry import replay, replay_config
from recbole_mmkd.result import RunResult
run_dir, epochs, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
data_path = sys.argv[4] or None
result = RunResult.load(run_dir)
config = replay_config(result, run_dir.parents[3], data_path=data_path)
curve = replay(config, seed=result.seed, epochs=epochs, threads=threads)
print("FINGERPRINT " + json.dumps(curve))
"""

# Run under the past code: a config's hash, and the fingerprint of a run of it (a sweep's
# point, which no stored RunResult holds), from a JSON spec.
_REPLAY_CONFIG = """
import json, sys
from recbole_mmkd.carry import replay
from recbole_mmkd.identity import config_hash
from recbole_mmkd.prepare import hashed_config
spec = json.loads(sys.argv[1])
def config(overrides):
    return hashed_config(spec["model"], spec["dataset"], seed=spec["seed"], overrides=overrides,
                         data_path=spec["data_path"])
print("HASH " + config_hash(config(spec["fixed"])))
if spec["epochs"]:
    run = config({**spec["fixed"], **spec["point"]})
    curve = replay(run, seed=spec["seed"], epochs=spec["epochs"], threads=spec["threads"])
    print("FINGERPRINT " + json.dumps(curve))
"""


class PastCodeError(MMKDError):
    """A past commit that cannot be checked out or replayed here."""


def clean_commit(code: dict[str, Any]) -> str | None:
    """The commit a RunResult's ``code`` names, when the run's package had no uncommitted
    change (None otherwise: that code cannot be checked out again)."""
    commit = (code or {}).get("git_commit")
    return commit if commit and not commit.endswith("+dirty") else None


@cache
def commit_tree(commit: str) -> Path:
    """A read-only worktree of ``commit`` of this checkout, removed when the process exits."""
    if not (CHECKOUT / ".git").exists():
        raise PastCodeError(f"the package does not run from a git checkout ({CHECKOUT})")
    folder = Path(tempfile.mkdtemp(prefix="recbole-mmkd-")) / commit[:12]
    git = ["git", "-C", str(CHECKOUT)]
    done = subprocess.run(
        [*git, "worktree", "add", "--detach", str(folder), commit], capture_output=True, text=True
    )
    if done.returncode:
        raise PastCodeError(f"commit {commit[:12]} cannot be checked out: {done.stderr.strip()}")
    atexit.register(subprocess.run, [*git, "worktree", "remove", "--force", str(folder)],
                    capture_output=True)  # fmt: skip
    return folder


def replay_at(
    commit: str, run_dir: Path, *, epochs: int, threads: int, data_path: Any = None
) -> list[dict[str, float]]:
    """The fingerprint of the stored run in ``run_dir`` replayed by ``commit``'s code (its own
    properties and datasets), on this processor."""
    args = [str(run_dir), str(epochs), str(threads), str(data_path or "")]
    lines = _run_at(commit, _REPLAY, args, threads=threads)
    return json.loads(lines["FINGERPRINT"])


def config_at(
    commit: str,
    model: str,
    dataset: str,
    *,
    seed: int,
    fixed: dict[str, Any],
    point: dict[str, Any] | None = None,
    epochs: int = 0,
    threads: int = 1,
    data_path: Any = None,
) -> tuple[str, list[dict[str, float]] | None]:
    """Under ``commit``'s code (its own properties and datasets): the config hash of ``model``
    on ``dataset`` with the settings ``fixed`` (code and data included: equal to a stored hash
    only where that code made it), and with ``epochs`` the fingerprint of a run at ``fixed``
    updated by ``point`` and ``seed``, on this processor (None without)."""
    spec = {"model": model, "dataset": dataset, "seed": seed, "fixed": fixed,
            "point": point or {}, "epochs": epochs, "threads": threads,
            "data_path": str(data_path) if data_path else None}  # fmt: skip
    lines = _run_at(commit, _REPLAY_CONFIG, [json.dumps(spec)], threads=threads)
    curve = lines.get("FINGERPRINT")
    return lines["HASH"], None if curve is None else json.loads(curve)


def _run_at(commit: str, script: str, args: list[str], *, threads: int) -> dict[str, str]:
    """Run ``script`` under ``commit``'s code in a subprocess; its output lines ``KEY value``,
    by key."""
    tree = commit_tree(commit)
    path = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env=env, cwd=tree)  # fmt: skip
    lines = dict(
        line.split(" ", 1) for line in done.stdout.splitlines()
        if line.startswith(("FINGERPRINT ", "HASH "))
    )  # fmt: skip
    if done.returncode or not lines:
        raise PastCodeError(
            f"the replay under commit {commit[:12]} failed: {done.stderr.strip()[-500:]}"
        )
    return lines
