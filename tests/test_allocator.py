"""The allocator settings of training processes and of memory measurements, each in a fresh
process (they hold for the whole process)."""

from __future__ import annotations

import os
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


IN_A_THREAD = """
import threading, psutil, torch
rss = lambda: psutil.Process().memory_info().rss / 2**20
returned = []
def work():
    x = torch.ones(2**25)  # 128 MB: past a thread arena's 64 MB heaps
    held = rss()
    del x
    returned.append(held - rss())
thread = threading.Thread(target=work)
thread.start()
thread.join()
print(returned[0])
"""


def test_a_worker_started_with_the_environment_keeps_a_threads_freed_memory():
    from recbole_mmkd.allocator import KEEP_ENV

    def returned(env: dict[str, str]) -> float:
        done = subprocess.run([sys.executable, "-c", IN_A_THREAD], capture_output=True,
                              text=True, check=True, env={**os.environ, **env})  # fmt: skip
        return float(done.stdout.strip().splitlines()[-1])

    assert returned({}) > 120  # glibc's default: the thread's buffer is unmapped on free
    assert returned(KEEP_ENV) < 16


def test_ray_is_started_with_the_environment_for_its_workers(monkeypatch):
    import ray

    from recbole_mmkd.allocator import KEEP_ENV
    from recbole_mmkd.tune.backend import init_ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    init_ray("auto")
    assert calls[0]["address"] == "auto"
    assert calls[0]["runtime_env"] == {"env_vars": KEEP_ENV}
