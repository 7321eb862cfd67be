"""Benchmarks tune their entries on validation only, with the same budget on both sides of a
comparison, then run their seeds with the chosen point."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace

import pandas as pd
import pytest
from conftest import ROOT, fast

from recbole_mmkd.errors import DataError
from recbole_mmkd.specs import load_benchmark

TESTS = str(ROOT / "tests")


# a 2-epoch run's settings as a YAML flow mapping
QUICK = str({**fast(epochs=2), "robustness_shares": []}).replace("'", "")


def _spec(tmp_path, body: str):
    path = tmp_path / "b.yaml"
    path.write_text(body)
    return path


def _quick_spec(tmp_path, *entries: str):
    """A one-seed toy benchmark over ``entries`` (flow mappings without their ``set``), each
    entry trained 2 epochs, searched without early stopping one trial at a time."""
    models = "".join(f"  - {{{entry}, set: {QUICK}}}\n" for entry in entries)
    return _spec(tmp_path, f"datasets: [toy]\nseeds: [1]\nmodels:\n{models}"
                 "tuning: {scheduler: none, cpus_per_trial: 1, max_concurrent: 1}\n")  # fmt: skip


def test_the_search_runs_on_validation_only_and_the_seeds_use_its_choice(
    toy, tmp_path, monkeypatch
):
    import ray

    from recbole_mmkd.benchmark import run_benchmark

    props = tmp_path / "props" / "model"
    props.mkdir(parents=True)
    (props / "Planted.yaml").write_text("pick: test\n")
    spec = _spec(
        tmp_path,
        f"datasets: [toy]\nseeds: [1, 2]\nmetrics: [recall@10]\nmodels:\n"
        f"  - {{model: 'planted:Planted', label: P, set: {QUICK},\n"
        "     space: {pick: [test, valid]}}\n"
        "tuning: {scheduler: none, cpus_per_trial: 1, max_concurrent: 1}\n",
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, *sys.path]))  # Ray's workers
    monkeypatch.syspath_prepend(TESTS)
    ray.shutdown()
    try:
        out = tmp_path / "out"
        runs = run_benchmark(load_benchmark(spec), out, data_path=toy, properties=props.parent)
    finally:
        ray.shutdown()
    # validation prefers `valid` (it ranks the validation items first); the test split would
    # have preferred `test`: the seeds ran with `valid`, and score poorly on test
    assert {r.config["pick"] for r in runs["toy"]} == {"valid"}
    assert all(r.best_valid["recall@10"] == 1.0 for r in runs["toy"])
    assert all(r.test["recall@10"] < 1.0 for r in runs["toy"])
    table = (out / "tuning-toy.md").read_text()
    assert '{"pick": "valid"}' in table and "| P " in table
    assert (out / "tuning" / "toy").is_dir()


def test_tune_only_searches_on_validation_and_trains_no_final_seed(toy, tmp_path):
    import ray

    import recbole_mmkd as mm
    from recbole_mmkd.result import find_results

    spec = _quick_spec(tmp_path, "model: BPR, space: {reg_weight: [0.1, 0.001]}")
    out = tmp_path / "out"
    try:
        tables = mm.tune_benchmark(spec, out=out, data_path=toy)
        assert find_results(out) == []  # no seed trained, no test read
        [row] = tables["toy"].to_dict("records")
        assert row["entry"] == "BPR" and row["trials"] == row["budget"] == 2
        ledger = next((out / "tuning" / "toy").glob("*/trials.jsonl")).read_text()
        [run] = mm.run_benchmark(spec, out=out, data_path=toy).datasets["toy"].results
        assert run.config["reg_weight"] == json.loads(row["chosen"])["reg_weight"]
        assert next((out / "tuning" / "toy").glob("*/trials.jsonl")).read_text() == ledger
    finally:
        ray.shutdown()


def test_an_entry_tuned_on_another_searches_from_its_chosen_point(toy, tmp_path):
    import ray

    import recbole_mmkd as mm

    spec = _quick_spec(
        tmp_path,
        "model: BPR, space: {reg_weight: [0.5, 1.0e-5]}",
        "model: BPR, label: S, tuned_on: BPR, space: {learning_rate: [0.01, 0.001]}",
    )
    out = tmp_path / "out"

    def plan() -> dict[str, dict]:
        table = mm.plan_benchmark(spec, out=out, data_path=toy)["toy"]
        return {r["entry"]: r for r in table.to_dict("records")}

    before = plan()  # read from disk: nothing searched, nothing trained
    assert before["BPR"]["search"] == "0 trials run; next 2 to the early stop"
    assert before["S"]["search"] == "waits on BPR" and before["S"]["seeds stored"] is None
    try:
        # a part that leaves BPR out still starts S from BPR's choice: BPR is searched first
        [row] = mm.tune_benchmark(spec, out=out, data_path=toy, models=["S"])["toy"].to_dict(
            "records"
        )  # the part's row; the file has BPR's too
        table = pd.read_csv(out / "tuning-toy.csv").to_dict("records")
        rows = {r["entry"]: json.loads(r["chosen"]) for r in table}
        assert row["entry"] == "S" and set(rows) == {"BPR", "S"}
        reg = rows["BPR"]["reg_weight"]
        folders = {p.name.split("-")[-2]: p for p in (out / "tuning" / "toy").iterdir()}
        trials = (folders["S"] / "trials.jsonl").read_text()
        searched = plan()
        assert searched["S"]["search"] == searched["BPR"]["search"] == "done (2 trials)"
        assert json.loads(searched["S"]["chosen"]) == rows["S"]
        assert searched["S"]["seeds stored"] == searched["BPR"]["seeds stored"] == "0 of 1"
        [run] = mm.run_benchmark(spec, out=out, data_path=toy, models=["S"]).datasets["toy"].results
        assert [plan()[e]["seeds stored"] for e in ("BPR", "S")] == ["0 of 1", "1 of 1"]
        assert run.config["reg_weight"] == reg
        assert run.config["learning_rate"] == rows["S"]["learning_rate"]
        assert (folders["S"] / "trials.jsonl").read_text() == trials  # read, not searched again
    finally:
        ray.shutdown()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [("{model: BPR, label: S, tuned_on: LightGCN, space: {reg_weight: [1, 2]}}", "no other entry"),
     ("{model: BPR, label: S, tuned_on: S, space: {reg_weight: [1, 2]}}", "no other entry"),
     ("{model: BPR, label: S, tuned_on: VBPR}", "has no space of its own")],
)  # fmt: skip
def test_a_bad_tuned_on_is_refused_with_the_entry_named(tmp_path, entry, problem):
    spec = _spec(tmp_path, f"datasets: [toy]\nseeds: [1]\nmodels: [VBPR, {entry}]\n")
    with pytest.raises(DataError, match=rf"models \(S\) tuned_on.*{problem}"):
        load_benchmark(spec)


def test_a_student_distils_from_an_entry_at_its_chosen_point_and_a_share_of_its_width(
    toy, tmp_path
):
    import ray

    import recbole_mmkd as mm

    spec = _spec(
        tmp_path,
        "datasets: [toy]\nseeds: [1]\nmodels:\n"
        f"  - {{model: LightGCN, label: T, set: {QUICK}, space: {{embedding_size: [8, 16]}}}}\n"
        f"  - {{model: KD-LightGCN, label: S, set: {{kd_method: logit, {QUICK[1:]},\n"
        "     teacher_from: T, width: {of: T, ratio: 0.25}}\n"  # T as teacher, 1/4 its width
        "tuning: {scheduler: none, cpus_per_trial: 1, max_concurrent: 1}\n",
    )
    out = tmp_path / "out"
    try:
        report = mm.run_benchmark(spec, out=out, data_path=toy, models=["S"])
        [run] = [r for r in report.datasets["toy"].results if r.model == "S"]  # and the teacher
        rows = {r["entry"]: json.loads(r["chosen"]) for r in
                pd.read_csv(out / "tuning-toy.csv").to_dict("records")}  # fmt: skip
        width = rows["T"]["embedding_size"]
        assert run.config["embedding_size"] == width // 4
        assert run.config["teacher"] == "LightGCN"
        assert run.config["teacher_config"]["embedding_size"] == width
        teachers = list((out / "toy" / "LightGCN").glob("*/seed-1/representations.npz"))
        assert len(teachers) == 1 and teachers[0].parent.parent.name == run.config["teacher_hash"]
    finally:
        ray.shutdown()


def test_resolve_entry_takes_what_an_entry_is_built_from():
    from recbole_mmkd.specs import Entry, dependency_order, resolve_entry

    teacher = Entry("FREEDOM", {"embedding_size": 128, "reg_weight": 0.1}, "T",
                    space={"embedding_size": [64, 128]})  # fmt: skip
    base = Entry("LightGCN", {"n_layers": 2}, "B", space={"n_layers": [1, 2]})
    student = Entry("KD-LightGCN", {"kd_weight": 0.5, "n_layers": 3}, "S", tuned_on="B",
                    teacher_from="T", width=("T", 0.3))  # fmt: skip
    built = resolve_entry(student, {"T": teacher, "B": base}, width_of=lambda e: 128)
    assert built.overrides == {
        "n_layers": 3,  # its own setting wins over B's chosen 2
        "teacher": "FREEDOM",
        "teacher_config": {"embedding_size": 128, "reg_weight": 0.1},
        "embedding_size": 38,  # round(0.3 x 128)
        "kd_weight": 0.5,
    }
    tiny = resolve_entry(Entry("BPR", width=("T", 0.001)), {"T": teacher}, width_of=lambda e: 64)
    assert tiny.overrides == {"embedding_size": 1}
    order = [e.name for e in dependency_order([student, base, teacher])]
    assert order.index("S") > max(order.index("T"), order.index("B"))


@pytest.mark.parametrize(
    ("entry", "where", "problem"),
    [("{model: KD-BPR, label: S, teacher_from: X}", "teacher_from", "no other entry"),
     ("{model: BPR, label: S, width: {of: VBPR, ratio: 0}}", "width", "bad value"),
     ("{model: BPR, label: S, width: {of: S, ratio: 0.5}}", "width", "no other entry"),
     ("{model: KD-BPR, label: S, teacher_from: VBPR, set: {teacher: BPR}}", "teacher_from",
      "also sets"),
     ("{model: BPR, label: S, width: {of: VBPR, ratio: 0.5}, space: {embedding_size: [8]}}",
      "width", "also sets")],
)  # fmt: skip
def test_a_bad_teacher_from_or_width_is_refused_with_the_entry_named(
    tmp_path, entry, where, problem
):
    spec = _spec(tmp_path, f"datasets: [toy]\nseeds: [1]\nmodels: [VBPR, {entry}]\n")
    with pytest.raises(DataError, match=rf"models \(S\) {where}.*{problem}"):
        load_benchmark(spec)


def test_an_entry_built_from_itself_is_refused(tmp_path):
    spec = _spec(
        tmp_path,
        "datasets: [toy]\nseeds: [1]\nmodels:\n"
        "  - {model: BPR, label: A, width: {of: B, ratio: 0.5}}\n"
        "  - {model: BPR, label: B, width: {of: A, ratio: 2}}\n",
    )
    with pytest.raises(DataError, match="built from itself"):
        load_benchmark(spec)


def test_both_sides_of_a_comparison_get_the_same_budget(tmp_path):
    body = (
        "datasets: [toy]\nseeds: [1]\nmodels:\n"
        "  - {model: BPR, space: {reg_weight: [0.1, 0.01]}}\n"
        "  - {model: LightGCN, space: {n_layers: [1, 2, 3]}}\n"
        "comparisons: [[LightGCN, BPR]]\n"
    )
    with pytest.raises(DataError, match="LightGCN is tuned with 3 trials and BPR with 2"):
        load_benchmark(_spec(tmp_path, body))
    untuned = body.replace("  - {model: LightGCN, space: {n_layers: [1, 2, 3]}}", "  - LightGCN")
    with pytest.raises(DataError, match="LightGCN is tuned with 0 trials and BPR with 2"):
        load_benchmark(_spec(tmp_path, untuned))
    same = body.replace("[1, 2, 3]", "[1, 2]")
    assert [e.space for e in load_benchmark(_spec(tmp_path, same)).entries][1] == {
        "n_layers": [1, 2]
    }


def test_a_bad_space_value_is_refused_before_anything_runs(toy, tmp_path):
    from recbole_mmkd.benchmark import run_benchmark
    from recbole_mmkd.errors import ConfigError

    body = "datasets: [toy]\nseeds: [1]\nmodels:\n  - {model: BPR, space: {reg_wieght: [0.1]}}\n"
    with pytest.raises(ConfigError, match="did you mean 'reg_weight'"):
        run_benchmark(load_benchmark(_spec(tmp_path, body)), tmp_path / "out", data_path=toy)
    assert not (tmp_path / "out").exists()


def test_a_sweep_folder_refuses_trials_of_other_settings(toy, tmp_path):
    import ray

    from recbole_mmkd.specs import Sweep
    from recbole_mmkd.tune import run_sweep

    fixed = {**fast(epochs=1), "robustness_shares": []}
    sweep = Sweep(name="s", model="BPR", dataset="toy", space={"reg_weight": [0.001]},
                  overrides=fixed, seed=1, max_concurrent=1)  # fmt: skip
    out = tmp_path / "out"
    try:
        run_sweep(sweep, out, data_path=toy)
        assert (out / "sweep.json").is_file()
        again = run_sweep(sweep, out, data_path=toy, resume=True)  # same sweep: nothing to run
        assert len(again) == 1
        changed = Sweep(**{**sweep.__dict__, "overrides": {**fixed, "learning_rate": 0.01}})
        with pytest.raises(DataError, match="other settings or code"):
            run_sweep(changed, out, data_path=toy, resume=True)
    finally:
        ray.shutdown()


def test_a_shipped_value_of_a_searched_key_leaves_the_sweep_the_same(toy, tmp_path):
    from recbole_mmkd.specs import Sweep
    from recbole_mmkd.tune.backend import sweep_identity

    space = {"n_layers": [1, 2], "reg_weight": {"loguniform": [1e-5, 1e-2]}}
    sweep = Sweep(name="s", model="LightGCN", dataset="toy", space=space)
    before = sweep_identity(sweep, data_path=toy)
    layer = tmp_path / "props" / "model" / "toy" / "LightGCN.yaml"
    layer.parent.mkdir(parents=True)
    layer.write_text("n_layers: 3\nreg_weight: 0.5\n")  # values chosen on validation, shipped
    props = tmp_path / "props"
    assert sweep_identity(sweep, data_path=toy, properties=props) == before
    layer.write_text("embedding_size: 8\n")  # a key the sweep does not search: another sweep
    assert sweep_identity(sweep, data_path=toy, properties=props) != before


def test_a_cycle_built_in_code_is_a_config_error_not_a_recursion(tmp_path):
    from recbole_mmkd.benchmark import tuned_entries
    from recbole_mmkd.errors import ConfigError
    from recbole_mmkd.specs import Benchmark, Entry

    entries = [Entry("BPR", label="A", width=("C", 0.5)), Entry("BPR", label="B", width=("A", 1)),
               Entry("BPR", label="C", width=("B", 2))]  # fmt: skip
    bench = Benchmark("b", ["toy"], [1], ["recall@20"], entries, [])
    with pytest.raises(ConfigError, match="built from itself"):
        tuned_entries(bench, "toy", tmp_path, data_path=None, properties=None)


def test_a_kd_setting_the_data_cannot_hold_is_refused_before_anything_trains(toy, tmp_path):
    import recbole_mmkd as mm
    from recbole_mmkd.errors import ConfigError

    spec = _spec(
        tmp_path,
        "datasets: [toy]\nseeds: [1]\nmodels:\n"
        f"  - {{model: KD-LightGCN, set: {{teacher: LightGCN, kd_method: cd, cd_top_n: 10,\n"
        f"     cd_n_items: 4, {QUICK[1:-1]}}},\n"
        "     space: {cd_top_n: [10, 25]}}\n",  # toy: 30 items, 6 training a user: 24 at most
    )
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"space.cd_top_n: 'cd_top_n': .*<= 24.* on toy"):
        mm.run_benchmark(spec, out=out, data_path=toy)
    assert not out.exists()  # nothing trained, nothing written


def test_a_dataset_may_run_its_searches_under_its_own_scheduler(tmp_path):
    from recbole_mmkd.specs import tuning_budget, tuning_sweep

    body = (
        "datasets: [toy, other]\nseeds: [1]\n"
        "tuning: {scheduler: halving, grace_period: 30, per_dataset: {other: {scheduler: none}}}\n"
        "models:\n  - {model: BPR, space: {reg_weight: [0.1, 0.01]}}\n"
    )
    bench = load_benchmark(_spec(tmp_path, body))
    (entry,) = bench.entries
    toy, other = (tuning_sweep(bench, entry, d) for d in ("toy", "other"))
    assert (toy.scheduler, toy.grace_period) == ("halving", 30)
    assert (other.scheduler, other.grace_period) == ("none", 30)
    assert tuning_budget(entry, bench.tuning.on("other")) == tuning_budget(entry, bench.tuning) == 2


@pytest.mark.parametrize(
    ("per_dataset", "where", "problem"),
    [("{elsewhere: {scheduler: none}}", r"per_dataset\.elsewhere", "not one of"),
     ("{toy: {search: random}}", r"per_dataset\.toy\.search", "unknown key"),
     ("{toy: {scheduler: fast}}", r"per_dataset\.toy\.scheduler", "unknown 'fast'")],
)  # fmt: skip
def test_a_bad_per_dataset_tuning_is_refused_with_its_key_named(
    tmp_path, per_dataset, where, problem
):
    body = (
        f"datasets: [toy]\nseeds: [1]\ntuning: {{per_dataset: {per_dataset}}}\n"
        "models:\n  - {model: BPR, space: {reg_weight: [0.1, 0.01]}}\n"
    )
    with pytest.raises(DataError, match=rf"{where}.*{problem}"):
        load_benchmark(_spec(tmp_path, body))


def test_entries_sharing_a_label_on_different_datasets_each_teach_there(toy, tmp_path):
    from conftest import write_dataset

    import recbole_mmkd as mm

    write_dataset(toy, name="toy2", seed=1)
    spec = _spec(
        tmp_path,
        "datasets: [toy, toy2]\nseeds: [1]\nmodels:\n"
        f"  - {{model: LightGCN, label: T, datasets: [toy], set: {QUICK}}}\n"
        f"  - {{model: BPR, label: T, datasets: [toy2], set: {QUICK}}}\n"
        f"  - {{model: KD-LightGCN, label: S, teacher_from: T, set: {{kd_method: logit, "
        f"{QUICK[1:]}}}\n",
    )
    bench = load_benchmark(spec)
    assert [bench.on(d).entry("T").model for d in ("toy", "toy2")] == ["LightGCN", "BPR"]
    report = mm.run_benchmark(spec, out=tmp_path / "out", data_path=toy)
    teachers = {d: [r.config["teacher"] for r in report.datasets[d].results if r.model == "S"]
                for d in ("toy", "toy2")}  # fmt: skip
    assert teachers == {"toy": ["LightGCN"], "toy2": ["BPR"]}
    for dataset in ("toy", "toy2"):  # each label runs once where it runs, not once per entry
        assert [r.model for r in report.datasets[dataset].results] == ["T", "S"]


@pytest.mark.parametrize(
    ("models", "problem"),
    [("[{model: BPR, label: T}, {model: LightGCN, label: T, datasets: [toy2]}]",
      "T is listed twice on toy2"),
     ("[{model: BPR, label: T, datasets: [toy]}, {model: KD-BPR, label: S, teacher_from: T}]",
      r"models \(S\) teacher_from.*no other entry named 'T' runs on toy2")],
)  # fmt: skip
def test_a_label_shared_on_one_dataset_or_missing_on_one_is_refused(tmp_path, models, problem):
    spec = _spec(tmp_path, f"datasets: [toy, toy2]\nseeds: [1]\nmodels: {models}\n")
    with pytest.raises(DataError, match=problem):
        load_benchmark(spec)


def test_a_comparison_of_entries_that_never_share_a_dataset_is_refused(tmp_path):
    models = "[{model: BPR, datasets: [toy]}, {model: LightGCN, datasets: [toy2]}]"
    body = f"datasets: [toy, toy2]\nseeds: [1]\nmodels: {models}\n"
    spec = _spec(tmp_path, body + "comparisons: [[LightGCN, BPR]]\n")
    with pytest.raises(DataError, match="never run on the same dataset"):
        load_benchmark(spec)
    assert load_benchmark(_spec(tmp_path, body + "comparisons: all\n")).comparisons == []


def test_a_dataset_set_lies_under_every_entry_setting_there_and_leaves_searched_keys_alone(
    tmp_path,
):
    from recbole_mmkd.specs import resolve_entry, tuning_sweep

    body = (
        "datasets: [toy, other]\nseeds: [1]\ndataset_set: {other: {learning_rate: 0.01}}\n"
        "models:\n  - {model: BPR, space: {reg_weight: [0.1, 0.01]}}\n"
        "  - {model: LightGCN, set: {learning_rate: 0.002}}\n"
        "  - {model: VBPR, space: {learning_rate: [0.05, 0.02]}}\n"
        "  - {model: KD-BPR, tuned_on: VBPR, space: {kd_weight: [0.1, 1.0]}}\n"
    )
    bench = load_benchmark(_spec(tmp_path, body))

    def resolved(name: str, dataset: str, settled=None):
        entry = bench.on(dataset).entry(name)
        return resolve_entry(entry, settled or {}, width_of=lambda e: 64,
                             shared=bench.dataset_settings(entry, dataset))  # fmt: skip

    rates = {d: {n: resolved(n, d).overrides.get("learning_rate")
                 for n in ("BPR", "LightGCN", "VBPR")} for d in ("toy", "other")}  # fmt: skip
    assert rates == {"toy": {"BPR": None, "LightGCN": 0.002, "VBPR": None},
                     "other": {"BPR": 0.01, "LightGCN": 0.002, "VBPR": None}}  # fmt: skip
    bpr = resolved("BPR", "other")
    assert tuning_sweep(bench, bpr, "other").overrides == {"learning_rate": 0.01}
    vbpr = resolved("VBPR", "other")  # its searched key is no fixed setting of its sweep
    assert tuning_sweep(bench, vbpr, "other").overrides == {}
    # what an entry takes from the one it is tuned on wins over the dataset's setting
    chosen = replace(vbpr, overrides={"learning_rate": 0.05})
    assert resolved("KD-BPR", "other", {"VBPR": chosen}).overrides["learning_rate"] == 0.05


@pytest.mark.parametrize(
    ("dataset_set", "problem"),
    [("{elsewhere: {learning_rate: 0.01}}", r"dataset_set\.elsewhere.*not one of"),
     ("{toy: 0.01}", r"dataset_set\.toy.*bad value")],
)  # fmt: skip
def test_a_bad_dataset_set_is_refused_with_its_key_named(tmp_path, dataset_set, problem):
    body = f"datasets: [toy]\nseeds: [1]\ndataset_set: {dataset_set}\nmodels: [BPR]\n"
    with pytest.raises(DataError, match=problem):
        load_benchmark(_spec(tmp_path, body))


def test_an_unknown_key_of_a_dataset_set_is_refused_before_anything_trains(toy, tmp_path):
    from recbole_mmkd.specs import check_benchmark

    body = "datasets: [toy]\nseeds: [1]\ndataset_set: {toy: {learning_rat: 0.01}}\nmodels: [BPR]\n"
    with pytest.raises(Exception, match=r"dataset_set\.toy.*learning_rat"):
        check_benchmark(load_benchmark(_spec(tmp_path, body)), data_path=toy)


def test_a_validation_only_run_sends_its_trials_to_the_cluster_it_names(monkeypatch):
    from recbole_mmkd import benchmark, cli

    seen = {}

    def tune(bench, out, **kwargs):
        seen.update(kwargs)
        return {}

    monkeypatch.setattr(benchmark, "tune_benchmark", tune)
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: True)  # this process's allocator
    cli.main(["run", "zoo", "--tune-only", "--dataset", "tiktok", "--models", "BPR",
              "--address", "auto"])  # fmt: skip
    assert seen["address"] == "auto"


def test_plan_prints_what_is_left_and_starts_nothing(toy, tmp_path, monkeypatch, capsys):
    from recbole_mmkd import cli

    spec = _quick_spec(tmp_path, "model: BPR, space: {reg_weight: [0.1, 0.001]}", "model: LightGCN")
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: True)  # this process's allocator
    monkeypatch.setattr("recbole_mmkd.tune.backend.init_ray", lambda *a, **k: 1 / 0)
    out = tmp_path / "out"
    cli.main(["run", str(spec), "--plan", "--data-path", str(toy), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "## toy (what a run has left to do; nothing trained)" in printed
    assert "0 trials run; next 2 to the early stop" in printed
    assert "| LightGCN " in printed and "0 of 1" in printed  # nothing to search: its seeds
    assert not out.exists()  # read only


def _bpr_bench(tmp_path, settings: dict, tuning: str):
    """A toy benchmark of BPR (``settings``) searching reg_weight {0.5, 1e-5} (``tuning``)
    with seed 1, its one seed."""
    spec = _spec(
        tmp_path,
        "datasets: [toy]\nseeds: [1]\nmodels:\n"
        f"  - {{model: BPR, set: {str(settings).replace(chr(39), '')}, "
        "space: {reg_weight: [0.5, 1.0e-5]}}\n"
        f"tuning: {{{tuning}, seed: 1, cpus_per_trial: 1, max_concurrent: 1}}\n",
    )
    return load_benchmark(spec)


def _searched_bpr_run(toy, tmp_path, settings: dict, tuning: str):
    """The :func:`_bpr_bench` run at the point its search chose, and its output folder."""
    import ray

    from recbole_mmkd.benchmark import run_benchmark

    out = tmp_path / "out"
    try:
        [run] = run_benchmark(_bpr_bench(tmp_path, settings, tuning), out, data_path=toy)["toy"]
    finally:
        ray.shutdown()
    return run, out


def test_the_plan_names_a_seed_whose_model_its_search_left(toy, tmp_path):
    import ray

    from recbole_mmkd.benchmark import plan_benchmark, tuned_entries

    bench = _bpr_bench(tmp_path, {**fast(epochs=2), "robustness_shares": []}, "scheduler: none")
    out = tmp_path / "out"
    before = plan_benchmark(bench, out, data_path=toy)["toy"]
    try:
        tuned_entries(bench, "toy", out, data_path=toy, properties=None)
    finally:
        ray.shutdown()
    after = plan_benchmark(bench, out, data_path=toy)["toy"]
    assert before["seeds stored"].tolist() == [None]  # not searched: no chosen point yet
    assert after["seeds stored"].tolist() == ["0 of 1 (seed 1: its search's model, to test)"]


def _tests_as_a_fresh_run(run, settings: dict, toy, tmp_path) -> None:
    """``run`` (which adopted its search's model) has what a run trained anew at its point
    has: the same hash, validation curve and test metrics."""
    from recbole_mmkd.pipeline import run_one

    chosen = {**settings, "reg_weight": run.config["reg_weight"]}
    fresh = run_one("BPR", "toy", 1, tmp_path / "fresh", overrides=chosen, data_path=toy)
    assert fresh.config_hash == run.config_hash and fresh.trained_by == ""
    assert fresh.valid_curve == run.valid_curve and fresh.test == run.test


def test_a_halving_point_that_stops_within_its_cap_leaves_its_model_for_the_run(toy, tmp_path):
    """A point of a capped halving round that stops early before its cap is a result (it is
    not run again): its model, the run's at its settings without the cap, is adopted by the
    benchmark's run at the search's seed, which tests what a run trained anew tests."""
    from recbole_mmkd.tune.ledger import BUDGET, LEDGER, read_ledger

    settings = {**fast(epochs=200), "stopping_step": 1, "robustness_shares": []}
    halving = "scheduler: halving, grace_period: 30, reduction_factor: 2"
    run, out = _searched_bpr_run(toy, tmp_path, settings, halving)
    [ledger] = out.glob(f"tuning/toy/*/{LEDGER}")
    [row] = [r for r in read_ledger(ledger) if r["point"]["reg_weight"] == run.config["reg_weight"]]
    assert row[BUDGET] == 30 and row["epochs"] < 30  # its only trial, capped, stopped before
    assert run.trained_by.startswith(f"in tuning trial {row['trial_id']} (")
    _tests_as_a_fresh_run(run, settings, toy, tmp_path)


def test_the_seed_run_at_the_chosen_point_adopts_the_model_its_search_trained(toy, tmp_path):
    """A search trial trained to its early stop is the run of its settings and seed: the
    benchmark's run at the chosen point and the search's seed takes its model and tests it
    once, with what a run trained anew would give; the other point's model is never tested."""
    from recbole_mmkd.pipeline import TRAINED_FILE

    settings = {**fast(epochs=2), "robustness_shares": []}
    run, out = _searched_bpr_run(toy, tmp_path, settings, "scheduler: none")
    assert run.trained_by.startswith("in tuning trial")
    left = list(out.glob(f"toy/BPR/*/seed-1/{TRAINED_FILE}"))
    assert len(left) == 1 and not (left[0].parent / "result.json").exists()  # the other point
    _tests_as_a_fresh_run(run, settings, toy, tmp_path)
