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

from recbole_mmkd.data.files import DataError
from recbole_mmkd.tune import BEST, load_sweep, planned_trials, select_best

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
sweep = load_sweep("tiny", Path(sys.argv[1]))
run_sweep(sweep, Path(sys.argv[2]), Path(sys.argv[3]), resume=sys.argv[4] == "resume")
"""


def _write(folder: Path, extra: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(SWEEP % {"epochs": EPOCHS, "extra": extra})


def _sweep(folder: Path, out: Path, data: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
    args = [sys.executable, "-c", SCRIPT, str(folder), str(out), str(data), mode]
    return subprocess.Popen(args, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _trial_rows(out: Path) -> dict[str, int]:
    """Reported epochs per trial directory, from Ray's result files."""
    return {
        p.parent.name: len(p.read_text().splitlines())
        for p in (out / "ray" / "tiny").glob("trial_*/result.json")
    }


def test_sweep_interrupted_after_two_trials_resumes_to_exactly_the_planned_grid(toy, tmp_path):
    folder, out = tmp_path / "sweeps", tmp_path / "out"
    _write(folder)
    assert planned_trials(load_sweep("tiny", folder)) == 4
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
    done_before = {k: v for k, v in _trial_rows(out).items() if v == EPOCHS}
    assert len(done_before) >= 2
    stamps = {k: (out / "ray" / "tiny" / k / "result.json").stat().st_mtime_ns for k in done_before}

    second = _sweep(folder, out, toy, "resume")
    assert second.wait(timeout=600) == 0
    table = pd.read_csv(out / "sweep-tiny.csv")
    assert len(table) == 4 and set(table["status"]) == {"done"}
    grid = {(r, lr) for r in (0.0001, 0.001) for lr in (0.01, 0.001)}
    assert set(zip(table["reg_weight"], table["learning_rate"], strict=True)) == grid
    rows = _trial_rows(out)
    assert len(rows) == 4 and all(v == EPOCHS for v in rows.values())  # none counted twice
    assert (out / "figures" / "sweep-tiny.png").stat().st_size > 1000  # the grid's heatmap
    for name, stamp in stamps.items():  # finished trials were not re-run
        assert (out / "ray" / "tiny" / name / "result.json").stat().st_mtime_ns == stamp


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
        ("colour: blue", "colour"),
    ],
)
def test_bad_sweep_files_name_the_field(tmp_path, extra, field):
    _write(tmp_path, extra)
    with pytest.raises(DataError, match=f"field '{field}'"):
        load_sweep("tiny", tmp_path)


def test_bad_space_values(tmp_path):
    _write(tmp_path)
    text = (tmp_path / "tiny.yaml").read_text()
    (tmp_path / "tiny.yaml").write_text(
        text.replace("[0.0001, 0.001]", "{loguniform: [0.0001, 0.1]}")
    )
    with pytest.raises(DataError, match="in a grid search"):
        load_sweep("tiny", tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fractional_gpu_trials_run_on_cuda(toy, tmp_path):
    from recbole_mmkd.tune import run_sweep

    _write(tmp_path / "sweeps", "gpus_per_trial: 0.5")
    table = run_sweep(load_sweep("tiny", tmp_path / "sweeps"), tmp_path / "out", toy)
    assert len(table) == 4 and set(table["device"]) == {"cuda"}


def test_tpe_search_with_asha_runs_the_planned_trials(toy, tmp_path):
    import ray

    from recbole_mmkd.tune import run_sweep

    _write(tmp_path / "sweeps", "num_samples: 3\nscheduler: asha\ngrace_period: 1")
    text = (tmp_path / "sweeps" / "tiny.yaml").read_text().replace("search: grid", "search: tpe")
    text = text.replace("[0.0001, 0.001]", "{loguniform: [0.0001, 0.01]}")
    (tmp_path / "sweeps" / "tiny.yaml").write_text(text)
    try:
        table = run_sweep(load_sweep("tiny", tmp_path / "sweeps"), tmp_path / "out", toy)
    finally:
        ray.shutdown()
    assert len(table) == 3 and table[BEST].notna().all()
    assert table["reg_weight"].between(0.0001, 0.01).all()
    assert (tmp_path / "out" / "figures" / "sweep-tiny.pdf").is_file()  # the trials' scatter


def test_a_truncated_ray_state_stops_the_resume_with_the_file_named(tmp_path):
    import ray.cloudpickle as cloudpickle

    from recbole_mmkd.data.files import DataError
    from recbole_mmkd.tune import check_restorable

    experiment = tmp_path / "ray" / "tiny"
    experiment.mkdir(parents=True)
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    state = experiment / "basic-variant-state-2026-01-01_00-00-00.json"
    state.write_bytes(cloudpickle.dumps({"iterators": []}))
    check_restorable(experiment)  # whole files: fine
    newer = experiment / "basic-variant-state-2026-01-01_00-00-09.json"
    newer.write_bytes(b"")  # what a kill during Ray's copy leaves behind
    with pytest.raises(DataError, match=r"basic-variant-state-2026-01-01_00-00-09\.json"):
        check_restorable(experiment)
    newer.write_bytes(cloudpickle.dumps({"iterators": []})[:10])  # cut short
    with pytest.raises(DataError, match="truncated"):
        check_restorable(experiment)
    newer.unlink()
    (experiment / "experiment_state-2026-01-01_00-00-09.json").write_text('{"trial_da')
    with pytest.raises(DataError, match="experiment_state"):
        check_restorable(experiment)
