"""Run identity: the config hash covers every project module a run executes, each RunResult
records its code, corrupt RunResults are named and skipped, and a stored run moves to new
code only when a replay of its first epochs is identical (recbole_mmkd.carry)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import fast

from recbole_mmkd import identity
from recbole_mmkd.carry import carry_folder, carry_run
from recbole_mmkd.model import get_model
from recbole_mmkd.pipeline import run_one
from recbole_mmkd.prepare import config_for
from recbole_mmkd.result import RunResult, find_results, load_results


def _hash(model: str, toy) -> str:
    return identity.config_hash(config_for(model, "toy", overrides=fast(), data_path=toy))


def test_editing_a_helper_module_changes_the_hash_of_the_models_that_use_it(toy, monkeypatch):
    # model/graph.py is in no model's class hierarchy; LightGCN calls it, BPR does not
    assert "recbole_mmkd.model.graph" in identity.run_modules(get_model("LightGCN"))
    assert "recbole_mmkd.model.graph" not in identity.run_modules(get_model("BPR"))
    before = {m: _hash(m, toy) for m in ("LightGCN", "BPR", "KD-LightGCN")}
    source = identity._source

    def edited(module: str) -> str:
        return source(module) + ("\n# edited\n" if module == "recbole_mmkd.model.graph" else "")

    monkeypatch.setattr(identity, "_source", edited)
    after = {m: _hash(m, toy) for m in before}
    assert after["LightGCN"] != before["LightGCN"]
    assert after["BPR"] == before["BPR"]


def test_the_data_is_part_of_the_hash(toy, tmp_path):
    from conftest import write_dataset

    before = _hash("BPR", toy)
    other = tmp_path / "other"
    write_dataset(other, seed=5)  # a "toy" with other interactions, in another folder
    assert (
        identity.config_hash(config_for("BPR", "toy", overrides=fast(), data_path=other)) != before
    )
    write_dataset(toy, seed=0)  # the same files written again: the same data
    assert _hash("BPR", toy) == before


def test_a_model_of_your_own_is_covered_by_its_module(toy, monkeypatch):
    from conftest import ROOT

    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    cls = get_model("planted:Planted")
    assert "planted" in identity.run_modules(cls)


@pytest.mark.parametrize(
    "module",
    ["recbole_mmkd.trainer", "recbole_mmkd.metrics", "recbole_mmkd.data.files",
     "recbole_mmkd.distill.losses"],
)  # fmt: skip
def test_the_run_path_and_losses_are_covered(module):
    assert module in identity.run_modules(get_model("KD-LightGCN"))


def test_a_run_records_its_code(toy, tmp_path):
    result = run_one("BPR", "toy", 1, tmp_path / "out", overrides=fast(), data_path=toy)
    assert result.code["version"] and len(result.code["package_digest"]) == 12
    assert result.code["code_digest"] == identity.code_digest(result.code["modules"])
    assert len(result.code["data_digest"]) == 12
    assert result.environment["threads"] >= 1
    assert "git_commit" in result.code  # a commit in a checkout, None in an installed package


@pytest.mark.parametrize(
    ("damage", "file"),
    [
        (lambda d: (d / "result.json").write_text('{"dataset": "to'), "result.json"),
        (lambda d: (d / "result.json").write_text("[]"), "result.json"),
        (lambda d: (d / "per_user.npz").write_bytes(b"PK\x03"), "per_user.npz"),
    ],
)
def test_a_corrupt_result_is_named_skipped_and_rerun(toy, tmp_path, caplog, damage, file):
    out = tmp_path / "out"
    run_one("BPR", "toy", 1, out, overrides=fast(), data_path=toy)
    good = run_one("BPR", "toy", 2, out, overrides=fast(), data_path=toy)
    [broken, _] = find_results(out)
    damage(broken)
    assert [r.seed for r in load_results(out)] == [good.seed]
    assert str(broken / file) in caplog.text and "skipped" in caplog.text
    # re-trained, not a crash
    again = run_one("BPR", "toy", 1, out, overrides=fast(), data_path=toy)
    assert RunResult.load(broken).test == again.test


def test_report_of_a_folder_with_a_corrupt_result_reports_the_rest(toy, tmp_path):
    from recbole_mmkd.api import report

    out = tmp_path / "out"
    for seed in (1, 2):
        run_one("BPR", "toy", seed, out, overrides=fast(), data_path=toy)
    (find_results(out)[0] / "result.json").write_text("{")
    assert report(out).leaderboard["seeds"].tolist() == [1]


def _age(run_dir, old_hash: str, **edit):
    """Make a stored run look as if older code had made it under ``old_hash``."""
    meta = json.loads((run_dir / "result.json").read_text())
    meta.update({"config_hash": old_hash, "code": {}, **edit})
    (run_dir / "result.json").write_text(json.dumps(meta))
    old = run_dir.parent.parent / old_hash / run_dir.name
    shutil.move(str(run_dir), old)
    return old


def test_carry_moves_an_identical_run_to_the_current_code(toy, tmp_path):
    out = tmp_path / "out"
    made = run_one("LightGCN", "toy", 3, out, overrides=fast(epochs=4), data_path=toy)
    [run_dir] = find_results(out)
    old = _age(run_dir, "0ld0ld0ld0")
    line = carry_run(old, epochs=3, data_path=toy)
    assert line.startswith("carried") and "0ld0ld0ld0 -> " + made.config_hash in line
    [moved] = find_results(out)
    assert moved == run_dir and not old.parent.exists()
    carried = RunResult.load(moved)
    assert carried.carried[0]["from_hash"] == "0ld0ld0ld0" and carried.code["code_digest"]
    assert carried.test == made.test
    again = run_one("LightGCN", "toy", 3, out, overrides=fast(epochs=4), data_path=toy)
    assert again.carried  # reused: the carried run is current
    assert carry_run(moved, data_path=toy).startswith("current")


def test_carry_refuses_a_run_whose_fingerprint_differs(toy, tmp_path):
    out = tmp_path / "out"
    run_one("LightGCN", "toy", 3, out, overrides=fast(epochs=4), data_path=toy)
    [run_dir] = find_results(out)
    curve = RunResult.load(run_dir).valid_curve
    curve[1]["loss"] += 1e-12  # older code that trained differently, by one ulp or so
    old = _age(run_dir, "0ld0ld0ld0", valid_curve=curve)
    line = carry_run(old, epochs=3, data_path=toy)
    assert line.startswith("kept") and "fingerprint differs (epoch 1 loss" in line
    assert find_results(out) == [old]  # left where it was


def test_carry_refuses_settings_that_no_longer_exist(toy, tmp_path):
    out = tmp_path / "out"
    run_one("BPR", "toy", 3, out, overrides=fast(epochs=3), data_path=toy)
    [run_dir] = find_results(out)
    config = RunResult.load(run_dir).config | {"retired_key": 1}
    _age(run_dir, "0ld0ld0ld0", config=config)
    [line] = carry_folder(out, data_path=toy)
    assert line.startswith("kept") and "['retired_key'] no longer exist" in line


def test_a_report_names_the_runs_the_current_code_would_not_reproduce(toy, tmp_path):
    from recbole_mmkd.api import report

    out = tmp_path / "out"
    kd = fast(teacher="LightGCN", teacher_config=fast(), kd_method="logit")
    for seed in (1, 2):
        run_one("BPR", "toy", seed, out, overrides=fast(), data_path=toy)
    run_one("KD-BPR", "toy", 1, out, overrides=kd, data_path=toy)
    current = report(out, data_path=toy)
    assert "Not the current code" not in current.to_markdown()  # a student and its teacher too
    _age(find_results(out / "toy" / "BPR")[0], "0ld0ld0ld0")
    stale = report(out, data_path=toy)
    assert "**Not the current code**: 1 of 4 runs" in stale.to_markdown()
    stale.save(out)
    assert "Not the current code" in (out / "leaderboard-toy.md").read_text()
    elsewhere = report(out)  # the dataset is not found without its data path: not verified
    assert "**Not the current code**: 4 of 4 runs" in elsewhere.to_markdown()


def test_carry_moves_a_teacher_then_its_student(toy, tmp_path):
    out = tmp_path / "out"
    kd = fast(epochs=3, teacher="LightGCN", teacher_config=fast(epochs=3), kd_method="logit")
    student = run_one("KD-BPR", "toy", 1, out, overrides=kd, data_path=toy)
    teacher_dir = find_results(out / "toy" / "LightGCN")[0]
    student_dir = find_results(out / "toy" / "KD-BPR")[0]
    _age(teacher_dir, "01dteacher")
    _age(student_dir, "01dstudent", config={**student.config, "teacher_hash": "01dteacher"})
    assert list(carry_folder(out, datasets=["ml-100k-mm"], data_path=toy)) == []  # not toy's
    lines = list(carry_folder(out, datasets=["toy"], data_path=toy))
    assert [line.split()[0] for line in lines] == ["carried", "carried"], lines
    assert "LightGCN" in lines[0] and "KD-BPR" in lines[1]  # the teacher first
    again = run_one("KD-BPR", "toy", 1, out, overrides=kd, data_path=toy)
    assert again.carried and again.test == student.test


def test_carry_restores_a_teachers_missing_artefacts_by_training_it_again(toy, tmp_path):
    """Teacher arrays stay local (uncommitted): carrying a student on a fresh checkout trains
    its teacher again in full, and keeps the arrays only if the whole run comes out identical."""
    from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE

    out = tmp_path / "out"
    kd = fast(epochs=3, teacher="LightGCN", teacher_config=fast(epochs=3), kd_method="logit")
    student = run_one("KD-BPR", "toy", 1, out, overrides=kd, data_path=toy)
    teacher_dir = find_results(out / "toy" / "LightGCN")[0]
    student_dir = find_results(out / "toy" / "KD-BPR")[0]
    tables = dict(np.load(teacher_dir / TABLES_FILE))
    for name in (TABLES_FILE, STATE_FILE):
        (teacher_dir / name).unlink()
    _age(student_dir, "01dstudent", config={**student.config})
    lines = list(carry_folder(out, data_path=toy))
    assert lines[0].startswith("current") and lines[1].startswith("carried"), lines
    restored = dict(np.load(teacher_dir / TABLES_FILE))
    assert all(np.array_equal(tables[k], restored[k]) for k in tables)

    # a teacher whose training no longer reproduces its stored run gets no arrays
    for name in (TABLES_FILE, STATE_FILE):
        (teacher_dir / name).unlink()
    meta = json.loads((teacher_dir / "result.json").read_text())
    meta["test"]["recall@10"] += 1e-9
    (teacher_dir / "result.json").write_text(json.dumps(meta))
    [moved] = find_results(out / "toy" / "KD-BPR")
    _age(moved, "01dstudent", config={**student.config})
    lines = list(carry_folder(out, data_path=toy))
    assert lines[1].startswith("kept") and "training it again differs (test metrics" in lines[1]
    assert not (teacher_dir / TABLES_FILE).exists()


def _tuned_bench(tmp_path, *entries: str):
    """A one-seed toy benchmark over ``entries`` (flow mappings without their ``set``; default
    BPR searching reg_weight), each entry trained 2 epochs, searched one trial at a time."""
    from recbole_mmkd.specs import load_benchmark

    entries = entries or ("model: BPR, space: {reg_weight: [0.01, 0.001]}",)
    quick = str({**fast(epochs=2), "robustness_shares": []}).replace("'", "")
    models = "".join(f"  - {{{entry}, set: {quick}}}\n" for entry in entries)
    spec = tmp_path / "b.yaml"
    spec.write_text(f"datasets: [toy]\nseeds: [1]\nmodels:\n{models}"
                    "tuning: {scheduler: none, seed: 1, max_concurrent: 1}\n")  # fmt: skip
    return load_benchmark(spec)


def _old_sweep(bench, out, toy, *, trained: bool) -> tuple:
    """A sweep folder as older code left it (its identity under config hash "0ld"), chosen
    point reg_weight 0.001, with the benchmark's run at that point and the sweep's seed aged
    to the same older code (``trained``) or absent."""
    from recbole_mmkd.specs import tuning_sweep
    from recbole_mmkd.tune.backend import identity_digest, sweep_identity

    entry = bench.entries[0]
    sweep = tuning_sweep(bench, entry, "toy")
    identity = sweep_identity(sweep, data_path=toy)
    old = {**identity, "config_hash": "0ld"}
    folder = out / "tuning" / "toy" / f"{sweep.name}-{identity_digest(old)}"
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(old))
    trials = [({"reg_weight": 0.01}, 0.2), ({"reg_weight": 0.001}, 0.3)]
    (folder / "trials.jsonl").write_text("".join(
        json.dumps({"trial_id": f"t{i}", "point": p, "best_valid": v, "status": "done"}) + "\n"
        for i, (p, v) in enumerate(trials)
    ))  # fmt: skip
    if trained:
        overrides = {**entry.overrides, "reg_weight": 0.001}
        run_one("BPR", "toy", 1, out, overrides=overrides, data_path=toy)
        _age(find_results(out)[0], "0ld0ld0ld0")
    return folder, identity_digest(identity)


def test_carry_moves_a_sweep_vouched_for_by_its_carried_chosen_run(toy, tmp_path):
    from recbole_mmkd.benchmark import tuned_entries
    from recbole_mmkd.carry import carry_sweeps

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, digest = _old_sweep(bench, out, toy, trained=True)
    ledger = (folder / "trials.jsonl").read_text()
    assert [line.split()[0] for line in carry_folder(out, data_path=toy)] == ["carried"]
    [line] = carry_sweeps(bench, out, data_path=toy)
    assert line.startswith("carried") and folder.name in line
    moved = folder.with_name(folder.name.rsplit("-", 1)[0] + f"-{digest}")
    assert not folder.exists() and (moved / "trials.jsonl").read_text() == ledger
    assert json.loads((moved / "carried.json").read_text())[0]["from_config_hash"] == "0ld"
    [entry] = tuned_entries(bench, "toy", out, data_path=toy, properties=None)  # no new trial
    assert entry.overrides["reg_weight"] == 0.001
    assert (moved / "trials.jsonl").read_text() == ledger
    assert next(iter(carry_sweeps(bench, out, data_path=toy))).startswith("current")


def test_carry_moves_the_model_its_chosen_trial_trained_with_a_carried_sweep(toy, tmp_path):
    """A sweep carried before its chosen trial's model was (left in the older code's folder of
    the run of that point): the next carry moves the model to the current run's folder, and
    the run adopts it, testing what a run trained from the start tests."""
    import torch

    from recbole_mmkd.carry import carry_sweeps
    from recbole_mmkd.pipeline import TRAINED_FILE, Trained
    from recbole_mmkd.prepare import prepare
    from recbole_mmkd.specs import tuning_sweep
    from recbole_mmkd.trainer import MMKDTrainer
    from recbole_mmkd.tune.backend import sweep_identity

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, digest = _old_sweep(bench, out, toy, trained=False)
    current = folder.with_name(folder.name.rsplit("-", 1)[0] + f"-{digest}")
    folder.rename(current)
    sweep = tuning_sweep(bench, bench.entries[0], "toy")
    (current / "sweep.json").write_text(json.dumps(sweep_identity(sweep, data_path=toy)))
    (current / "carried.json").write_text(json.dumps([{"from": folder.name, "vouched_by": "x"}]))
    overrides = {**bench.entries[0].overrides, "reg_weight": 0.001}  # the chosen point (t1)
    run = prepare("BPR", "toy", overrides=overrides, seed=1, data_path=toy)
    fit = MMKDTrainer(run.config, run.model).fit(run.train, run.valid)
    (current / "trials.jsonl").write_text("".join(json.dumps(row) + "\n" for row in [
        {"trial_id": "t0", "point": {"reg_weight": 0.01}, "best_valid": 0.0, "status": "done"},
        {"trial_id": "t1", "point": {"reg_weight": 0.001}, "status": "done",
         "best_valid": fit.best_valid[run.config["valid_metric"].lower()],
         "epochs": fit.epochs_run},
    ]))  # fmt: skip
    models = out / "toy" / "BPR"
    other = replace(fit, epochs_run=fit.epochs_run + 1)  # names t1, but trained otherwise
    for old_hash, trial, its_fit in (("0ld0ld0ld0", "t1", other), ("0ld0ld0ld1", "t0", fit),
                                     ("0ld0ld0ld2", "t1", fit)):  # fmt: skip
        path = models / old_hash / "seed-1" / TRAINED_FILE
        path.parent.mkdir(parents=True)
        state = run.model.state_dict()
        torch.save(Trained(old_hash, its_fit, state, f"in tuning trial {trial} (b)"), path)
    assert list(carry_sweeps(bench, out, data_path=toy, dry_run=True))[1].endswith("not moved)")
    lines = list(carry_sweeps(bench, out, data_path=toy))
    assert lines[0].startswith("current") and lines[1].startswith("carried its trained model")
    assert not (models / "0ld0ld0ld2").exists()
    for kept in ("0ld0ld0ld0", "0ld0ld0ld1"):
        assert (models / kept / "seed-1" / TRAINED_FILE).exists()
    result = run_one("BPR", "toy", 1, out, overrides=overrides, data_path=toy)
    assert "trial t1 (b), carried from 0ld0ld0ld2 with its search" in result.trained_by
    assert result.trained_by.endswith(f"{current.name}/carried.json, the last vouched by x)")
    fresh = run_one("BPR", "toy", 1, tmp_path / "fresh", overrides=overrides, data_path=toy)
    assert not fresh.trained_by and result.test == fresh.test
    assert [line.split()[0] for line in carry_sweeps(bench, out, data_path=toy)] == ["current"]


def test_a_replay_covers_a_validation_and_an_empty_comparison_vouches_for_nothing():
    from recbole_mmkd.carry import first_difference, replayed_epochs

    assert [replayed_epochs({"eval_step": s}, 3) for s in (1, 2, 5)] == [3, 4, 5]
    assert first_difference([], []) == "no validation within the replayed epochs"
    assert first_difference([{"epoch": 4, "loss": 1.0}], [{"epoch": 4, "loss": 1.0}]) is None


def test_carry_keeps_a_sweep_no_carried_run_vouches_for(toy, tmp_path):
    from recbole_mmkd.carry import carry_sweeps

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, _ = _old_sweep(bench, out, toy, trained=False)
    [line] = carry_sweeps(bench, out, data_path=toy)
    assert line.startswith("kept") and "no carried run at its chosen point" in line
    assert folder.is_dir()
    entry = bench.entries[0]  # a run of the current code is no evidence about older trials
    run_one("BPR", "toy", 1, out, overrides={**entry.overrides, "reg_weight": 0.001},
            data_path=toy)  # fmt: skip
    assert next(iter(carry_sweeps(bench, out, data_path=toy))).startswith("kept")


def test_carry_moves_a_sweep_whose_chosen_run_the_current_code_trained_again_identically(
    toy, tmp_path
):
    from recbole_mmkd.carry import carry_sweeps

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, _ = _old_sweep(bench, out, toy, trained=True)  # the older code's run is kept
    entry = bench.entries[0]
    run_one("BPR", "toy", 1, out, overrides={**entry.overrides, "reg_weight": 0.001},
            data_path=toy)  # fmt: skip
    [line] = carry_sweeps(bench, out, data_path=toy)
    assert line.startswith("carried") and folder.name in line and not folder.exists()


def test_a_current_run_that_trained_otherwise_does_not_vouch_for_a_sweep(toy, tmp_path):
    from recbole_mmkd.carry import carry_sweeps

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, _ = _old_sweep(bench, out, toy, trained=True)
    [old] = find_results(out)
    meta = json.loads((old / "result.json").read_text())
    meta["valid_curve"][-1]["loss"] += 1e-9  # the older code trained differently, if barely
    (old / "result.json").write_text(json.dumps(meta))
    entry = bench.entries[0]
    run_one("BPR", "toy", 1, out, overrides={**entry.overrides, "reg_weight": 0.001},
            data_path=toy)  # fmt: skip
    [line] = carry_sweeps(bench, out, data_path=toy)
    assert line.startswith("kept") and folder.is_dir()


def test_carry_finds_the_sweep_of_an_entry_tuned_on_another_current(toy, tmp_path):
    import ray

    from recbole_mmkd.benchmark import tuned_entries
    from recbole_mmkd.carry import carry_sweeps

    bench = _tuned_bench(
        tmp_path,
        "model: BPR, label: S, tuned_on: BPR, space: {learning_rate: [0.01, 0.001]}",
        "model: BPR, space: {reg_weight: [0.5, 1.0e-5]}",
    )
    out = tmp_path / "out"
    try:
        tuned_entries(bench, "toy", out, data_path=toy, properties=None)
    finally:
        ray.shutdown()
    lines = list(carry_sweeps(bench, out, data_path=toy))
    assert [line.split()[0] for line in lines] == ["current", "current"], lines


def _elsewhere(run_dir, old_hash: str, **edit):
    """A stored run as if made on another processor by older code (``_age``)."""
    meta = json.loads((run_dir / "result.json").read_text())
    environment = {**meta["environment"], "cpu": "Another Processor, AVX512"}
    return _age(run_dir, old_hash, environment=environment, **edit)


def _head() -> str:
    import subprocess

    from conftest import ROOT

    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def test_carry_on_another_processor_replays_the_runs_commit_beside_the_current_code(toy, tmp_path):
    """A fingerprint made on another processor cannot replay here; the run's own commit and the
    current code, both replayed here, can be compared instead (a teacher and its student, the
    teacher's arrays not on disk: the student's replays read probe arrays)."""
    from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE

    out = tmp_path / "out"
    kd = fast(epochs=3, teacher="LightGCN", teacher_config=fast(epochs=3), kd_method="logit")
    student = run_one("KD-BPR", "toy", 1, out, overrides=kd, data_path=toy)
    teacher_dir = find_results(out / "toy" / "LightGCN")[0]
    for name in (TABLES_FILE, STATE_FILE):
        (teacher_dir / name).unlink()
    commit = {"git_commit": _head()}
    _elsewhere(teacher_dir, "01dteacher", code=commit)
    _elsewhere(find_results(out / "toy" / "KD-BPR")[0], "01dstudent", code=commit,
               config={**student.config, "teacher_hash": "01dteacher"})  # fmt: skip
    assert list(carry_folder(out, datasets=["ml-100k-mm"], data_path=toy)) == []  # not toy's
    lines = list(carry_folder(out, datasets=["toy"], data_path=toy))
    assert [line.split()[0] for line in lines] == ["carried", "carried"], lines
    assert "the same under both codes on" in lines[1]
    moved = RunResult.load(find_results(out / "toy" / "KD-BPR")[0])
    assert moved.carried[0]["method"] == "a/b" and moved.test == student.test
    assert not (find_results(out / "toy" / "LightGCN")[0] / TABLES_FILE).exists()  # no probe kept


def test_carry_keeps_a_run_of_another_processor_whose_code_is_not_a_clean_commit(toy, tmp_path):
    out = tmp_path / "out"
    run_one("BPR", "toy", 1, out, overrides=fast(), data_path=toy)
    commit = {"git_commit": _head() + "+dirty"}
    _elsewhere(find_results(out)[0], "0ld0ld0ld0", code=commit)
    [line] = carry_folder(out, data_path=toy)
    assert line.startswith("kept") and "not a clean commit" in line


def test_an_ab_replay_gives_older_code_copies_without_the_fields_it_never_knew(tmp_path):
    """Older code reads a RunResult only with the fields it knows: a teacher carried to new
    code holds `serving: {}` (a field added since), which the copy for the old replay drops,
    while every field with a value stays."""
    import json

    from recbole_mmkd.carry import _without_defaults

    path = tmp_path / "result.json"
    path.write_text(json.dumps({"model": "FREEDOM", "serving": {}, "carried": [{"from_hash": "a"}],
                                "robustness": [], "n_params": 3}))  # fmt: skip
    _without_defaults(path)
    assert json.loads(path.read_text()) == {
        "model": "FREEDOM",
        "carried": [{"from_hash": "a"}],
        "n_params": 3,
    }


@pytest.mark.parametrize("finished", [True, False])
def test_carry_moves_a_sweep_no_run_vouches_for_by_replaying_its_commit_beside_the_current_code(
    toy, tmp_path, monkeypatch, finished
):
    """A benchmark searched but not yet run stores no run at its chosen point: the commit whose
    code made the sweep and the current code, each training that point here, vouch instead.
    HEAD stands in for the commit git history would name, and is made to hash the sweep's
    settings as the older code did; the replays are real."""
    from recbole_mmkd import carry
    from recbole_mmkd.specs import tuning_sweep

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, digest = _old_sweep(bench, out, toy, trained=False)
    if not finished:  # one of its two points left: vouched for at the other
        ledger = folder / "trials.jsonl"
        ledger.write_text(ledger.read_text().splitlines(keepends=True)[1])
    sweep = tuning_sweep(bench, bench.entries[0], "toy")
    assert carry._commits_of(folder) == []  # a folder no commit stored
    assert carry._hash_at("0" * 40, sweep, {"seed": 1, "fixed": {}, "data_path": toy}) is None
    head = _head()
    monkeypatch.setattr(carry, "_commits_of", lambda f: ["0" * 40, head])
    monkeypatch.setattr(carry, "_hash_at", lambda c, s, w: "0ld" if c == head else None)
    [line] = carry.carry_sweeps(bench, out, data_path=toy)
    assert line.startswith("carried") and f"under {head[:12]} and the current code" in line, line
    moved = folder.with_name(folder.name.rsplit("-", 1)[0] + f"-{digest}")
    assert not folder.exists()
    [record] = json.loads((moved / "carried.json").read_text())
    assert record["from_config_hash"] == "0ld" and "0.001" in record["vouched_by"]


def test_carry_leaves_a_sweep_a_live_process_is_searching(toy, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from recbole_mmkd.carry import carry_sweeps
    from recbole_mmkd.tune.backend import RUNNING

    bench, out = _tuned_bench(tmp_path), tmp_path / "out"
    folder, _ = _old_sweep(bench, out, toy, trained=False)
    host = socket.gethostname()
    (folder / RUNNING).write_text(json.dumps({"host": host, "pid": os.getpid()}))
    [line] = carry_sweeps(bench, out, data_path=toy)
    assert line.startswith("kept") and f"being searched (pid {os.getpid()} on {host})" in line
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    (folder / RUNNING).write_text(json.dumps({"host": host, "pid": int(ended.stdout)}))
    [line] = carry_sweeps(bench, out, data_path=toy)  # a marker its process left behind
    assert "being searched" not in line and folder.is_dir()
