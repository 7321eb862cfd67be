"""Item texts and the offline text encoder (the encoder test needs the 'text' extra)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from recbole_mmkd.data import DataError
from recbole_mmkd.data.movielens import chronological_split
from recbole_mmkd.data.text import extract_text_features, item_texts

ML = ROOT / "dataset" / "ml-100k-mm"


def test_item_texts_ordered_and_complete(tmp_path):
    path = tmp_path / "items.tsv"
    pd.DataFrame({"itemID": [2, 0, 1], "title": ["c", "a", "b"], "year": ["3", "1", ""]}).to_csv(
        path, sep="\t", index=False
    )
    assert item_texts(path, ["title", "year"], 3) == ["a 1", "b", "c 3"]
    with pytest.raises(DataError, match=r"no text row for 1 itemIDs \(first: \[3\]\)"):
        item_texts(path, ["title"], 4)
    with pytest.raises(DataError, match="'plot'"):
        item_texts(path, ["plot"], 3)


def test_chronological_split():
    frame = pd.DataFrame(
        {
            "userID": [0] * 10 + [1] * 3,
            "itemID": range(13),
            "timestamp": [*range(10, 0, -1), 5, 6, 7],
        }
    )
    labels = chronological_split(frame)
    assert labels[:10].tolist() == [2, 1] + [0] * 8  # latest first in this frame
    assert labels[10:].tolist() == [0, 1, 2]


def test_shipped_ml100k_mm():
    inter = pd.read_csv(ML / "ml-100k-mm.inter", sep="\t")
    assert len(inter) == 100_000 and inter["userID"].nunique() == 943
    text = np.load(ML / "ml-100k-mm.text.npy")
    labels = np.load(ML / "ml-100k-mm.labels.npy")
    assert text.shape == (1682, 384) and labels.shape == (1682,) and labels.max() == 18
    assert np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-4)


def test_encoder_reproduces_shipped_features(tmp_path):
    pytest.importorskip("sentence_transformers", reason="needs the 'text' extra")
    folder = tmp_path / "ml-100k-mm"
    folder.mkdir()
    (folder / "ml-100k-mm.inter").write_bytes((ML / "ml-100k-mm.inter").read_bytes())
    path = extract_text_features(
        folder, "ml-100k-mm", ML / "ml-100k-mm.items.tsv", ["title", "year"]
    )
    assert np.allclose(np.load(path), np.load(ML / "ml-100k-mm.text.npy"), atol=1e-5)
