"""Serving a trained model: its user and item tables exported for use outside this tool, and
what serving them costs, measured.

A model that scores by inner products of its tables (every project model that can teach)
serves from those tables alone once they are computed: features, graphs and layers are needed
only to compute them. :func:`export_tables` writes them with the dataset's own user and item
ids; :func:`table_bytes` and :func:`full_sort_ms` say what holding and ranking with them costs.

.. code-block:: python

    import numpy as np
    z = np.load("lightgcn-tiktok.npz")
    scores = z["user"] @ z["item"].T       # row 0 of each table is RecBole's padding
    scores[:, 0] = -np.inf
    top = np.argsort(-scores[1])[:10]      # the first real user's ten best items
    print(z["user_ids"][1], z["item_ids"][top])
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import get_model
from recbole_mmkd.pipeline import run_one
from recbole_mmkd.prepare import check_run, hashed_config
from recbole_mmkd.result import run_dir_for
from recbole_mmkd.teacher import TABLES_FILE, check_teacher


def table_bytes(user: torch.Tensor | np.ndarray, item: torch.Tensor | np.ndarray) -> int:
    """Bytes of the two tables a dot-product model serves from."""
    return sum(int(t.nbytes) for t in (user, item))


def full_sort_ms(
    user: torch.Tensor,
    item: torch.Tensor,
    *,
    users: int = 1000,
    k: int = 20,
    repeats: int = 5,
) -> float:
    """Milliseconds to rank every item for ``users`` users (their scores against the whole
    item table, then the top ``k``), the median of ``repeats`` timed passes after one untimed
    one, on the tables' device with the current torch threads. Users are the table's first
    rows (after padding), repeated when the table has fewer."""
    if not 0 < k < item.shape[0]:
        raise ValueError(f"k = {k} must lie between 0 and the {item.shape[0]} items")
    rows = torch.arange(users, device=user.device) % (user.shape[0] - 1) + 1
    batch = user[rows]
    times = []
    for attempt in range(repeats + 1):
        if batch.is_cuda:
            torch.cuda.synchronize(batch.device)
        start = time.perf_counter()
        (batch @ item.T).topk(k, dim=1)
        if batch.is_cuda:
            torch.cuda.synchronize(batch.device)
        if attempt:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def export_tables(
    model: str,
    dataset: str,
    path: str | Path,
    *,
    seed: int = 2020,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path = "results/adhoc",
    data_path: str | Path | None = None,
    properties: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write the best-state user and item tables of ``model`` trained on ``dataset`` with
    ``seed`` and ``overrides`` to ``path`` (``.npz``): ``user`` and ``item`` (row 0 of each
    is RecBole's padding), ``user_ids`` and ``item_ids`` (the dataset's ids of those rows),
    and the run's ``model``, ``dataset``, ``seed``, ``config_hash`` and test metrics
    (``test_<metric>``). The run is the one stored under ``out`` for the same settings and
    code, trained there first when it is missing or stored without its tables. Settings and
    the target file are checked before anything trains; an existing file is kept unless
    ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError("export", str(path), "exists", "choose another file, or pass --overwrite")
    common = {"data_path": data_path, "properties": properties}
    config = hashed_config(model, dataset, seed=seed, overrides=overrides, **common)
    check_teacher(get_model(model), model, source="export")  # its tables are its scores
    check_run(config)
    result = run_one(
        model, dataset, seed, Path(out), overrides=overrides, keep_tables=True,
        data_path=Path(data_path) if data_path else None, properties=properties,
    )  # fmt: skip
    run_dir = run_dir_for(Path(out), dataset, model, result.config_hash, seed)
    with np.load(run_dir / TABLES_FILE) as tables:
        user, item = tables["user"], tables["item"]
    data = MultimodalDataset(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npz")
    np.savez(
        partial,
        user=user,
        item=item,
        user_ids=np.asarray(data.field2id_token[data.uid_field]).astype(str),
        item_ids=np.asarray(data.field2id_token[data.iid_field]).astype(str),
        model=model,
        dataset=dataset,
        seed=seed,
        config_hash=result.config_hash,
        **{f"test_{metric}": value for metric, value in result.test.items()},
    )
    os.replace(partial, path)
    return path
