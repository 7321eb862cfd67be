"""Settings that cannot lie: unknown keys, wrong types and senseless ranges are refused with
one line naming the key, where it came from and the fix, before anything trains or is written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, fast, write_dataset

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.prepare import config_for


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "run_benchmark.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"learnin_rate": 0.5}, r"'learnin_rate': no YAML layer.*did you mean 'learning_rate'"),
        ({"learning_rate": "abc"}, r"'learning_rate': 'abc' is a str, its default 0.001"),
        ({"epochs": -3}, r"'epochs': -3 is not positive"),
        ({"embedding_size": 0}, r"'embedding_size': 0 is not positive"),
        ({"learning_rate": 0.0}, r"'learning_rate': 0.0 is not positive"),
        ({"reg_weight": -1.0}, r"'reg_weight': -1.0 is negative"),
        ({"epochs": 2.5}, r"'epochs': 2.5 is a float, its default 1000 is an int"),
        ({"kd_weight": 0.1}, r"'kd_weight': no YAML layer.*for LightGCN"),  # not LightGCN's
    ],
)
def test_bad_overrides_are_refused_naming_key_source_and_fix(toy, overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        config_for("LightGCN", "toy", overrides=overrides, data_path=toy, source="--set")
    assert str(err.value).startswith("--set: ") and "Fix: " in str(err.value)
    assert "\n" not in str(err.value)


def test_good_overrides_pass_and_ints_serve_float_keys(toy):
    config = config_for(
        "LightGCN", "toy", overrides={"learning_rate": 1, "topk": 20}, data_path=toy
    )
    assert config["learning_rate"] == 1 and config["topk"] == [20]


def test_a_bad_value_in_a_yaml_layer_names_that_file(toy, tmp_path):
    props = tmp_path / "props" / "model"
    props.mkdir(parents=True)
    (props / "LightGCN.yaml").write_text("n_layers: -1\n")
    with pytest.raises(ConfigError, match=r"props/model/LightGCN.yaml: 'n_layers': -1"):
        config_for("LightGCN", "toy", data_path=toy, properties=tmp_path / "props")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "learnin_rate=0.5"], "did you mean 'learning_rate'"),
        (["--set", "learning_rate=abc"], "'abc' is a str"),
        (["--set", "epochs=-3"], "'epochs': -3 is not positive"),
        (["--set", "embedding_size=0"], "'embedding_size': 0 is not positive"),
        (["--models", "LightGCNN"], "did you mean 'LightGCN'"),
        (["--models", "VBPR", "--dataset", "plain"], "no item features"),
    ],
)
def test_cli_refuses_before_training_in_one_line(tmp_path, args, message):
    write_dataset(tmp_path / "data")
    write_dataset(tmp_path / "data", name="plain", modalities={})
    out = tmp_path / "out"
    base = ["run", "--models", "BPR", "--dataset", "toy", "--seeds", "1"]
    proc = _cli(*base, *args, "--out", str(out), "--data-path", str(tmp_path / "data"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1] and "Fix:" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing trained, nothing written


def test_a_benchmark_entry_with_a_bad_key_is_refused_before_any_run(toy, tmp_path):
    from recbole_mmkd.benchmark import run_benchmark
    from recbole_mmkd.specs import load_benchmark

    spec = tmp_path / "b.yaml"
    spec.write_text(
        f"datasets: [toy]\nseeds: [1]\nmodels:\n  - {{model: BPR, set: {fast()}}}\n"
        "  - {model: LightGCN, set: {n_layer: 3}}\n"
    )
    with pytest.raises(ConfigError, match=r"b.yaml: models\[1\] \(LightGCN\) set: 'n_layer'"):
        run_benchmark(load_benchmark(spec), tmp_path / "out", data_path=toy)
    assert not (tmp_path / "out").exists()  # the first, good entry did not train either


def test_a_sweep_space_value_of_the_wrong_type_is_refused(toy, tmp_path):
    from recbole_mmkd.specs import check_sweep, load_sweep

    spec = tmp_path / "s.yaml"
    spec.write_text("model: BPR\ndataset: toy\nspace:\n  reg_weight: [0.1, fast]\n")
    with pytest.raises(ConfigError, match=r"s.yaml: space.reg_weight: 'reg_weight': 'fast'"):
        check_sweep(load_sweep(spec), data_path=toy)
    spec.write_text("model: BPR\ndataset: toy\nspace:\n  reg_wieght: [0.1]\n")
    with pytest.raises(ConfigError, match="did you mean 'reg_weight'"):
        check_sweep(load_sweep(spec), data_path=toy)


def test_a_recbole_model_as_teacher_is_refused_in_one_line(toy, tmp_path):
    from recbole_mmkd.pipeline import run_one

    overrides = fast(teacher="recbole.BPR", teacher_config=fast())
    with pytest.raises(ConfigError, match="cannot be a teacher") as err:
        run_one("KD-LightGCN", "toy", 1, tmp_path / "out", overrides=overrides, data_path=toy)
    assert "Fix: name a project model" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_teacher_that_does_not_score_by_inner_products_is_refused(toy, tmp_path):
    from recbole_mmkd.pipeline import run_one

    for teacher in ("MAML", "SGFD-MAML"):  # scores are distances, not table products
        overrides = fast(teacher=teacher, teacher_config=fast())
        with pytest.raises(ConfigError, match="does not score by inner products"):
            run_one("KD-LightGCN", "toy", 1, tmp_path / "out", overrides=overrides, data_path=toy)
    assert not (tmp_path / "out").exists()


def test_a_bad_teacher_config_key_is_refused(toy, tmp_path):
    from recbole_mmkd.prepare import check_run

    overrides = fast(teacher="LightGCN", teacher_config={"n_layer": 2})
    config = config_for("KD-LightGCN", "toy", overrides=overrides, data_path=toy)
    with pytest.raises(ConfigError, match="teacher_config: 'n_layer'"):
        check_run(config)


def test_an_unknown_dataset_names_where_it_looked(tmp_path):
    from recbole_mmkd.errors import DataError

    with pytest.raises(DataError, match="no dataset 'nope'"):
        config_for("BPR", "nope", data_path=tmp_path)


def test_default_metrics_include_the_cutoff_of_5(toy):
    config = config_for("BPR", "toy", data_path=toy)
    assert config["topk"] == [5, 10, 20, 50]


def test_a_key_some_layer_leaves_null_can_be_set_off(toy):
    config = config_for(
        "LATTICE", "toy", overrides={"learning_rate_scheduler": None}, data_path=toy
    )
    assert config["learning_rate_scheduler"] is None
    with pytest.raises(ConfigError, match="'learning_rate'"):
        config_for("LATTICE", "toy", overrides={"learning_rate": None}, data_path=toy)


def test_a_models_layer_for_this_dataset_beats_its_general_layer(toy, tmp_path):
    props = tmp_path / "props" / "model"
    (props / "toy").mkdir(parents=True)
    (props / "LightGCN.yaml").write_text("n_layers: 1\nreg_weight: 0.5\n")
    (props / "toy" / "LightGCN.yaml").write_text("n_layers: 3  # chosen on toy's validation\n")
    (props / "other").mkdir()
    (props / "other" / "LightGCN.yaml").write_text("n_layers: 4\n")
    config = config_for("LightGCN", "toy", data_path=toy, properties=tmp_path / "props")
    assert config["n_layers"] == 3 and config["reg_weight"] == 0.5
    # a wrapper reads its backbone's chosen values too, and its own win over them
    (props / "toy" / "KD-LightGCN.yaml").write_text("n_layers: 2\n")
    kd = config_for("KD-LightGCN", "toy", data_path=toy, properties=tmp_path / "props")
    assert kd["n_layers"] == 2 and kd["reg_weight"] == 0.5


@pytest.mark.parametrize("value", ["2888902658", "12e45", "0017"])
def test_a_teacher_hash_stays_text_whatever_it_looks_like(toy, value):
    config = config_for("LightGCN", "toy", overrides={"teacher_hash": value}, data_path=toy)
    assert config["teacher_hash"] == value
