"""Benchmarks as data: YAML validation, runs reused from disk, reports with comparisons."""

from __future__ import annotations

import pytest
from conftest import fast

from recbole_mmkd.benchmark import load_benchmark, report, run_benchmark
from recbole_mmkd.data.files import DataError
from recbole_mmkd.result import find_results

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
    bench = load_benchmark("tiny", folder)
    assert [e.model for e in bench.entries] == ["BPR", "LightGCN"]
    out = tmp_path / "out"
    runs = run_benchmark(bench, out, toy)
    assert len(runs["toy"]) == 4 and len(find_results(out)) == 4
    text = report(bench, runs, out)
    assert (out / "leaderboard-toy.md").is_file() and (out / "comparisons-toy.csv").is_file()
    assert r"\toprule" in (out / "table-toy.tex").read_text()
    names = {p.name for p in (out / "figures").iterdir()}
    assert {"bars-toy-recall10.png", "curves-toy.pdf", "efficiency-toy.png"} <= names
    assert "LightGCN" in text and "p (t)" in text and "p (holm)" in text
    stamps = {p: (p / "result.json").stat().st_mtime_ns for p in find_results(out)}
    run_benchmark(bench, out, toy)  # everything on disk: nothing re-trained
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
    ],
)
def test_bad_benchmark_files_name_file_field_and_fix(tmp_path, body, message):
    (tmp_path / "bad.yaml").write_text(body)
    with pytest.raises(DataError, match=message) as err:
        load_benchmark("bad", tmp_path)
    assert "bad.yaml" in str(err.value)
    with pytest.raises(DataError, match="name one of: bad"):
        load_benchmark("missing", tmp_path)


def test_all_pairs_and_the_combined_leaderboard(toy, tmp_path):
    from conftest import write_dataset

    from recbole_mmkd.benchmark import combined_table
    from recbole_mmkd.pipeline import run_one

    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "pairs.yaml").write_text(
        "datasets: [toy]\nseeds: [1]\nmodels: [BPR, LightGCN, VBPR]\ncomparisons: all\n"
    )
    bench = load_benchmark("pairs", folder)
    assert bench.comparisons == [("LightGCN", "BPR"), ("VBPR", "BPR"), ("VBPR", "LightGCN")]
    write_dataset(toy, name="toy2", seed=1)
    quick = {"toy": [], "toy2": []}
    for dataset in quick:
        for model in ("BPR", "LightGCN"):
            quick[dataset].append(
                run_one(model, dataset, 1, tmp_path / "out", fast(), data_path=toy)
            )
    table = combined_table(quick, ["recall@10"])
    assert list(table.columns) == ["model", "toy recall@10", "toy2 recall@10"]
    assert set(table["model"]) == {"BPR", "LightGCN"}
