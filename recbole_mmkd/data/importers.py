"""Convert public multimodal dataset layouts into the project layout (see :mod:`.files`).

Every importer reads and validates everything first, writes into a hidden temporary folder
beside the destination, checks the result with the project loader's own checks, and only then
renames it into place: a failed import leaves nothing behind and never touches an existing
dataset (pass ``overwrite=True`` to replace one).

Supported layouts:

- ``mmrec``: MMRec (enoche/MMRec): ``<name>.inter`` (userID, itemID, x_label) plus
  ``<modality>_feat.npy`` files.
- ``sgfd``: SGFD (HuilinChenJN/SGFD): ``train.csv``/``test.csv`` (comma-separated, columns
  ``userID``, ``itemID``), ``FeatureImage_normal.npy``, ``FeatureText_normal.npy`` and
  ``MetaData_normal.npy`` (category per item; 2-d one-/multi-hot rows become their argmax).
  SGFD has no validation split: ``valid_ratio`` of each user's training rows (at least one,
  never a user's only row) become validation rows, drawn with ``seed``.
- ``mmssl``: MMSSL / PromptMM / DiffMM (HKUDS): ``train.json``/``val.json``/``test.json``
  (``{"user": [items]}``) plus ``<modality>_feat.npy`` files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mmkd.data import files
from recbole_mmkd.errors import ConfigError

logger = logging.getLogger(__name__)

FORMATS = ("mmrec", "sgfd", "mmssl")


def _feature_files(src: Path) -> dict[str, Path]:
    """``<modality>_feat.npy`` files in ``src`` (MMRec/MMSSL naming), by modality."""
    found = {p.name[: -len("_feat.npy")]: p for p in sorted(src.glob("*_feat.npy"))}
    if not found:
        logger.warning("%s: no <modality>_feat.npy files; importing interactions only", src)
    return found


def _read_mmrec(src: Path, **_: object) -> tuple[pd.DataFrame, dict[str, Path], np.ndarray | None]:
    inters = sorted(src.glob("*.inter"))
    if len(inters) != 1:
        raise files.DataError(
            src,
            "-",
            f"expected one *.inter file, found {[p.name for p in inters]}",
            "point SRC at one MMRec dataset folder",
        )
    frame = pd.read_csv(inters[0], sep="\t", dtype=str, keep_default_na=False)
    return frame, _feature_files(src), None


def _read_mmssl(src: Path, **_: object) -> tuple[pd.DataFrame, dict[str, Path], np.ndarray | None]:
    parts = []
    for split, name in enumerate(("train.json", "val.json", "test.json")):
        path = src / name
        if not path.is_file():
            raise files.DataError(
                path, "-", "file not found", "MMSSL layout needs train/val/test.json"
            )
        try:
            user_items = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise files.DataError(
                path, "-", f"not valid JSON ({err})", "re-export the split"
            ) from err
        rows = [(u, i) for u, items in user_items.items() for i in items]
        part = pd.DataFrame(rows, columns=[files.USER, files.ITEM], dtype=str)
        part[files.SPLIT] = str(split)
        parts.append(part)
    return pd.concat(parts, ignore_index=True), _feature_files(src), None


def _read_sgfd(
    src: Path, *, valid_ratio: float = 0.1, seed: int = 0, **_: object
) -> tuple[pd.DataFrame, dict[str, Path], np.ndarray | None]:
    frames = []
    for split, name in ((0, "train.csv"), (2, "test.csv")):
        path = src / name
        if not path.is_file():
            raise files.DataError(
                path, "-", "file not found", "SGFD layout needs train.csv and test.csv"
            )
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in (files.USER, files.ITEM):
            if column not in frame.columns:
                raise files.DataError(
                    path, column, "column missing", "SGFD csv files have userID,itemID"
                )
        frame = frame[[files.USER, files.ITEM]].copy()
        frame[files.SPLIT] = str(split)
        frames.append(frame)
    train, test = frames
    train[files.SPLIT] = carve_validation(train[files.USER].to_numpy(), valid_ratio, seed)
    features = {
        modality: src / f"Feature{stem}_normal.npy"
        for modality, stem in (("image", "Image"), ("text", "Text"))
        if (src / f"Feature{stem}_normal.npy").is_file()
    }
    meta = src / "MetaData_normal.npy"
    labels = _labels_from_meta(meta) if meta.is_file() else None
    return pd.concat([train, test], ignore_index=True), features, labels


def carve_validation(users: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """x_label per training row: ``ratio`` of each user's rows (rounded, at least 1 when the
    user has 2 or more rows, never all of them) become validation (1), drawn with ``seed``."""
    if not 0 < ratio < 1:
        raise ConfigError(
            "--valid-ratio", "valid_ratio", f"{ratio} is outside (0, 1)", "give 0 < ratio < 1"
        )
    rng = np.random.default_rng(seed)
    labels = np.zeros(len(users), dtype=np.int64)
    codes = pd.factorize(users)[0]
    order = np.argsort(codes, kind="stable")
    boundaries = np.flatnonzero(np.diff(codes[order])) + 1
    for rows in np.split(order, boundaries):
        if len(rows) < 2:
            continue
        n_valid = min(max(1, round(ratio * len(rows))), len(rows) - 1)
        labels[rng.choice(rows, size=n_valid, replace=False)] = 1
    return labels.astype(str)


def _labels_from_meta(path: Path) -> np.ndarray:
    meta = np.load(path, allow_pickle=True)
    if meta.ndim == 2:
        return np.asarray(meta, dtype=np.float64).argmax(axis=1)
    if meta.ndim == 1 and np.issubdtype(meta.dtype, np.integer):
        return meta.astype(np.int64)
    if meta.ndim == 1:
        _, codes = np.unique(meta.astype(str), return_inverse=True)
        return codes.astype(np.int64)
    raise files.DataError(path, "labels", f"unsupported shape {meta.shape}", "save 1-d labels")


_READERS: dict[str, Callable[..., tuple[pd.DataFrame, dict[str, Path], np.ndarray | None]]] = {
    "mmrec": _read_mmrec,
    "sgfd": _read_sgfd,
    "mmssl": _read_mmssl,
}


def import_dataset(
    fmt: str,
    src: Path,
    name: str,
    dest_root: Path,
    *,
    overwrite: bool = False,
    valid_ratio: float = 0.1,
    seed: int = 0,
) -> Path:
    """Convert the ``fmt`` layout in ``src`` into ``dest_root/name``; returns that folder."""
    if fmt not in _READERS:
        raise ConfigError("--format", "format", f"unknown {fmt!r}", f"use one of {FORMATS}")
    src, dest = Path(src), Path(dest_root) / name
    if not src.is_dir():
        raise files.DataError(
            src, "-", "source folder not found", "pass the folder holding the data"
        )
    frame, feature_paths, labels = _READERS[fmt](src, valid_ratio=valid_ratio, seed=seed)

    with files.staged_folder(dest, overwrite=overwrite) as tmp:
        files.write_interactions(frame, files.inter_path(tmp, name))
        interactions = files.read_interactions(files.inter_path(tmp, name))
        n_rows = interactions.max_item + 1
        arrays = {}
        for modality, path in feature_paths.items():
            array = files.read_features(path, modality)
            if fmt == "sgfd":  # SGFD's loader keeps only the rows of items in its csv files
                array = array[:n_rows]
            np.save(files.feature_path(tmp, name, modality), array)
            arrays[modality] = array
        n_items = files.check_item_count(
            arrays,
            {m: files.feature_path(tmp, name, m) for m in arrays},
            interactions.max_item,
            files.inter_path(tmp, name),
        )
        if labels is not None:
            np.save(files.labels_path(tmp, name), labels[:n_items])
            files.read_labels(files.labels_path(tmp, name), n_items)
    logger.info("imported %s (%s) into %s", src, fmt, dest)
    return dest
