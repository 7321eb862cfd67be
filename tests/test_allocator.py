"""The allocator settings of training processes and of memory measurements, each in a fresh
process (they hold for the whole process)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")

FREED_AFTER = """
import sys, psutil, torch
from recbole_mmkd.allocator import keep_freed_memory, return_freed_memory
assert {setting}()
rss = lambda: psutil.Process().memory_info().rss / 2**20
x = torch.ones(2**26)  # 256 MB
held = rss()
del x
print(held - rss())
"""


def _returned_mb(setting: str) -> float:
    code = FREED_AFTER.format(setting=setting)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def test_training_processes_keep_freed_memory_for_the_next_batch():
    assert _returned_mb("keep_freed_memory") < 16


def test_measurements_see_freed_memory_returned():
    assert _returned_mb("return_freed_memory") > 240


def test_the_cli_runs_with_freed_memory_kept(monkeypatch, tmp_path):
    from recbole_mmkd import cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True))
    with pytest.raises(SystemExit):  # an empty folder holds nothing to rank
        cli.main(["leaderboard", str(tmp_path)])
    assert calls == [True]
