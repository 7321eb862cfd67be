"""Progress a person can follow: a live line on a terminal, a line every N epochs in a log, and
which run of a benchmark is next with an estimate of what is left."""

from __future__ import annotations

import io
import logging

from conftest import fast

from recbole_mmkd.progress import BenchmarkProgress, EpochProgress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(progress: EpochProgress, epochs: int) -> None:
    for epoch in range(epochs):
        progress.update(epoch, 1.0 / (epoch + 1), 0.1 * epoch, 0.1 * epoch, 0, last=epoch == 4)


def test_a_terminal_gets_one_live_line(caplog):
    stream = Terminal()
    progress = EpochProgress("toy / BPR", epochs=5, patience=20, metric="Recall@20", stream=stream)
    with caplog.at_level(logging.INFO, logger="recbole_mmkd.progress"):
        _feed(progress, 5)
    text = stream.getvalue()
    assert text.count("\r\033[K") == 5 and text.endswith("\n") and text.count("\n") == 1
    last = text.rsplit("\r\033[K", 1)[1]
    assert last.startswith("toy / BPR: epoch 5/5 loss 0.2000 Recall@20 0.4000 (best 0.4000)")
    assert "patience 20/20" in last and not caplog.records  # nothing logged twice


def test_a_log_gets_a_line_every_n_epochs_and_the_last(caplog):
    progress = EpochProgress("x", epochs=5, patience=3, metric="m", every=2, stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="recbole_mmkd.progress"):
        _feed(progress, 5)
    assert [r.getMessage().split(" loss")[0] for r in caplog.records] == [
        "x: epoch 2/5", "x: epoch 4/5", "x: epoch 5/5",
    ]  # fmt: skip


def test_every_zero_is_silent(caplog):
    progress = EpochProgress("x", epochs=5, patience=3, metric="m", every=0, stream=Terminal())
    with caplog.at_level(logging.INFO, logger="recbole_mmkd.progress"):
        _feed(progress, 5)
    assert not caplog.records and progress.stream.getvalue() == ""


def test_a_benchmark_says_which_run_of_how_many_and_what_is_left(toy, tmp_path, caplog):
    from recbole_mmkd.api import run_models

    with caplog.at_level(logging.INFO, logger="recbole_mmkd"):
        run_models(["BPR"], "toy", seeds=[1, 2], overrides=fast(), out=tmp_path, data_path=toy)
        run_models(["BPR"], "toy", seeds=[1], overrides=fast(), out=tmp_path, data_path=toy)
    lines = [r.getMessage() for r in caplog.records if r.name == "recbole_mmkd.progress"]
    assert lines[0] == "[1/2] toy / BPR / seed 1"
    assert lines[-1] == "[1/1] toy / BPR / seed 1 (stored, reused)"
    second = next(line for line in lines if line.startswith("[2/2]"))
    assert second.startswith("[2/2] toy / BPR / seed 2 (about ") and second.endswith(" left)")
    assert any(line.startswith("toy / BPR / seed 1: epoch 2/2") for line in lines)


def test_estimate_counts_trained_runs_only():
    progress = BenchmarkProgress(4)
    progress.begin("a", stored=True)
    progress.end(trained=False)
    assert progress.trained == 0 and progress.done == 1
