"""Teacher artefacts: what a teacher run leaves for its students, and the typed reference a
student's config carries to them.

A teacher run (``keep_tables`` in :func:`recbole_mmkd.pipeline.run_one`) stores, beside its
RunResult, the best state's user and item tables (``representations.npz``) and parameters
(``state.npz``). A student's config names the teacher run by two keys the pipeline sets:
``teacher_run`` (its folder; not hashed) and ``teacher_hash`` (its config hash, which enters
the student's). :meth:`TeacherRef.from_config` turns them into one typed reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.base import MMKDRecommender

TABLES_FILE = "representations.npz"  # a teacher run's best-state (user, item) tables
STATE_FILE = "state.npz"  # a teacher run's best-state parameters and persistent buffers


def check_teacher(model_class: type, name: str, *, source: str = "teacher") -> None:
    """Refuse a model that cannot teach: teachers give user and item tables whose inner
    products are their scores (project models); RecBole's own models give no tables, and a
    model that scores otherwise (MAML's user-specific distances) stores tables a student
    would misread."""
    if not issubclass(model_class, MMKDRecommender):
        raise ConfigError(
            source,
            name,
            "cannot be a teacher: teachers are project models whose forward() returns user "
            "and item tables, and RecBole's own models do not",
            "name a project model (e.g. LightGCN, FREEDOM) as the teacher",
        )
    if not model_class.dot_product_scores:
        raise ConfigError(
            source,
            name,
            "cannot be a teacher: it does not score by inner products of its user and item "
            "tables, which is what every student reads of a stored teacher",
            "name a model that does (e.g. LightGCN, FREEDOM) as the teacher",
        )


@dataclass(frozen=True)
class TeacherRef:
    """A stored teacher run: its model name, config hash and folder."""

    model: str
    config_hash: str
    run_dir: Path

    @classmethod
    def from_config(cls, config: Any) -> TeacherRef:
        if not config["teacher_run"]:
            raise ConfigError(
                "config",
                "teacher_run",
                f"{config['model']} distils from a stored teacher run, and none is set",
                "run students through recbole_mmkd.run / pipeline.run_one, which trains (or "
                "reuses) the teacher named by 'teacher' first",
            )
        return cls(config["teacher"], config["teacher_hash"], Path(config["teacher_run"]))

    def keys(self) -> dict[str, str]:
        """The config keys that point a student at this teacher."""
        return {"teacher_run": str(self.run_dir), "teacher_hash": self.config_hash}

    def stored(self) -> bool:
        return all((self.run_dir / name).is_file() for name in (TABLES_FILE, STATE_FILE))

    def _arrays(self, name: str) -> dict[str, np.ndarray]:
        path = self.run_dir / name
        if not path.is_file():
            raise FileNotFoundError(
                f"teacher artefact {path} does not exist: students get it from "
                f"pipeline.run_one, which trains (or reuses) the teacher first"
            )
        with np.load(path) as arrays:
            return {k: arrays[k] for k in arrays.files}

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's best-state (user, item) representation tables."""
        arrays = self._arrays(TABLES_FILE)
        return torch.from_numpy(arrays["user"]), torch.from_numpy(arrays["item"])

    def state(self) -> dict[str, torch.Tensor]:
        """The teacher's best-state parameters and persistent buffers."""
        return {k: torch.from_numpy(v) for k, v in self._arrays(STATE_FILE).items()}


def teacher_arrays(net: MMKDRecommender) -> dict[str, dict[str, np.ndarray]]:
    """What a teacher run stores: ``{file name: {key: array}}`` of its best state."""
    net.eval()
    with torch.no_grad():
        users, items = net.representations()
    state = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    return {
        TABLES_FILE: {"user": users.detach().cpu().numpy(), "item": items.detach().cpu().numpy()},
        STATE_FILE: state,
    }
