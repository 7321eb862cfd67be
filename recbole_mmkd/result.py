"""RunResult: everything one (dataset, model, config, seed) run produced, on disk.

A run directory holds ``result.json`` (config, curves, means, timings) and ``per_user.npz``
(the raw user ids of the test users and one metric vector per metric, aligned with them). It is
written to a temporary sibling and renamed into place, so a reader sees a whole run or none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zipfile
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recbole_mmkd.errors import MMKDError

logger = logging.getLogger(__name__)
RESULT_FILE = "result.json"
PER_USER_FILE = "per_user.npz"


@dataclass
class RunResult:
    dataset: str
    model: str
    seed: int
    config_hash: str
    config: dict[str, Any]
    valid_metric: str
    best_epoch: int
    epochs_run: int
    valid_curve: list[dict[str, float]]
    best_valid: dict[str, float]
    test: dict[str, float]
    n_params: int
    train_seconds: float
    valid_seconds: float
    test_seconds: float
    n_test_users: int
    data_summary: dict[str, Any]
    environment: dict[str, str]
    model_info: dict[str, Any] = field(default_factory=dict)
    # multimodal models: test means per (modality, share of items missing it)
    robustness: list[dict[str, Any]] = field(default_factory=list)
    # the code that made it (identity.code_info); runs made before this was recorded: {}
    code: dict[str, Any] = field(default_factory=dict)
    # bytes inference holds (pipeline.serving_sizes): `model` (its parameters and buffers:
    # features, graphs) and `tables` (its user and item tables); runs before this: {}
    serving: dict[str, int] = field(default_factory=dict)
    # each move to new code by an identical fingerprint (recbole_mmkd.carry), oldest first
    carried: list[dict[str, Any]] = field(default_factory=list)
    # "" when the run trained its model; else the search trial that trained it, the same
    # settings and seed, whose trained state the run adopted (pipeline.leave_trained)
    trained_by: str = ""
    test_user_ids: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    test_per_user: dict[str, np.ndarray] = field(repr=False, default_factory=dict)

    @property
    def test_seconds_per_1k_users(self) -> float:
        return 1000.0 * self.test_seconds / max(self.n_test_users, 1)

    def save(
        self, run_dir: Path, *, arrays: dict[str, dict[str, np.ndarray]] | None = None
    ) -> Path:
        """Write atomically into ``run_dir`` (replacing an older result there), with extra
        ``arrays`` files (``{file name: {key: array}}``, e.g. a teacher's representations)."""
        run_dir = Path(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = run_dir.with_name(f".{run_dir.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        meta = asdict(self)
        meta.pop("test_user_ids")
        meta.pop("test_per_user")
        (tmp / RESULT_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
        np.savez_compressed(tmp / PER_USER_FILE, user_ids=self.test_user_ids, **self.test_per_user)
        for name, content in (arrays or {}).items():
            np.savez(tmp / name, **content)
        if run_dir.exists():
            old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
            run_dir.rename(old)
            tmp.rename(run_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(run_dir)
        return run_dir

    @classmethod
    def load(cls, run_dir: Path) -> RunResult:
        """The run stored in ``run_dir``; :class:`ResultError` naming the file where it is
        truncated, corrupt or not a RunResult."""
        run_dir = Path(run_dir)
        path = run_dir / RESULT_FILE
        try:
            meta = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ResultError(path, f"unreadable ({err})") from None
        if not isinstance(meta, dict):
            raise ResultError(path, "not a RunResult (no JSON object)")
        missing = sorted(cls.__dataclass_fields__.keys() - meta.keys() - _OPTIONAL)
        unknown = sorted(meta.keys() - cls.__dataclass_fields__.keys())
        if missing or unknown:
            raise ResultError(path, f"not a RunResult (missing {missing}, unknown {unknown})")
        arrays_path = run_dir / PER_USER_FILE
        try:
            with np.load(arrays_path) as arrays:
                meta["test_user_ids"] = arrays["user_ids"]
                meta["test_per_user"] = {k: arrays[k] for k in arrays.files if k != "user_ids"}
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ResultError(arrays_path, f"unreadable ({err})") from None
        return cls(**meta)


class ResultError(MMKDError):
    """A stored RunResult that cannot be read: names the file and says what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}. Fix: delete its run folder ({Path(path).parent}); "
            "`run` trains it again"
        )
        self.path = Path(path)
        self._init_args = (path, problem)


_OPTIONAL = {
    name
    for name, f in RunResult.__dataclass_fields__.items()
    if f.default is not MISSING or f.default_factory is not MISSING
}


def run_dir_for(root: Path, dataset: str, model: str, config_hash: str, seed: int) -> Path:
    return Path(root) / dataset / model / config_hash / f"seed-{seed}"


def find_results(root: Path) -> list[Path]:
    """Every run directory under ``root``: ``<dataset>/<model>/<hash>/seed-<n>`` folders
    holding a RunResult (temporary ones are hidden, so skipped; Ray's trial folders under a
    sweep hold a ``result.json`` of their own and are not runs)."""
    return sorted(
        p.parent for p in Path(root).rglob(RESULT_FILE) if p.parent.name.startswith("seed-")
    )


def load_results(root: Path) -> list[RunResult]:
    """Every readable RunResult under ``root``; an unreadable one is named in a warning and
    skipped."""
    results = []
    for path in find_results(root):
        try:
            results.append(RunResult.load(path))
        except ResultError as err:
            logger.warning("skipped: %s", err)
    return results
