"""An installed package works: built as a wheel, installed non-editable, run from another
directory, it finds its shipped properties and datasets, and a user's own folders come by
argument or environment variable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import tomllib
from conftest import ROOT, write_dataset

CHECK = r"""
import os, sys
from pathlib import Path
import recbole_mmkd as mm
from recbole_mmkd import config
site = Path(sys.argv[1])
assert Path(mm.__file__).is_relative_to(site), mm.__file__
assert config.PROPERTIES == site / "recbole_mmkd" / "properties", config.PROPERTIES
assert config.DATASETS == site / "recbole_mmkd" / "dataset", config.DATASETS
from recbole_mmkd.prepare import config_for
from recbole_mmkd.specs import load_benchmark
assert load_benchmark("default").datasets == ["tiktok"]
shipped = config_for("BPR", "tiktok")           # the shipped dataset and YAML
assert Path(shipped["data_path"]).is_relative_to(site), shipped["data_path"]
mine = config_for("BPR", "toy")                # $RECBOLE_MMKD_DATA, $RECBOLE_MMKD_PROPERTIES
assert mine["embedding_size"] == 8 and mine["data_path"].startswith(os.environ["RECBOLE_MMKD_DATA"])
runs = mm.run("BPR", "toy", seeds=[1], overrides={"epochs": 1, "topk": [5, 10, 20]})
assert Path("results/adhoc/toy/BPR").is_dir() and runs[0].code["git_commit"] is None
print("ok", runs[0].test["recall@20"])
"""


def _packages() -> set[str]:
    found = {p.parent for p in (ROOT / "recbole_mmkd").rglob("__init__.py")}
    return {".".join(p.relative_to(ROOT).parts) for p in found}


def test_pyproject_lists_every_package():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert _packages() <= set(listed["packages"])


def test_the_wheel_runs_from_another_directory(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("recbole_mmkd", "properties", "dataset"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path)]
    subprocess.run(build, check=True, capture_output=True)
    [wheel] = tmp_path.glob("recbole_mmkd-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)

    data, props, cwd = tmp_path / "mydata", tmp_path / "myprops", tmp_path / "elsewhere"
    write_dataset(data)
    (props / "model").mkdir(parents=True)
    (props / "model" / "BPR.yaml").write_text("embedding_size: 8\n")
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "RECBOLE_MMKD_DATA": str(data),
           "RECBOLE_MMKD_PROPERTIES": str(props)}  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", CHECK, str(site)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok")
    script = site / "bin" / "recbole-mmkd"
    proc = subprocess.run([str(script), "run", "--help"], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert proc.returncode == 0 and "--properties" in proc.stdout, proc.stderr[-2000:]
