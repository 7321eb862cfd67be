"""Bad input: each case gets a one-line error naming the file, the field and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import write_dataset

from recbole_mmkd.data import files
from recbole_mmkd.data.files import DataError


def _inter(folder, name="toy"):
    return files.inter_path(folder / name, name)


def _rewrite_inter(folder, mutate, name="toy"):
    path = _inter(folder, name)
    frame = pd.read_csv(path, sep="\t", dtype=str)
    mutate(frame)
    frame.to_csv(path, sep="\t", index=False)
    return path


def _assert_one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert "Fix:" in message
    for needle in needles:
        assert needle in message, message


def test_reads_valid_layout(toy):
    inter = files.read_interactions(_inter(toy))
    assert inter.split_sizes == (40 * 6, 40, 40)
    assert inter.n_users == 40 and inter.max_item <= 29
    assert list(inter.frame.columns) == ["userID", "itemID"]


def test_non_integer_ids(toy):
    path = _rewrite_inter(
        toy, lambda f: f.__setitem__("itemID", f["itemID"].where(f.index != 3, "12.5"))
    )
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, str(path), "'itemID'", "not integers", "line 5")


def test_string_user_ids(toy):
    path = _rewrite_inter(
        toy, lambda f: f.__setitem__("userID", f["userID"].where(f.index != 0, "alice"))
    )
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, "'userID'", "'alice'", "run_benchmark.py import")


def test_negative_ids(toy):
    path = _rewrite_inter(
        toy, lambda f: f.__setitem__("userID", f["userID"].where(f.index != 0, "-1"))
    )
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, "'userID'", "negative")


def test_item_out_of_range_for_features(toy):
    path = _rewrite_inter(
        toy, lambda f: f.__setitem__("itemID", f["itemID"].where(f.index != 0, "30"))
    )
    inter = files.read_interactions(path)
    feats = {"image": np.zeros((30, 2), np.float32)}
    with pytest.raises(DataError) as err:
        files.check_item_count(
            feats, {"image": toy / "toy" / "toy.image.npy"}, inter.max_item, path
        )
    _assert_one_line(err, "'itemID'", "itemID 30 is out of range", "30 rows")


@pytest.mark.parametrize(("label", "name"), [(1, "valid"), (2, "test")])
def test_missing_valid_or_test_rows(toy, label, name):
    path = _rewrite_inter(
        toy, lambda f: f.__setitem__("x_label", f["x_label"].replace(str(label), "0"))
    )
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, "'x_label'", f"no {name} rows")


def test_unknown_split_label(toy):
    path = _rewrite_inter(
        toy, lambda f: f.__setitem__("x_label", f["x_label"].where(f.index != 0, "3"))
    )
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, "'x_label'", "not 0, 1 or 2")


def test_missing_column(toy):
    path = _rewrite_inter(toy, lambda f: f.drop(columns=["x_label"], inplace=True))
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, "'x_label'", "column missing", "userID<TAB>", "user_id:token<TAB>")


RECBOLE_HEADER = {"userID": "user_id:token", "itemID": "item_id:token", "x_label": "x_label:float"}


def _as_recbole(frame: pd.DataFrame) -> None:
    """Rewrite ``frame`` in place as a RecBole atomic file: typed names, x_label as floats."""
    frame["x_label"] = frame["x_label"] + ".0"
    frame.rename(columns=RECBOLE_HEADER, inplace=True)


def _assert_same_interactions(left: files.Interactions, right: files.Interactions) -> None:
    pd.testing.assert_frame_equal(left.frame, right.frame)
    assert left.split_sizes == right.split_sizes
    assert (left.n_users, left.max_item) == (right.n_users, right.max_item)


def test_reads_recbole_header(toy):
    expected = files.read_interactions(_inter(toy))
    path = _rewrite_inter(toy, _as_recbole)
    assert path.read_text().startswith("user_id:token\titem_id:token\tx_label:float\n")
    _assert_same_interactions(files.read_interactions(path), expected)


def test_reads_recbole_header_with_extra_typed_columns(toy):
    expected = files.read_interactions(_inter(toy))

    def add_columns(frame: pd.DataFrame) -> None:
        _as_recbole(frame)
        frame.insert(2, "rating:float", "4.5")
        frame["timestamp:float"] = [str(978300760.0 + row) for row in range(len(frame))]

    _assert_same_interactions(files.read_interactions(_rewrite_inter(toy, add_columns)), expected)


@pytest.mark.parametrize(
    "header",
    [
        ["userID:token", "itemID:token", "x_label:token"],
        ["user_id", "item_id", "x_label"],
        ["userID", "item_id:token", "x_label:float"],
    ],
)
def test_reads_mixed_header_forms(toy, header):
    expected = files.read_interactions(_inter(toy))
    path = _rewrite_inter(toy, lambda f: setattr(f, "columns", header))
    assert path.read_text().split("\n", 1)[0] == "\t".join(header)
    _assert_same_interactions(files.read_interactions(path), expected)


def test_ambiguous_header(toy):
    path = _rewrite_inter(toy, lambda f: f.insert(1, "user_id:token", f["userID"]))
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, str(path), "'userID'", "'user_id:token'", "keep one of them")


def test_non_integral_float_split_label(toy):
    def half_label(frame: pd.DataFrame) -> None:
        _as_recbole(frame)
        frame["x_label:float"] = frame["x_label:float"].where(frame.index != 2, "0.5")

    path = _rewrite_inter(toy, half_label)
    with pytest.raises(DataError) as err:
        files.read_interactions(path)
    _assert_one_line(err, str(path), "'x_label'", "not integers", "'0.5'", "line 4")


def test_duplicates_keep_first_in_split_order(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    rows = [(0, 1, 2), (0, 1, 0), (0, 2, 0), (0, 3, 1), (0, 3, 1), (1, 4, 0), (1, 5, 2), (1, 6, 1)]
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).to_csv(
        folder / "d.inter", sep="\t", index=False
    )
    inter = files.read_interactions(folder / "d.inter")
    assert inter.dropped_duplicates == 2
    assert inter.split_sizes == (3, 2, 1)  # (0,1) kept in train, dropped from test
    pairs = set(map(tuple, inter.frame.to_numpy()))
    assert pairs == {(0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (1, 6)}


def test_cold_users_dropped_from_valid_and_test(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    rows = [(0, 1, 0), (0, 2, 1), (0, 3, 2), (1, 4, 1), (1, 5, 2)]
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).to_csv(
        folder / "d.inter", sep="\t", index=False
    )
    inter = files.read_interactions(folder / "d.inter")
    assert inter.dropped_cold_rows == 2
    assert inter.split_sizes == (1, 1, 1)


def test_features_nan_and_inf(tmp_path):
    for bad in (np.nan, np.inf):
        array = np.ones((5, 3), np.float32)
        array[2, 1] = bad
        path = tmp_path / "toy.image.npy"
        np.save(path, array)
        with pytest.raises(DataError) as err:
            files.read_features(path, "image")
        _assert_one_line(err, str(path), "'image'", "NaN or inf", "[2]")


def test_features_float16_become_float32(tmp_path):
    path = tmp_path / "toy.audio.npy"
    np.save(path, np.ones((4, 2), np.float16))
    assert files.read_features(path, "audio").dtype == np.float32


def test_missing_modality_file(tmp_path):
    with pytest.raises(DataError) as err:
        files.read_features(tmp_path / "toy.video.npy", "video")
    _assert_one_line(err, "'video'", "named in the config", "remove 'video' from `modalities`")


def test_feature_row_count_mismatch(tmp_path):
    paths = {"image": tmp_path / "a.npy", "text": tmp_path / "b.npy"}
    feats = {"image": np.zeros((30, 2)), "text": np.zeros((29, 2))}
    with pytest.raises(DataError) as err:
        files.check_item_count(feats, paths, 10, tmp_path / "x.inter")
    _assert_one_line(err, "b.npy", "'text'", "29 rows")


def test_labels_wrong_length_and_type(tmp_path):
    path = tmp_path / "toy.labels.npy"
    np.save(path, np.zeros(7, np.int64))
    with pytest.raises(DataError) as err:
        files.read_labels(path, 8)
    _assert_one_line(err, "'labels'", "8 items")
    np.save(path, np.zeros(8, np.float32))
    with pytest.raises(DataError) as err:
        files.read_labels(path, 8)
    _assert_one_line(err, "'labels'", "non-negative integers")


def test_find_modalities(tmp_path):
    write_dataset(tmp_path, modalities={"image": 2, "audio": 3})
    assert files.find_modalities(tmp_path / "toy", "toy") == ["audio", "image"]
