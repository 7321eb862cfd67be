"""Build ``ml-100k-mm`` from the ml-100k copy that ships inside the recbole package.

- Interactions: every rating is an interaction; users and items are renumbered 0..n-1 in
  raw-id order; each user's ratings are split chronologically (ties by item) 80/10/10, with at
  least one valid and one test rating (ml-100k users have 20 ratings or more).
- ``text`` modality: "<title> (<year>)" embedded with all-MiniLM-L6-v2 (:mod:`.text`).
- Labels: each movie's first genre (19 genres, ``unknown`` included), as listed in
  ``ml-100k-mm.labels.json``.
- ``ml-100k-mm.items.tsv`` keeps the item texts, so ``extract-text-features`` can rebuild
  the ``text`` modality from the shipped folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import recbole

from recbole_mmkd.data import files
from recbole_mmkd.data.text import encode_texts, item_texts

NAME = "ml-100k-mm"
SOURCE = Path(recbole.__file__).parent / "dataset_example" / "ml-100k"


def chronological_split(
    frame: pd.DataFrame, *, valid: float = 0.1, test: float = 0.1
) -> np.ndarray:
    """x_label per row: per user, by time, the last ``test`` share is test, the ``valid`` share
    before it is valid (each at least one row), the rest train."""
    order = frame.sort_values([files.USER, "timestamp", files.ITEM], kind="stable")
    labels = pd.Series(0, index=order.index)
    for _, rows in order.groupby(files.USER, sort=False):
        n = len(rows)
        n_test = max(1, round(test * n))
        n_valid = max(1, round(valid * n))
        labels.loc[rows.index[n - n_test :]] = 2
        labels.loc[rows.index[n - n_test - n_valid : n - n_test]] = 1
    return labels.loc[frame.index].to_numpy()


def build(dest_root: Path, *, overwrite: bool = False) -> Path:
    dest = Path(dest_root) / NAME
    inter = pd.read_csv(SOURCE / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    item = pd.read_csv(SOURCE / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    item.columns = [c.split(":")[0] for c in item.columns]

    users = np.sort(inter["user_id"].unique())
    raw_items = np.sort(item["item_id"].astype(int).unique())
    frame = pd.DataFrame(
        {
            files.USER: np.searchsorted(users, inter["user_id"]),
            files.ITEM: np.searchsorted(raw_items, inter["item_id"]),
            "timestamp": inter["timestamp"],
        }
    )
    frame[files.SPLIT] = chronological_split(frame)

    item = item.assign(itemID=np.searchsorted(raw_items, item["item_id"].astype(int)))
    item = item.sort_values(files.ITEM)
    genres = item["class"].str.split(" ").str[0].replace("", "unknown")
    genre_names = sorted(genres.unique())
    texts = pd.DataFrame(
        {
            files.ITEM: item[files.ITEM],
            "title": item["movie_title"],
            "year": item["release_year"].map(lambda y: f"({y})" if y else ""),
            "genre": genres,
        }
    )

    with files.staged_folder(dest, overwrite=overwrite) as tmp:
        files.write_interactions(frame, files.inter_path(tmp, NAME))
        texts.to_csv(tmp / f"{NAME}.items.tsv", sep="\t", index=False)
        n_items = len(raw_items)
        np.save(files.labels_path(tmp, NAME), np.searchsorted(genre_names, genres).astype(np.int64))
        (tmp / f"{NAME}.labels.json").write_text(json.dumps(genre_names, indent=1))
        features = encode_texts(item_texts(tmp / f"{NAME}.items.tsv", ["title", "year"], n_items))
        np.save(files.feature_path(tmp, NAME, "text"), features)
        files.read_interactions(files.inter_path(tmp, NAME))
        files.read_labels(files.labels_path(tmp, NAME), n_items)
    return dest
