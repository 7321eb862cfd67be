"""Shared fixtures: small generated datasets in the project layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recbole_mmkd  # noqa: F401  (compat shims before recbole)

ROOT = Path(__file__).resolve().parent.parent
# Searches start a Ray instance of their own: without this, ``ray.init()`` joins a cluster that
# ``ray start`` left running on the machine and the tests' trials queue behind its work.
os.environ["RAY_ADDRESS"] = "local"
TIKTOK = ROOT / "dataset" / "tiktok"


def write_dataset(
    root: Path,
    name: str = "toy",
    n_users: int = 40,
    n_items: int = 30,
    per_user: int = 8,
    modalities: dict[str, int] | None = None,
    labels: int | None = 4,
    seed: int = 0,
) -> Path:
    """A dataset where user u interacts with ``per_user`` random items: the first
    ``per_user - 2`` train, then one valid and one test."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        splits = [0] * (per_user - 2) + [1, 2]
        rows += [(user, int(i), s) for i, s in zip(items, splits, strict=True)]
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).to_csv(
        folder / f"{name}.inter", sep="\t", index=False
    )
    for modality, dim in (
        modalities if modalities is not None else {"image": 8, "text": 5}
    ).items():
        np.save(
            folder / f"{name}.{modality}.npy", rng.normal(size=(n_items, dim)).astype(np.float32)
        )
    if labels:
        np.save(folder / f"{name}.labels.npy", rng.integers(0, labels, size=n_items))
    return folder


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Derived data the runs keep on disk (kNN item graphs) goes to a folder of the test
    session, not the user's ``~/.cache`` (Ray's workers inherit the variable)."""
    from recbole_mmkd.model.graph import ENV_CACHE

    os.environ[ENV_CACHE] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    """``tmp_path`` holding dataset ``toy`` (image 8-d, text 5-d, 4 labels)."""
    write_dataset(tmp_path)
    return tmp_path


def fast(**extra) -> dict:
    """Config overrides for quick test runs."""
    return {"epochs": 2, "train_batch_size": 256, "topk": [5, 10, 20], "use_gpu": False, **extra}
