"""Ray Tune sweeps on tiny data: a grid finishes, an interrupted sweep resumes exactly,
selection uses validation only, and the GPU path where CUDA exists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT

from recbole_mmkd.errors import DataError
from recbole_mmkd.tune import (
    BEST,
    LEDGER,
    load_sweep,
    planned_trials,
    read_ledger,
    run_sweep,
    select_best,
)

SWEEP = """
model: BPR
dataset: toy
search: grid
space:
  reg_weight: [0.0001, 0.001]
  learning_rate: [0.01, 0.001]
set: {epochs: %(epochs)d, train_batch_size: 256, topk: [5, 10, 20], valid_metric: Recall@10,
      stopping_step: 100, robustness_shares: []}
seed: 1
final_seeds: [1]
max_concurrent: 1
%(extra)s
"""
# enough epochs that the interrupt test's kill lands while a trial runs, not after the last
EPOCHS = 12

SCRIPT = """
import sys
from pathlib import Path
import recbole_mmkd
from recbole_mmkd.tune import load_sweep, run_sweep
sweep = load_sweep(Path(sys.argv[1]) / "tiny.yaml")
run_sweep(sweep, Path(sys.argv[2]), data_path=Path(sys.argv[3]), resume=sys.argv[4] == "resume")
"""


def _write(folder: Path, extra: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(SWEEP % {"epochs": EPOCHS, "extra": extra})


def _sweep(folder: Path, out: Path, data: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    args = [sys.executable, "-c", SCRIPT, str(folder), str(out), str(data), mode]
    return subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _trial_rows(experiment: Path) -> dict[str, int]:
    """Reported epochs per trial directory of one Tune launch, from Ray's result files."""
    return {
        p.parent.name: len(p.read_text().splitlines())
        for p in experiment.glob("trial_*/result.json")
    }


def test_sweep_interrupted_after_two_trials_resumes_to_exactly_the_planned_grid(toy, tmp_path):
    from recbole_mmkd.tune import LEDGER, read_ledger

    folder, out = tmp_path / "sweeps", tmp_path / "out"
    _write(folder)
    assert planned_trials(load_sweep(folder / "tiny.yaml")) == 4
    first = _sweep(folder, out, toy, "new")
    log = out / "progress.log"
    deadline = time.time() + 600
    while time.time() < deadline:  # kill -9 once two trials are done and a third has started
        lines = log.read_text().splitlines() if log.is_file() else []
        if sum(" done " in x for x in lines) >= 2 and sum(" started " in x for x in lines) >= 3:
            break
        assert first.poll() is None, "the sweep ended before it could be interrupted"
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = read_ledger(out / LEDGER)  # 2 to 4: Tune may report trials in a burst
    assert len(done_before) >= 2 and {r["status"] for r in done_before} == {"done"}
    launch0 = out / "ray" / "tiny-0"
    stamps = {p: p.stat().st_mtime_ns for p in launch0.glob("trial_*/result.json")}

    second = _sweep(folder, out, toy, "resume")
    assert second.wait(timeout=600) == 0
    table = pd.read_csv(out / "sweep-tiny.csv")
    assert len(table) == 4 and set(table["status"]) == {"done"}  # none lost, none twice
    grid = {(r, lr) for r in (0.0001, 0.001) for lr in (0.01, 0.001)}
    assert set(zip(table["reg_weight"], table["learning_rate"], strict=True)) == grid
    # the resume launched only the points the ledger lacked, each run to its last epoch (a
    # trial killed mid-way from the state it left on disk: it reports only the epochs after)
    rows = _trial_rows(out / "ray" / "tiny-1")  # no launch at all where all 4 had finished
    later = read_ledger(out / LEDGER)[len(done_before) :]
    assert len(rows) == len(later) == 4 - len(done_before)
    assert all(r["epochs"] == EPOCHS for r in later)
    assert sorted(rows.values()) == sorted(EPOCHS - r.get("resumed_from", 0) for r in later)
    assert (out / "figures" / "sweep-tiny.png").stat().st_size > 1000  # the grid's heatmap
    for path, stamp in stamps.items():  # nothing of the first launch was touched
        assert path.stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="--resume"):  # a second sweep into the same folder
        run_sweep(load_sweep(folder / "tiny.yaml"), out, data_path=toy)


def test_resume_runs_exactly_the_grid_points_missing_from_the_ledger(toy, tmp_path):
    import ray

    from recbole_mmkd.tune import LEDGER

    _write(tmp_path / "sweeps")
    sweep, out = load_sweep(tmp_path / "sweeps" / "tiny.yaml"), tmp_path / "out"
    try:
        first = run_sweep(sweep, out, data_path=toy)
        lines = (out / LEDGER).read_text().splitlines()
        # as if killed after two trials, while the third one's record was being written
        (out / LEDGER).write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:25])
        table = run_sweep(sweep, out, data_path=toy, resume=True)
    finally:
        ray.shutdown()
    assert len(table) == 4 and list(table["trial_id"][:2]) == list(first["trial_id"][:2])
    points = {(r, lr) for r, lr in zip(table["reg_weight"], table["learning_rate"], strict=True)}
    assert len(points) == 4  # the lost record's point ran again, nothing twice
    assert len(_trial_rows(out / "ray" / "tiny-1")) == 2


def test_ledger_survives_a_cut_line_and_plans_what_is_left(tmp_path):
    from recbole_mmkd.tune import append_ledger, planned_points, read_ledger, remaining_points

    ledger = tmp_path / "trials.jsonl"
    append_ledger(ledger, {"point": {"a": 1}})
    with open(ledger, "a") as handle:
        handle.write('{"point": {"a": 2')  # a kill in the middle of a record
    append_ledger(ledger, {"point": {"a": 3}})
    assert [r["point"] for r in read_ledger(ledger)] == [{"a": 1}, {"a": 3}]
    _write(tmp_path / "sweeps", "num_samples: 2")
    sweep = load_sweep(tmp_path / "sweeps" / "tiny.yaml")
    planned = planned_points(sweep)  # the 2 x 2 grid, twice
    assert len(planned) == 8 and planned[:4] == planned[4:]
    done = [planned[0], planned[0], planned[1]]
    left = remaining_points(planned, done)
    assert len(left) == 5 and planned[0] not in left and left.count(planned[1]) == 1
    text = (tmp_path / "sweeps" / "tiny.yaml").read_text().replace("search: grid", "search: random")
    (tmp_path / "sweeps" / "tiny.yaml").write_text(
        text.replace("[0.0001, 0.001]", "{loguniform: [0.0001, 0.01]}")
    )
    draws = planned_points(load_sweep(tmp_path / "sweeps" / "tiny.yaml"))
    assert draws == planned_points(load_sweep(tmp_path / "sweeps" / "tiny.yaml"))  # seeded
    assert len(draws) == 2 and all(1e-4 <= d["reg_weight"] <= 1e-2 for d in draws)


def test_a_categorical_grid_key_gets_its_heatmap_axis():
    from recbole_mmkd.reporting.sweep import sweep_figure
    from recbole_mmkd.tune import planned_points, sweep_table

    sweep = load_sweep("kd-lightgcn-freedom")  # kd_method x kd_weight
    rows = [
        {"trial_id": f"t{i}", "point": p, BEST: 0.05 + 0.01 * i, "status": "done"}
        for i, p in enumerate(planned_points(sweep))
    ]
    axes = sweep_figure(sweep_table(rows, sweep), sweep, "recall@20").axes[0]
    assert axes.get_xlabel() == "kd_weight"
    assert [t.get_text() for t in axes.get_yticklabels()] == ["logit", "rd", "rrd"]


def test_selection_uses_validation_only():
    # trial b has the best test score but a worse validation score: a must be selected
    table = pd.DataFrame(
        {"trial_id": ["a", "b", "c"], BEST: [0.30, 0.25, None], "test": [0.10, 0.40, 0.50]}
    )
    assert select_best(table)["trial_id"] == "a"


def test_trials_report_no_test_metric():
    import inspect

    from recbole_mmkd import tune

    source = inspect.getsource(tune.trial)
    assert "test" not in source.split('"""')[2]  # the trial never touches the test split


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("search: bayes", "search"),
        ("scheduler: hyperband", "scheduler"),
        ("search: random\nnum_samples: 4\nscheduler: halving", "scheduler"),
        ("colour: blue", "colour"),
    ],
)
def test_bad_sweep_files_name_the_field(tmp_path, extra, field):
    _write(tmp_path, extra)
    with pytest.raises(DataError, match=f"field '{field}'"):
        load_sweep(tmp_path / "tiny.yaml")


def test_bad_space_values(tmp_path):
    _write(tmp_path)
    text = (tmp_path / "tiny.yaml").read_text()
    (tmp_path / "tiny.yaml").write_text(
        text.replace("[0.0001, 0.001]", "{loguniform: [0.0001, 0.1]}")
    )
    with pytest.raises(DataError, match="in a grid search"):
        load_sweep(tmp_path / "tiny.yaml")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fractional_gpu_trials_run_on_cuda(toy, tmp_path):
    _write(tmp_path / "sweeps", "gpus_per_trial: 0.5")
    table = run_sweep(
        load_sweep(tmp_path / "sweeps" / "tiny.yaml"), tmp_path / "out", data_path=toy
    )
    assert len(table) == 4 and set(table["device"]) == {"cuda"}


def test_tpe_search_with_asha_runs_the_planned_trials_and_resumes_informed(toy, tmp_path):
    import ray

    _write(tmp_path / "sweeps", "num_samples: 3\nscheduler: asha\ngrace_period: 1")
    text = (tmp_path / "sweeps" / "tiny.yaml").read_text().replace("search: grid", "search: tpe")
    text = text.replace("[0.0001, 0.001]", "{loguniform: [0.0001, 0.01]}")
    (tmp_path / "sweeps" / "tiny.yaml").write_text(text)
    try:
        table = run_sweep(
            load_sweep(tmp_path / "sweeps" / "tiny.yaml"), tmp_path / "out", data_path=toy
        )
        assert len(table) == 3 and table[BEST].notna().all()
        assert table["reg_weight"].between(0.0001, 0.01).all()
        assert (tmp_path / "out" / "figures" / "sweep-tiny.pdf").is_file()  # the trials' scatter
        # one more trial on resume: Optuna is told the three finished ones, none re-runs
        folder = tmp_path / "sweeps"
        (folder / "tiny.yaml").write_text(text.replace("num_samples: 3", "num_samples: 4"))
        more = run_sweep(
            load_sweep(folder / "tiny.yaml"), tmp_path / "out", data_path=toy, resume=True
        )
    finally:
        ray.shutdown()
    assert len(more) == 4 and list(more["trial_id"][:3]) == list(table["trial_id"])
    assert len(list((tmp_path / "out" / "ray" / "tiny-1").glob("trial_*"))) == 1


def test_a_finished_student_sweep_resumes_without_training_its_teacher(toy, tmp_path):
    import shutil

    import ray

    fast = "epochs: 2, train_batch_size: 256, topk: [5, 10, 20], robustness_shares: []"
    teacher = f"teacher: BPR, teacher_config: {{{fast}}}, kd_method: rd"
    extra = f"set: {{{teacher}, {fast}, valid_metric: Recall@10}}"
    (tmp_path / "kd.yaml").write_text(
        "model: KD-LightGCN\ndataset: toy\nsearch: grid\nspace: {kd_weight: [0.1]}\n"
        f"{extra}\nseed: 1\nfinal_seeds: [1]\nmax_concurrent: 1\n"
    )
    sweep, out = load_sweep(tmp_path / "kd.yaml"), tmp_path / "out"
    teachers = tmp_path / "teachers"
    try:
        first = run_sweep(sweep, out, data_path=toy, teacher_root=teachers)
        assert any(teachers.rglob("representations.npz"))  # trained before the first trial
        shutil.rmtree(teachers)
        again = run_sweep(sweep, out, data_path=toy, resume=True, teacher_root=teachers)
    finally:
        ray.shutdown()
    assert not teachers.exists()  # nothing left to run, so no teacher was trained
    assert list(again["trial_id"]) == list(first["trial_id"])


def _halving_records(planned, values, cap, *, stopped=()):
    """Records of one halving round: each point at its planted value, run to the cap unless
    it is in ``stopped`` (finished early, at 1 epoch)."""
    return [
        {"point": p, BEST: values[p["x"]], "epochs": 1 if p["x"] in stopped else (cap or 50),
         "status": "done", "budget": cap}
        for p in planned
    ]  # fmt: skip


def test_halving_keeps_the_best_third_of_each_round_at_equal_epochs():
    from recbole_mmkd.tune.halving import next_round

    grid = [{"x": i} for i in range(9)]
    rate = {"grace": 5, "factor": 3, "epochs": 100}
    values = [0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6, 0.5]
    assert next_round(grid, [], **rate) == (5, grid)
    records = _halving_records(grid, values, 5)
    assert next_round(grid, records[:4], **rate) == (5, grid[4:])  # a resume: the rest
    assert next_round(grid, records, **rate) == (15, [{"x": 1}, {"x": 3}, {"x": 5}])
    records += _halving_records([{"x": 1}, {"x": 3}, {"x": 5}], [0, 0.6, 0, 0.9, 0, 0.5], 15)
    assert next_round(grid, records, **rate) == (None, [{"x": 3}])  # one left: uncapped
    records += _halving_records([{"x": 3}], values, None)
    assert next_round(grid, records, **rate) is None
    table = pd.DataFrame([{**r.pop("point"), **r} for r in records])
    assert select_best(table)["x"] == 3 and pd.isna(select_best(table)["budget"])


def test_halving_keeps_a_point_that_stopped_early_without_running_it_again():
    from recbole_mmkd.tune.halving import next_round

    grid = [{"x": i} for i in range(3)]
    rate = {"grace": 5, "factor": 3, "epochs": 100}
    records = _halving_records(grid, [0.9, 0.1, 0.2], 5, stopped={0})
    assert next_round(grid, records, **rate) is None  # the kept point is already finished
    table = pd.DataFrame([{**r.pop("point"), **r} for r in records])
    assert select_best(table)["x"] == 0  # stopped within its cap: a result


def test_halving_over_runs_no_longer_than_its_first_cap_selects_from_uncapped_records():
    from recbole_mmkd.tune.halving import next_round

    # a model that trains fewer epochs than the grace period (ItemKNNCBF: one) runs every
    # point uncapped in the first round: every record's budget is None, and that is a result
    grid = [{"x": i} for i in range(3)]
    records = _halving_records(grid, [0.2, 0.9, 0.1], None)
    assert next_round(grid, records, grace=30, factor=3, epochs=1) is None
    table = pd.DataFrame([{**r.pop("point"), **r} for r in records])
    assert table["budget"].isna().all() and select_best(table)["x"] == 1


def test_a_halving_sweep_runs_its_rounds_capped_and_selects_an_uncapped_trial(toy, tmp_path):
    import ray

    _write(tmp_path / "sweeps", "scheduler: halving\ngrace_period: 2\nreduction_factor: 2")
    sweep = load_sweep(tmp_path / "sweeps" / "tiny.yaml")
    try:
        table = run_sweep(sweep, tmp_path / "out", data_path=toy)
    finally:
        ray.shutdown()
    caps = table["budget"].tolist()
    assert caps[:4] == [2, 2, 2, 2] and caps[4:6] == [4, 4] and pd.isna(caps[6])
    assert list(table["epochs"][:6]) == [2, 2, 2, 2, 4, 4]  # each round trained to its cap
    assert table["epochs"].iloc[6] == EPOCHS
    best = select_best(table)
    assert pd.isna(best["budget"]) and best[BEST] == table[BEST].iloc[6]
    # each later round continued its points from the state their trials left at the last cap
    records = read_ledger(tmp_path / "out" / LEDGER)
    assert [r.get("resumed_from") for r in records] == [None] * 4 + [2, 2, 4]
    assert not (tmp_path / "out" / "snapshots").exists()  # removed once the search is done
    assert not (tmp_path / "out" / "running.json").exists()  # nor marked as being searched


def test_a_trial_killed_mid_training_goes_on_from_its_last_checkpoint(toy, tmp_path):
    """Training in checkpointed stretches is one fit: the same curve and parameters; and a
    fresh process resuming from a checkpoint left mid-way (the state on disk when a session
    was killed) ends exactly there too. Only the latest checkpoint of a point is kept."""
    from conftest import fast

    from recbole_mmkd.prepare import prepare
    from recbole_mmkd.trainer import MMKDTrainer
    from recbole_mmkd.tune.backend import previous_snapshot, save_snapshot, snapshot_path

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = []

        def build():
            run = prepare("LightGCN", "toy", overrides=fast(epochs=5), data_path=toy)
            runs.append(run)
            return run, MMKDTrainer(run.config, run.model)

        run, trainer = build()
        whole = trainer.fit(run.train, run.valid)
        point, folder, saved = {"reg_weight": 1e-4}, tmp_path / "snapshots", []
        where = {"device": "cpu", "threads": 1}

        def save(state) -> None:
            saved.append(state.epoch)
            save_snapshot(folder, point, state, where)

        run, trainer = build()
        stretched = trainer.fit_checkpointed(run.train, run.valid, save=save, every_seconds=0.0)
        assert saved == [1, 2, 3, 4]  # one epoch a stretch: a state after each but the last
        assert [p.name for p in folder.iterdir()] == [snapshot_path(folder, point, 4).name]
        assert previous_snapshot(folder, point, 5, {"device": "cuda", "threads": 1}) is None
        state = previous_snapshot(folder, point, 5, where)
        run, trainer = build()  # a new process, from the state on disk
        resumed = trainer.fit_checkpointed(run.train, run.valid, resume=state, save=save)
    finally:
        torch.set_num_threads(threads)
    for fit in (stretched, resumed):
        assert fit.curve == whole.curve and fit.best_epoch == whole.best_epoch
    for other in runs[1:]:
        for key, value in runs[0].model.state_dict().items():
            assert torch.equal(value, other.model.state_dict()[key]), key


@pytest.mark.parametrize("grace", [2, 4])
def test_a_halving_grace_period_off_the_validation_steps_is_refused(toy, tmp_path, grace):
    """A round's cap between two validations: below ``eval_step`` the first round would
    validate at its cap, where a run of the point does not (the trainer shortens eval_step to
    a run's epochs); above, its ledger would end before the cap and read as an early stop.
    Refused before training; a multiple of eval_step is not."""
    from recbole_mmkd.errors import ConfigError
    from recbole_mmkd.specs import check_sweep

    _write(tmp_path, f"scheduler: halving\ngrace_period: {grace}\nreduction_factor: 2")
    text = (
        (tmp_path / "tiny.yaml")
        .read_text()
        .replace("stopping_step: 100,", "stopping_step: 100, eval_step: 3,")
    )
    (tmp_path / "tiny.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"grace_period.*not a multiple of eval_step 3"):
        check_sweep(load_sweep(tmp_path / "tiny.yaml"), data_path=toy)
    (tmp_path / "tiny.yaml").write_text(text.replace(f"grace_period: {grace}", "grace_period: 6"))
    check_sweep(load_sweep(tmp_path / "tiny.yaml"), data_path=toy)
