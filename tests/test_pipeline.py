"""One run end to end: validation-only selection, RunResult on disk, reuse, clean cwd."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from conftest import fast

from recbole_mmkd.pipeline import run_one
from recbole_mmkd.prepare import config_for, prepare
from recbole_mmkd.reporting.leaderboard import leaderboard, to_markdown
from recbole_mmkd.result import RunResult, find_results, load_results


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_run_one_writes_and_reuses(toy, tmp_path, in_tmp_cwd):
    out = tmp_path / "results"
    result = run_one(
        "LightGCN", "toy", 7, out, overrides=fast(epochs=4, stopping_step=1), data_path=toy
    )
    assert os.listdir(in_tmp_cwd) == []  # no log/, saved/, log_tensorboard/ in the working dir
    [run_dir] = find_results(out)
    loaded = RunResult.load(run_dir)
    assert loaded.test == result.test and loaded.seed == 7 and loaded.model == "LightGCN"
    for key, mean in loaded.test.items():
        assert loaded.test_per_user[key].mean() == pytest.approx(mean, abs=1e-9)
    assert sorted(loaded.test_user_ids.tolist()) == list(range(40))  # raw user ids
    assert loaded.n_params == 2 * (41 + 31) * 64 // 2
    tables = (41 + 31) * 64 * 4  # float32 user and item tables
    assert loaded.serving["tables"] == tables
    assert loaded.serving["model"] > tables  # its ID tables and the normalised graph
    assert loaded.train_seconds > 0 and loaded.test_seconds > 0

    # selection uses validation only: the best epoch is the (last) argmax of the valid curve
    scores = [row[loaded.valid_metric] for row in loaded.valid_curve]
    assert (
        loaded.best_epoch
        == loaded.valid_curve[len(scores) - 1 - int(np.argmax(scores[::-1]))]["epoch"]
    )
    assert loaded.best_valid[loaded.valid_metric] == max(scores)

    again = run_one(
        "LightGCN", "toy", 7, out, overrides=fast(epochs=4, stopping_step=1), data_path=toy
    )
    assert again.train_seconds == loaded.train_seconds  # loaded, not re-trained
    assert len(find_results(out)) == 1


def test_model_state_is_best_validation_state(toy, tmp_path):
    from recbole_mmkd.trainer import MMKDTrainer

    run = prepare("BPR", "toy", overrides=fast(epochs=6, learning_rate=0.05), data_path=toy)
    trainer = MMKDTrainer(run.config, run.model)
    fit = trainer.fit(run.train, run.valid)
    assert trainer.evaluate(run.valid) == fit.best_valid


def test_config_ignores_command_line(toy, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=999", "--learning_rate=9"])
    config = config_for("BPR", "toy", overrides=fast(), data_path=toy)
    assert config["epochs"] == 2 and config["learning_rate"] == 0.001


def test_config_leaves_cuda_visible_devices(toy, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    config_for("BPR", "toy", overrides={"gpu_id": "0"}, data_path=toy)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_config_hash_tracks_settings_not_seed(toy):
    from recbole_mmkd.identity import config_hash

    base = config_hash(config_for("BPR", "toy", overrides=fast(seed=1), data_path=toy))
    assert base == config_hash(config_for("BPR", "toy", overrides=fast(seed=2), data_path=toy))
    assert base != config_hash(
        config_for("BPR", "toy", overrides=fast(reg_weight=0.5), data_path=toy)
    )


def test_leaderboard_over_seeds(toy, tmp_path):
    out = tmp_path / "results"
    for model in ("BPR", "VBPR"):
        for seed in (1, 2):
            run_one(model, "toy", seed, out, overrides=fast(), data_path=toy)
    table = leaderboard(load_results(out))
    assert list(table["seeds"]) == [2, 2]
    assert set(table["model"]) == {"BPR", "VBPR"}
    text = to_markdown(table)
    assert "recall@20" in text and "±" in text


def test_result_save_is_atomic_replace(tmp_path, toy):
    result = run_one("BPR", "toy", 1, tmp_path / "r", overrides=fast(epochs=1), data_path=toy)
    [run_dir] = find_results(tmp_path / "r")
    result.best_epoch = 123
    result.save(run_dir)
    assert RunResult.load(run_dir).best_epoch == 123
    assert [p.name for p in run_dir.parent.iterdir()] == [run_dir.name]  # no temp leftovers


def test_a_recbole_model_runs_and_records_what_it_holds(toy, tmp_path):
    """RecBole's own models have no tables to measure: their RunResult records the model's
    bytes alone (a run of one ended in an AttributeError before it was saved)."""
    result = run_one("recbole.BPR", "toy", 1, tmp_path / "out", overrides=fast(), data_path=toy)
    assert set(result.serving) == {"model"} and result.serving["model"] == (41 + 31) * 64 * 4


def test_a_run_killed_mid_training_goes_on_from_its_checkpoint(toy, tmp_path, monkeypatch):
    """A run whose process dies after two of its checkpoints (stretches of one epoch) goes on
    from the second when run again, and ends with the RunResult of a run never stopped; the
    checkpoint is gone once the run is saved."""
    import torch

    from recbole_mmkd import pipeline, trainer

    overrides = fast(epochs=5, stopping_step=100)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as trials and benchmark runs train
    try:
        whole = run_one("LightGCN", "toy", 3, tmp_path / "whole", overrides=overrides,
                        data_path=toy)  # fmt: skip
        monkeypatch.setattr(trainer, "CHECKPOINT_SECONDS", 0.0)
        written = []
        keep = pipeline.write_snapshot

        def dies_after_two(path, state, where):
            keep(path, state, where)
            written.append(state.epoch)
            if len(written) == 2:
                raise KeyboardInterrupt  # the session ends

        monkeypatch.setattr(pipeline, "write_snapshot", dies_after_two)
        with pytest.raises(KeyboardInterrupt):
            run_one("LightGCN", "toy", 3, tmp_path / "cut", overrides=overrides, data_path=toy)
        [checkpoint] = (tmp_path / "cut").rglob(pipeline.CHECKPOINT_FILE)
        assert written == [1, 2] and torch.load(checkpoint, weights_only=False).snapshot.epoch == 2
        written.clear()

        def records(path, state, where):
            keep(path, state, where)
            written.append(state.epoch)

        monkeypatch.setattr(pipeline, "write_snapshot", records)
        again = run_one("LightGCN", "toy", 3, tmp_path / "cut", overrides=overrides,
                        data_path=toy)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert written == [3, 4]  # went on from epoch 2, not from the start
    assert again.valid_curve == whole.valid_curve and again.test == whole.test
    assert not checkpoint.exists()


def test_a_model_that_cannot_resume_trains_in_one_go(toy, tmp_path):
    """A user's model class marked ``resumable = False`` is never resumed: the trainer refuses
    a Snapshot, and a run trains it in one fit, leaving no checkpoint."""
    from recbole_mmkd.pipeline import CHECKPOINT_FILE, train
    from recbole_mmkd.trainer import MMKDTrainer

    run = prepare("LightGCN", "toy", overrides=fast(epochs=2), data_path=toy)
    run.model.resumable = False
    trainer = MMKDTrainer(run.config, run.model)
    fit = train(trainer, run, tmp_path / CHECKPOINT_FILE)
    assert fit.epochs_run == 2 and not (tmp_path / CHECKPOINT_FILE).exists()
    trainer.fit(run.train, run.valid, snapshot=True)
    with pytest.raises(ValueError, match="cannot resume"):
        trainer.fit(run.train, run.valid, resume=trainer.last_snapshot)


def test_a_checkpoint_damaged_or_made_elsewhere_is_not_resumed(toy, tmp_path, caplog):
    """A checkpoint that cannot be read, is not one, or that another device kind or thread
    count made (its random streams or float sums would differ), is set aside with a warning
    (the run then trains from the start)."""
    import torch

    from recbole_mmkd.pipeline import CHECKPOINT_FILE, read_snapshot, resume_key, write_snapshot
    from recbole_mmkd.trainer import MMKDTrainer

    run = prepare("LightGCN", "toy", overrides=fast(epochs=2), data_path=toy)
    trainer = MMKDTrainer(run.config, run.model)
    path = tmp_path / CHECKPOINT_FILE
    path.write_bytes(b"cut short")
    assert read_snapshot(path, resume_key(run.config)) is None
    assert "cannot be read" in caplog.text
    saved = []
    trainer.fit_checkpointed(run.train, run.valid, save=saved.append, every_seconds=0.0)
    write_snapshot(path, saved[0], {"device": "cuda", "threads": 1})
    assert read_snapshot(path, resume_key(run.config)) is None
    assert "was made on" in caplog.text
    torch.save(saved[0], path)  # a bare Snapshot: not a checkpoint of this version
    assert read_snapshot(path, resume_key(run.config)) is None
    assert "no checkpoint of this version" in caplog.text
