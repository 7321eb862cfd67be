"""Reading and validating the project's dataset layout.

A dataset ``NAME`` lives in ``<data_path>/NAME/``:

- ``NAME.inter``: tab-separated, header ``userID itemID x_label``; ids are 0-based integers and
  ``x_label`` is 0 = train, 1 = valid, 2 = test (the split is given, never re-drawn). RecBole's
  atomic-file header is read too: each name may carry a ``:type`` suffix (token, token_seq,
  float, float_seq) and ``user_id``/``item_id`` stand for userID/itemID, so
  ``user_id:token item_id:token x_label:float`` works; integral floats such as ``1.0`` are
  accepted. Other columns (``rating:float``, ``timestamp:float``, ...) are ignored.
- ``NAME.<modality>.npy``: one float row per itemID, in itemID order, any number of modalities.
- ``NAME.labels.npy`` (optional): one non-negative integer category per itemID.

Every check raises :class:`DataError`, whose message names the file, the field and the fix.
Writers (:func:`staged_folder`, :func:`write_interactions`) never leave a half-written dataset.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mmkd.errors import DataError

logger = logging.getLogger(__name__)

USER, ITEM, SPLIT = "userID", "itemID", "x_label"
SPLIT_NAMES = ("train", "valid", "test")
LABELS_SUFFIX = "labels"
RECBOLE_TYPES = ("token", "token_seq", "float", "float_seq")
RECBOLE_NAMES = {"user_id": USER, "item_id": ITEM}
HEADER_FORMS = (
    "the project header 'userID<TAB>itemID<TAB>x_label' or RecBole's "
    "'user_id:token<TAB>item_id:token<TAB>x_label:float'"
)


@dataclass(frozen=True)
class Interactions:
    """Validated interactions, ordered train, valid, test."""

    frame: pd.DataFrame  # columns userID, itemID (int64), rows ordered by split
    split_sizes: tuple[int, int, int]
    n_users: int  # max userID + 1
    max_item: int
    dropped_duplicates: int
    dropped_cold_rows: int


def inter_path(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / f"{name}.inter"


def feature_path(data_dir: Path, name: str, modality: str) -> Path:
    return Path(data_dir) / f"{name}.{modality}.npy"


def labels_path(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / f"{name}.{LABELS_SUFFIX}.npy"


def find_modalities(data_dir: Path, name: str) -> list[str]:
    """Modalities present on disk, sorted by name."""
    prefix, found = f"{name}.", []
    for path in Path(data_dir).glob(f"{name}.*.npy"):
        modality = path.name[len(prefix) : -len(".npy")]
        if modality != LABELS_SUFFIX and "." not in modality:
            found.append(modality)
    return sorted(found)


def _canonical_name(header: str) -> str:
    """A header name without its RecBole ``:type`` suffix, RecBole's id names mapped to ours."""
    base, colon, kind = header.rpartition(":")
    name = base if colon and kind in RECBOLE_TYPES else header
    return RECBOLE_NAMES.get(name, name)


def _key_columns(headers: list[str], path: Path) -> dict[str, str]:
    """Map the header names that stand for userID, itemID and x_label to those names."""
    found: dict[str, str] = {}
    for header in headers:
        name = _canonical_name(header)
        if name not in (USER, ITEM, SPLIT):
            continue
        if name in found:
            raise DataError(
                path,
                name,
                f"columns '{found[name]}' and '{header}' both stand for {name}",
                f"keep one of them; use {HEADER_FORMS}",
            )
        found[name] = header
    return {header: name for name, header in found.items()}


def _integer_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != np.floor(values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        fix = (
            "mark each row 0 = train, 1 = valid, 2 = test (integral floats like 1.0 are fine)"
            if column == SPLIT
            else "write 0-based integer ids; convert raw ids with `run_benchmark.py import`"
        )
        raise DataError(
            path,
            column,
            f"{int(bad.sum())} value(s) are not integers (first at data line {row + 2}: "
            f"{frame[column].iloc[row]!r})",
            fix,
        )
    values = values.to_numpy(dtype=np.int64)
    if (values < 0).any():
        row = int(np.flatnonzero(values < 0)[0])
        raise DataError(
            path,
            column,
            f"negative value {values[row]} at data line {row + 2}",
            "ids must be 0-based non-negative integers",
        )
    return values


def read_interactions(path: Path) -> Interactions:
    """Read and validate ``NAME.inter``.

    Duplicate (user, item) pairs keep their first occurrence in split order (train, then valid,
    then test) and the rest are dropped: a pair already seen in training is masked at evaluation,
    so a later copy could never be hit. Valid/test rows of users with no training interaction are
    dropped (MMRec's protocol: a model cannot rank for a user it has never seen). Both counts are
    logged and returned.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path,
            "-",
            "file not found",
            "create it with columns userID, itemID, x_label (RecBole's user_id:token, "
            "item_id:token, x_label:float work too) or convert a public "
            "dataset with `python run_benchmark.py import --format mmrec SRC NAME`",
        )
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    headers = list(frame.columns)
    frame = frame.rename(columns=_key_columns(headers, path))
    for column in (USER, ITEM, SPLIT):
        if column not in frame.columns:
            raise DataError(
                path,
                column,
                f"column missing (header is {headers})",
                f"use a tab-separated header: {HEADER_FORMS}",
            )
    users, items, split = (_integer_column(frame, c, path) for c in (USER, ITEM, SPLIT))
    if not np.isin(split, (0, 1, 2)).all():
        row = int(np.flatnonzero(~np.isin(split, (0, 1, 2)))[0])
        raise DataError(
            path,
            SPLIT,
            f"value {split[row]} at data line {row + 2} is not 0, 1 or 2",
            "mark each row 0 = train, 1 = valid, 2 = test",
        )
    for label, name in ((0, "train"), (1, "valid"), (2, "test")):
        if not (split == label).any():
            raise DataError(
                path,
                SPLIT,
                f"no {name} rows (x_label == {label})",
                f"every dataset needs train, valid and test rows; carve a {name} split out "
                "(the importers do: `run_benchmark.py import --valid-ratio`)",
            )

    data = pd.DataFrame({USER: users, ITEM: items, SPLIT: split})
    data = data.sort_values(SPLIT, kind="stable")
    duplicated = data.duplicated([USER, ITEM], keep="first")
    n_dup = int(duplicated.sum())
    if n_dup:
        logger.warning(
            "%s: dropped %d duplicate (userID, itemID) rows, keeping each pair's first "
            "occurrence in train/valid/test order",
            path,
            n_dup,
        )
        data = data[~duplicated]
    train_users = np.unique(data.loc[data[SPLIT] == 0, USER].to_numpy())
    cold = (data[SPLIT] > 0) & ~data[USER].isin(train_users)
    n_cold = int(cold.sum())
    if n_cold:
        logger.info(
            "%s: dropped %d valid/test rows of %d users with no training interaction",
            path,
            n_cold,
            data.loc[cold, USER].nunique(),
        )
        data = data[~cold]
    sizes = tuple(int((data[SPLIT] == label).sum()) for label in (0, 1, 2))
    for size, name in zip(sizes[1:], ("valid", "test"), strict=True):
        if size == 0:
            raise DataError(
                path,
                SPLIT,
                f"no {name} rows are left after dropping users with no training interaction",
                f"give the {name} users some training interactions",
            )
    return Interactions(
        frame=data[[USER, ITEM]].reset_index(drop=True),
        split_sizes=sizes,  # type: ignore[arg-type]
        n_users=int(users.max()) + 1,
        max_item=int(items.max()),
        dropped_duplicates=n_dup,
        dropped_cold_rows=n_cold,
    )


def read_features(path: Path, modality: str) -> np.ndarray:
    """Load one modality's ``.npy`` as a finite float32 matrix (items x dim)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path,
            modality,
            f"modality '{modality}' is named in the config but its file is missing",
            f"add {path.name} (one row per itemID) or remove '{modality}' from `modalities`",
        )
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(
            path, modality, f"not a plain numpy array ({err})", "save it with numpy.save"
        ) from err
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise DataError(
            path,
            modality,
            f"expected a 2-d numeric array, got shape {array.shape} dtype {array.dtype}",
            "save one float row per itemID",
        )
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise DataError(
            path,
            modality,
            f"{rows.size} row(s) hold NaN or inf (first itemIDs: {rows[:5].tolist()})",
            "impute those rows (e.g. with the modality's mean) or mark the items as missing "
            "the modality; NaN features would poison every gradient",
        )
    return array


def read_labels(path: Path, n_items: int) -> np.ndarray:
    """Load ``NAME.labels.npy``: one non-negative integer category per itemID."""
    path = Path(path)
    labels = np.load(path, allow_pickle=False)
    if labels.ndim != 1 or labels.shape[0] != n_items:
        raise DataError(
            path,
            "labels",
            f"shape {labels.shape} but the dataset has {n_items} items",
            f"save a 1-d array of {n_items} integer labels, one per itemID in itemID order",
        )
    if not np.issubdtype(labels.dtype, np.integer) or (labels < 0).any():
        raise DataError(
            path,
            "labels",
            f"dtype {labels.dtype}, min {labels.min()}: labels must be non-negative integers",
            "map each category to 0..n_classes-1 and save with dtype int64",
        )
    return labels.astype(np.int64)


def check_item_count(
    features: dict[str, np.ndarray], paths: dict[str, Path], max_item: int, inter: Path
) -> int:
    """Number of items: the feature matrices' common row count, or max itemID + 1 without any."""
    if not features:
        return max_item + 1
    counts = {modality: array.shape[0] for modality, array in features.items()}
    n_items = max(counts.values())
    for modality, rows in counts.items():
        if rows != n_items:
            raise DataError(
                paths[modality],
                modality,
                f"{rows} rows but other modalities have {n_items} ({counts})",
                "every feature file needs exactly one row per itemID, in itemID order",
            )
    if max_item >= n_items:
        raise DataError(
            inter,
            ITEM,
            f"itemID {max_item} is out of range for feature files with {n_items} rows",
            "feature files need one row per itemID (0..max itemID); re-export them or drop "
            "the interactions of items without features",
        )
    return n_items


@contextmanager
def staged_folder(dest: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temporary sibling of ``dest`` to write a dataset into; it replaces ``dest`` only when
    the block finishes without an error, and is removed in every case."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise DataError(dest, "-", "exists already", "pass --overwrite to replace it")
    tmp = dest.with_name(f".{dest.name}.staging")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_interactions(frame: pd.DataFrame, path: Path) -> None:
    """Write the ``userID itemID x_label`` columns of ``frame`` as a project ``.inter`` file."""
    frame[[USER, ITEM, SPLIT]].to_csv(path, sep="\t", index=False)
