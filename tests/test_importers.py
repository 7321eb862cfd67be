"""Importers: public layouts -> project layout, validated, atomic, never half-written."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from recbole_mmkd.data import DataError, files
from recbole_mmkd.data.importers import carve_validation, import_dataset


def _mmrec_source(folder, n_items=12, rows=None):
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows or [
        (u, (u * 3 + k) % n_items, lab) for u in range(6) for k, lab in enumerate([0, 0, 0, 1, 2])
    ]
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).to_csv(
        folder / "src.inter", sep="\t", index=False
    )
    rng = np.random.default_rng(0)
    np.save(folder / "image_feat.npy", rng.normal(size=(n_items, 4)).astype(np.float16))
    np.save(folder / "text_feat.npy", rng.normal(size=(n_items, 3)).astype(np.float32))
    return folder


def test_mmrec(tmp_path):
    src = _mmrec_source(tmp_path / "src")
    dest = import_dataset("mmrec", src, "mini", tmp_path / "out")
    assert files.find_modalities(dest, "mini") == ["image", "text"]
    image = files.read_features(files.feature_path(dest, "mini", "image"), "image")
    assert np.allclose(image, np.load(src / "image_feat.npy").astype(np.float32))
    inter = files.read_interactions(files.inter_path(dest, "mini"))
    assert inter.split_sizes == (18, 6, 6)


def test_shipped_tiktok_matches_shared_copy():
    shared = ROOT.parent / "shared" / "data" / "tiktok"
    if not shared.is_dir():
        pytest.skip("../shared is not beside this checkout")
    for modality in ("image", "audio"):
        ours = np.load(ROOT / "dataset" / "tiktok" / f"tiktok.{modality}.npy")
        assert np.array_equal(ours, np.load(shared / f"{modality}_feat.npy").astype(np.float32))
    ours = pd.read_csv(ROOT / "dataset" / "tiktok" / "tiktok.inter", sep="\t")
    theirs = pd.read_csv(shared / "tiktok.inter", sep="\t")
    assert ours.equals(theirs)


def test_failed_import_writes_nothing_and_keeps_existing(tmp_path):
    good = _mmrec_source(tmp_path / "good")
    dest = import_dataset("mmrec", good, "mini", tmp_path / "out")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}

    bad = _mmrec_source(tmp_path / "bad")
    features = np.load(bad / "text_feat.npy")
    features[3, 0] = np.nan
    np.save(bad / "text_feat.npy", features)
    with pytest.raises(DataError, match="NaN"):
        import_dataset("mmrec", bad, "mini", tmp_path / "out", overwrite=True)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mini"]

    with pytest.raises(DataError, match="--overwrite"):
        import_dataset("mmrec", good, "mini", tmp_path / "out")


def test_mmssl(tmp_path):
    src = tmp_path / "mmssl"
    src.mkdir()
    train = {"0": [0, 1, 2], "1": [2, 3], "2": [4, 5]}
    (src / "train.json").write_text(json.dumps(train))
    (src / "val.json").write_text(json.dumps({"0": [3], "1": [4]}))
    (src / "test.json").write_text(json.dumps({"0": [5], "2": [1]}))
    np.save(src / "image_feat.npy", np.ones((6, 2), np.float32))
    dest = import_dataset("mmssl", src, "m", tmp_path / "out")
    inter = files.read_interactions(files.inter_path(dest, "m"))
    assert inter.split_sizes == (7, 2, 2)


def test_sgfd_carves_validation_and_reads_labels(tmp_path):
    src = tmp_path / "sgfd"
    src.mkdir()
    train = [(u, (u + k) % 10) for u in range(5) for k in range(6)]
    test = [(u, (u + 7) % 10) for u in range(5)]
    for name, rows in (("train.csv", train), ("test.csv", test)):
        frame = pd.DataFrame(rows, columns=["userID", "itemID"])
        frame["asin"] = "x"
        frame[["itemID", "userID", "asin"]].to_csv(src / name, index=False)
    np.save(src / "FeatureImage_normal.npy", np.ones((12, 3), np.float32))  # extra rows are cut
    np.save(src / "FeatureText_normal.npy", np.ones((12, 2), np.float32))
    np.save(src / "MetaData_normal.npy", np.eye(3)[np.arange(12) % 3])  # one-hot categories
    dest = import_dataset("sgfd", src, "s", tmp_path / "out", valid_ratio=0.2, seed=3)
    inter = files.read_interactions(files.inter_path(dest, "s"))
    assert inter.split_sizes == (25, 5, 5)  # 20% of each user's 6 training rows, rounded
    labels = files.read_labels(files.labels_path(dest, "s"), 10)
    assert labels.tolist() == [i % 3 for i in range(10)]
    assert np.load(files.feature_path(dest, "s", "image")).shape == (10, 3)


def test_carve_validation_is_seeded_and_keeps_training_rows():
    users = np.repeat(np.arange(50), np.arange(1, 51))
    first = carve_validation(users, 0.1, seed=1)
    assert np.array_equal(first, carve_validation(users, 0.1, seed=1))
    assert not np.array_equal(first, carve_validation(users, 0.1, seed=2))
    for user in range(50):
        labels = first[users == user]
        assert (labels == "0").any()
        assert (labels == "1").sum() == (0 if user == 0 else max(1, round(0.1 * (user + 1))))


def test_cli_error_is_one_line(tmp_path):
    bad = _mmrec_source(tmp_path / "bad")
    np.save(bad / "image_feat.npy", np.ones((5, 4), np.float32))  # fewer rows than items
    script = str(ROOT / "run_benchmark.py")
    cmd = [sys.executable, script, "import", "--format", "mmrec", str(bad), "x"]
    cmd += ["--dest", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "'image'" in last and "Fix:" in last
    assert not (tmp_path / "out" / "x").exists()
