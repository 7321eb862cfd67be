"""Benchmarks as data: YAML validation, runs reused from disk, reports with comparisons."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import fast

from recbole_mmkd.benchmark import run_benchmark
from recbole_mmkd.errors import ConfigError, DataError
from recbole_mmkd.reporting.report import Report
from recbole_mmkd.result import find_results
from recbole_mmkd.specs import load_benchmark

SPEC = """
datasets: [toy]
seeds: [1, 2]
metrics: [recall@10]
models:
  - {model: BPR, set: %s}
  - {model: LightGCN, set: %s}
comparisons:
  - [LightGCN, BPR]
reference: BPR
"""


def test_benchmark_runs_reports_and_reuses(toy, tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    quick = str(fast()).replace("'", "")
    (folder / "tiny.yaml").write_text(SPEC % (quick, quick))
    bench = load_benchmark(folder / "tiny.yaml")
    assert [e.model for e in bench.entries] == ["BPR", "LightGCN"]
    out = tmp_path / "out"
    runs = run_benchmark(bench, out, data_path=toy)
    assert len(runs["toy"]) == 4 and len(find_results(out)) == 4
    report = Report(bench, runs, teachers_from=out)
    report.save(out)
    text = report.to_markdown()
    assert (out / "leaderboard-toy.md").is_file() and (out / "comparisons-toy.csv").is_file()
    assert r"\toprule" in (out / "table-toy.tex").read_text()
    names = {p.name for p in (out / "figures").iterdir()}
    assert {"bars-toy-recall10.png", "curves-toy.pdf", "efficiency-toy.png"} <= names
    assert "LightGCN" in text and "p (t, users)" in text and "p (holm, seeds)" in text
    assert "established" in text and "min detectable" in text
    stamps = {p: (p / "result.json").stat().st_mtime_ns for p in find_results(out)}
    run_benchmark(bench, out, data_path=toy)  # everything on disk: nothing re-trained
    assert {p: (p / "result.json").stat().st_mtime_ns for p in find_results(out)} == stamps


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("seeds: [1]\nmodels: [BPR]\n", "field 'datasets'"),
        ("datasets: [toy]\nseeds: [1]\nmodels: [{set: {}}]\n", "field 'models': bad entry"),
        ("datasets: [toy]\nseeds: [1]\nmodels: [BPR]\ncomparisons: [[VBPR, BPR]]\n", "pairs"),
        ("datasets: [toy]\nseeds: [1]\nmodels: [BPR, BPR]\n", "listed twice"),
        ("datasets: [toy]\nseeds: [1]\nmodels: [BPR]\ntest: sign\n", "field 'test'"),
        ("datasets: [toy]\nseeds: [1]\nmodels: [BPR]\ncorrection: x\n", "field 'correction'"),
        ("datasets: [toy]\nseeds: [1]\nmodels: [{model: BPR, datasets: [ml]}]\n", "datasets"),
    ],
)
def test_bad_benchmark_files_name_file_field_and_fix(tmp_path, body, message):
    (tmp_path / "bad.yaml").write_text(body)
    with pytest.raises(DataError, match=message) as err:
        load_benchmark(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(err.value)
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "bad.yaml").rename(tmp_path / "benchmark" / "bad.yaml")
    with pytest.raises(DataError, match="name one of: backbones, bad, compression, default"):
        load_benchmark("missing", properties=tmp_path)


MATRIX = """
datasets: [toy]
seeds: [1]
models:
  - {model: LightGCN, label: teacher, space: {embedding_size: [8, 16]}}
  - matrix:
      student: {LightGCN: {}, BPR: {set: {reg_weight: 0.1}}}
      width:
        half: {width: {of: teacher, ratio: 0.5}}
        quarter: {width: {of: teacher, ratio: 0.25}}
    model: "{student}"
    set: {learning_rate: 0.01}
    space: {learning_rate: [0.01, 0.001]}
    compare_to: [teacher]
comparisons: [[BPR quarter, BPR half]]
"""


def test_a_matrix_is_an_entry_per_combination_with_its_parts_merged_and_named(tmp_path):
    (tmp_path / "m.yaml").write_text(MATRIX)
    bench = load_benchmark(tmp_path / "m.yaml")
    students = [(e.name, e.model, e.overrides, e.width) for e in bench.entries[1:]]
    assert students == [
        ("LightGCN half", "LightGCN", {"learning_rate": 0.01}, ("teacher", 0.5)),
        ("LightGCN quarter", "LightGCN", {"learning_rate": 0.01}, ("teacher", 0.25)),
        ("BPR half", "BPR", {"learning_rate": 0.01, "reg_weight": 0.1}, ("teacher", 0.5)),
        ("BPR quarter", "BPR", {"learning_rate": 0.01, "reg_weight": 0.1}, ("teacher", 0.25)),
    ]
    assert all(e.space == {"learning_rate": [0.01, 0.001]} for e in bench.entries[1:])
    # the file's pairs first, then each entry's compare_to, in entry order
    assert bench.comparisons == [
        ("BPR quarter", "BPR half"),
        ("LightGCN half", "teacher"),
        ("LightGCN quarter", "teacher"),
        ("BPR half", "teacher"),
        ("BPR quarter", "teacher"),
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("{LightGCN: {}, BPR: {set: {reg_weight: 0.1}}}", "[LightGCN, BPR]"),
         r"models \(matrix\) student.*bad value"),
        (('model: "{student}"', 'model: "{learner}"'), r"\{learner\} names no axis"),
        (("compare_to: [teacher]", "compare_to: [tutor]"), "comparisons.*bad entry"),
    ],
)  # fmt: skip
def test_a_bad_matrix_is_refused_with_the_axis_or_name(tmp_path, change, message):
    (tmp_path / "bad.yaml").write_text(MATRIX.replace(*change))
    with pytest.raises(DataError, match=message) as err:
        load_benchmark(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(err.value)


def test_all_pairs_and_the_combined_leaderboard(toy, tmp_path):
    from conftest import write_dataset

    from recbole_mmkd.pipeline import run_one
    from recbole_mmkd.reporting.report import combined_table

    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "pairs.yaml").write_text(
        "datasets: [toy]\nseeds: [1]\nmodels: [BPR, LightGCN, VBPR]\ncomparisons: all\n"
    )
    bench = load_benchmark(folder / "pairs.yaml")
    assert bench.comparisons == [("LightGCN", "BPR"), ("VBPR", "BPR"), ("VBPR", "LightGCN")]
    write_dataset(toy, name="toy2", seed=1)
    quick = {"toy": [], "toy2": []}
    for dataset in quick:
        for model in ("BPR", "LightGCN"):
            quick[dataset].append(
                run_one(model, dataset, 1, tmp_path / "out", overrides=fast(), data_path=toy)
            )
    table = combined_table(quick, ["recall@10"])
    assert list(table.columns) == ["model", "toy recall@10", "toy2 recall@10"]
    assert set(table["model"]) == {"BPR", "LightGCN"}


def test_label_runs_names_each_configuration_of_a_model():
    from dataclasses import replace

    import numpy as np
    from test_stats import _result

    from recbole_mmkd.reporting.leaderboard import label_runs

    base = _result("GRCN", 1, np.arange(3), np.zeros(3))
    runs = [
        replace(base, config_hash="a", config={"routing": "released", "lr": 0.01}),
        replace(base, config_hash="b", config={"routing": "paper", "lr": 0.01}),
        replace(base, model="BPR", config_hash="c", config={"lr": 0.01}),
        replace(base, model="BPR", config_hash="d", config={"lr": 0.01}),  # code changed
        replace(base, model="VBPR", config_hash="e"),
        replace(base, model="BM3", config_hash="f", config={"patience": 20}),
        replace(base, model="BM3", config_hash="g", config={"patience": 50, "new_key": 1}),
        # one configuration per dataset is no choice between configurations: names stay
        replace(base, dataset="ml", model="VBPR", config_hash="h", config={"dataset": "ml"}),
    ]
    assert [r.model for r in label_runs(runs)] == [
        "GRCN (routing=released)", "GRCN (routing=paper)", "BPR [c]", "BPR [d]", "VBPR",
        "BM3 (patience=20)", "BM3 (patience=50)", "VBPR",
    ]  # fmt: skip


def test_labels_teachers_and_the_folder_report(toy, tmp_path):
    from recbole_mmkd.cli import main as cli
    from recbole_mmkd.reporting.report import teacher_links

    folder = tmp_path / "benchmarks"
    folder.mkdir()
    kd = {**fast(), "teacher": "VBPR", "teacher_config": fast(), "kd_method": "logit"}
    (folder / "labels.yaml").write_text(
        f"datasets: [toy]\nseeds: [1]\nmetrics: [recall@10]\nmodels:\n"
        f"  - {{model: BPR, set: {fast()}}}\n"
        f"  - {{model: BPR, set: {fast(reg_weight=0.5)}, label: BPR-reg}}\n"
        f"  - {{model: KD-BPR, set: {kd}}}\n"
        f"comparisons: [[BPR-reg, BPR], [KD-BPR, BPR]]\nreference: BPR\n"
    )
    bench = load_benchmark(folder / "labels.yaml")
    assert [e.name for e in bench.entries] == ["BPR", "BPR-reg", "KD-BPR"]
    out = tmp_path / "out"
    runs = run_benchmark(bench, out, data_path=toy)
    Report(bench, runs, teachers_from=out).save(out)
    board = (out / "leaderboard-toy.md").read_text()
    assert "BPR-reg" in board and "VBPR (teacher)" in board  # the teacher joins the board
    assert "BPR-reg" in (out / "comparisons-toy.md").read_text()
    costs = pd.read_csv(out / "efficiency-toy.csv").set_index(["model", "against"])
    assert set(costs.index) == {("KD-BPR", "VBPR (teacher)"), ("KD-BPR", "BPR"), ("BPR-reg", "BPR")}
    row = costs.loc["KD-BPR", "VBPR (teacher)"]  # BPR's ID tables against VBPR's ID + visual
    assert row["params"] < row["params (against)"]
    assert row["params ratio"] == pytest.approx(row["params"] / row["params (against)"], 1e-3)
    # the folder report names configurations from their differing keys, teachers as such
    cli(["report", str(out), "--reference", "VBPR", "--metrics", "recall@10"])
    board = (out / "leaderboard-toy.md").read_text()
    assert "BPR (reg_weight=0.5)" in board and "| VBPR " in board
    from recbole_mmkd.reporting.leaderboard import label_runs
    from recbole_mmkd.result import load_results

    assert teacher_links(label_runs(load_results(out))) == [("VBPR", "KD-BPR")]
    with pytest.raises(SystemExit) as stop:
        cli(["report", str(out), "--reference", "Nope"])
    assert stop.value.code == 2


def test_every_shipped_benchmark_and_sweep_file_loads_and_names_registered_models():
    from recbole_mmkd.config import PROPERTIES
    from recbole_mmkd.model import model_names
    from recbole_mmkd.specs import load_sweep

    known = set(model_names())
    benches = [load_benchmark(p.stem) for p in sorted((PROPERTIES / "benchmark").glob("*.yaml"))]
    assert {"default", "backbones", "kd"} <= {b.name for b in benches}
    for bench in benches:
        assert {e.model for e in bench.entries} <= known, bench.name
    for path in sorted((PROPERTIES / "sweep").glob("*.yaml")):
        assert load_sweep(path.stem).model in known, path.name


def test_a_benchmark_splits_by_dataset_seeds_and_models_keeping_its_protocol():
    from recbole_mmkd.benchmark import restrict

    kd = load_benchmark("kd")
    part = restrict(kd, datasets=["ml-100k-mm"], seeds=[2024, 2021])
    assert part.datasets == ["ml-100k-mm"] and part.seeds == [2021, 2024]
    assert (part.entries, part.comparisons) == (kd.entries, kd.comparisons)
    assert (part.test, part.correction, part.reference) == (kd.test, kd.correction, kd.reference)
    assert restrict(kd) == kd
    with pytest.raises(ConfigError, match="runs \\['tiktok', 'ml-100k-mm'\\]"):
        restrict(kd, datasets=["ml-1m"])
    with pytest.raises(ConfigError, match="seeds"):
        restrict(kd, seeds=[7])
    lattice = restrict(kd, models=["SGFD-LATTICE", "LATTICE"])
    assert [e.name for e in lattice.entries] == ["LATTICE", "SGFD-LATTICE"]
    assert lattice.comparisons == kd.comparisons and lattice.seeds == kd.seeds
    with pytest.raises(ConfigError, match="--models: '\\['VBPR'\\]'"):
        restrict(kd, models=["VBPR"])


def test_a_stored_student_is_reused_without_its_teachers_artefacts(toy, tmp_path):
    """Teacher arrays stay local: on a fresh checkout a benchmark finds its stored students by
    their teachers' config hashes, trains no teacher and reuses every run."""
    from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE

    kd = str(fast(teacher="LightGCN", teacher_config=fast(), kd_method="logit")).replace("'", "")
    (tmp_path / "b.yaml").write_text(
        f"datasets: [toy]\nseeds: [1]\nmodels:\n  - {{model: KD-BPR, set: {kd}}}\n"
    )
    bench, out = load_benchmark(tmp_path / "b.yaml"), tmp_path / "out"
    run_benchmark(bench, out, data_path=toy)
    for name in (TABLES_FILE, STATE_FILE):
        (find_results(out / "toy" / "LightGCN")[0] / name).unlink()
    stamps = {p: (p / "result.json").stat().st_mtime_ns for p in find_results(out)}
    [student] = run_benchmark(bench, out, data_path=toy)["toy"]
    assert {p: (p / "result.json").stat().st_mtime_ns for p in find_results(out)} == stamps
    assert student.model == "KD-BPR"
    assert not (find_results(out / "toy" / "LightGCN")[0] / TABLES_FILE).exists()


def test_an_entry_runs_on_the_datasets_it_names(toy, tmp_path):
    from conftest import write_dataset

    write_dataset(toy, "toy2", seed=3)
    quick = str(fast()).replace("'", "")
    (tmp_path / "b.yaml").write_text(
        f"datasets: [toy, toy2]\nseeds: [1]\nmodels:\n  - {{model: BPR, set: {quick}}}\n"
        f"  - {{model: LightGCN, set: {quick}, datasets: [toy2]}}\n"
        "comparisons: [[LightGCN, BPR]]\n"
    )
    runs = run_benchmark(load_benchmark(tmp_path / "b.yaml"), tmp_path / "out", data_path=toy)
    assert [r.model for r in runs["toy"]] == ["BPR"]
    assert [r.model for r in runs["toy2"]] == ["BPR", "LightGCN"]


def test_comparisons_skip_pairs_a_dataset_lacks():
    import numpy as np
    from test_stats import _result

    from recbole_mmkd.reporting.report import comparison_table
    from recbole_mmkd.specs import Benchmark

    users = np.arange(50)
    runs = [
        _result(m, s, users, np.full(50, v)) for m, v in (("A", 0.2), ("B", 0.1)) for s in (1, 2)
    ]
    runs[0].test_per_user["recall@20"][:25] = 0.3  # A beats B on half the users
    bench = Benchmark("f", ["d"], [1, 2], ["recall@20"], [], [("A", "B"), ("C", "B")])
    table = comparison_table(bench, runs)  # C was run on another dataset only
    assert table[["model", "reference"]].values.tolist() == [["A", "B"]]
    assert table["model mean"].item() == 0.225


def test_a_part_of_a_benchmark_leaves_its_tables_to_the_full_run(
    toy, tmp_path, monkeypatch, capsys
):
    from recbole_mmkd.cli import main

    folder = tmp_path / "props" / "benchmark"
    folder.mkdir(parents=True)
    quick = str(fast()).replace("'", "")
    (folder / "tiny.yaml").write_text(SPEC % (quick, quick))
    out = tmp_path / "out"
    common = ["--out", str(out), "--data-path", str(toy), "--properties", str(folder.parent)]
    main(["run", "tiny", "--models", "BPR", "--seeds", "1", *common])
    assert "part of tiny" in capsys.readouterr().out
    assert len(find_results(out)) == 1 and not list(out.glob("leaderboard-*"))
    first = find_results(out)[0]
    stamp = (first / "result.json").stat().st_mtime_ns
    main(["run", "tiny", *common])  # the whole: reuses the part's run, writes the tables
    assert len(find_results(out)) == 4 and (out / "comparisons-toy.md").is_file()
    assert (first / "result.json").stat().st_mtime_ns == stamp


def test_the_zoo_runs_every_backbone_with_one_budget():
    from recbole_mmkd.model import get_model, model_names
    from recbole_mmkd.specs import tuning_budget

    zoo = load_benchmark("zoo")
    backbones = {n for n in model_names() if get_model(n).__module__.split(".")[-2] == "general"}
    assert backbones - {e.model for e in zoo.entries} == set()
    assert {tuning_budget(e, zoo.tuning) for e in zoo.entries} == {8}
