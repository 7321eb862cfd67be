"""Exporting a trained model's tables, and measuring what serving them costs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.result import run_dir_for
from recbole_mmkd.serving import export_tables, full_sort_ms, table_bytes
from recbole_mmkd.teacher import TABLES_FILE


def test_export_writes_the_stored_tables_with_the_datasets_ids(toy, tmp_path):
    out, path = tmp_path / "out", tmp_path / "served" / "lightgcn.npz"
    export_tables("LightGCN", "toy", path, seed=1, overrides=fast(), out=out, data_path=toy)
    z = np.load(path)
    stored = np.load(run_dir_for(out, "toy", "LightGCN", str(z["config_hash"]), 1) / TABLES_FILE)
    assert np.array_equal(z["user"], stored["user"]) and np.array_equal(z["item"], stored["item"])
    inter = pd.read_csv(toy / "toy" / "toy.inter", sep="\t")
    assert z["user_ids"][0] == "[PAD]" and z["item_ids"][0] == "[PAD]"
    assert sorted(z["user_ids"][1:], key=int) == [str(u) for u in sorted(inter.userID.unique())]
    assert set(z["item_ids"][1:]) == {str(i) for i in inter.itemID.unique()}
    assert z["user"].shape == (len(z["user_ids"]), 64) and z["item"].shape[0] == len(z["item_ids"])
    assert 0 <= float(z["test_recall@20"]) <= 1 and str(z["model"]) == "LightGCN"
    # a second export reuses the run (nothing retrained) and keeps the file unless told
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"exists. Fix: .*--overwrite"):
        export_tables("LightGCN", "toy", path, seed=1, overrides=fast(), out=out, data_path=toy)
    assert path.read_bytes() == before
    export_tables(
        "LightGCN", "toy", path, seed=1, overrides=fast(), out=out, data_path=toy, overwrite=True
    )
    assert np.array_equal(np.load(path)["user"], z["user"])


def test_export_refuses_before_training(toy, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="does not score by inner products"):
        export_tables("MAML", "toy", tmp_path / "m.npz", overrides=fast(), out=out, data_path=toy)
    with pytest.raises(ConfigError, match="n_layer"):
        export_tables(
            "LightGCN", "toy", tmp_path / "l.npz", overrides=fast(n_layer=2), out=out,
            data_path=toy,
        )  # fmt: skip
    assert not out.exists() and not list(tmp_path.glob("*.npz"))


def test_serving_costs():
    user, item = torch.randn(11, 8), torch.randn(31, 8)
    assert table_bytes(user, item) == (11 + 31) * 8 * 4
    assert table_bytes(user.double().numpy(), item.numpy()) == 11 * 8 * 8 + 31 * 8 * 4
    assert full_sort_ms(user, item, users=50, k=5, repeats=2) > 0
    with pytest.raises(ValueError, match="k = 31"):
        full_sort_ms(user, item, k=31)


def test_what_serving_holds_leaves_out_the_transposes_only_backward_reads(toy):
    """MMGCN multiplies by its mean adjacency's stored transpose in backward alone: the model
    bytes serving holds are its parameters and buffers but that transpose."""
    from recbole_mmkd.pipeline import serving_sizes, tensor_bytes
    from recbole_mmkd.prepare import prepare

    net = prepare("MMGCN", "toy", overrides=fast(), data_path=toy).model
    assert net.backward_only_buffers == {"adjacency_t"}
    held = sum(map(tensor_bytes, (*net.parameters(), *net.buffers())))
    assert serving_sizes(net)["model"] == held - tensor_bytes(net.adjacency_t) > 0
