"""A benchmark on a real local Ray cluster (a head node and a worker node): teachers before
their students, a worker killed mid-run retried, no result lost or duplicated, and the same
runs a local benchmark would have."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import ray
from conftest import fast

from recbole_mmkd.benchmark import run_benchmark
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.specs import load_benchmark

TESTS = str(Path(__file__).parent)


def _bench(tmp_path, marker):
    quick = str({**fast(epochs=2), "robustness_shares": []}).replace("'", "")
    teacher = f"{{teacher: BPR, teacher_config: {quick}, kd_method: logit, kd_items: 5}}"
    spec = tmp_path / "cluster.yaml"
    spec.write_text(
        f"datasets: [toy]\nseeds: [1, 2]\nmetrics: [recall@10]\nmodels:\n"
        f"  - {{model: BPR, set: {quick}}}\n"
        f"  - {{model: KD-BPR, set: {quick[:-1]}, {teacher[1:-1]}}}}}\n"
        f"  - {{model: 'planted:DiesOnce', label: D, set: {quick}}}\n"
        "tuning: {cpus_per_trial: 1}\n"
    )
    props = tmp_path / "props" / "model"
    props.mkdir(parents=True)
    (props / "DiesOnce.yaml").write_text(f"death_marker: {marker}\n")
    return load_benchmark(spec), props.parent


@pytest.fixture
def cluster(monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, *sys.path]))  # the nodes' workers
    monkeypatch.syspath_prepend(TESTS)
    ray.shutdown()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def test_a_benchmark_on_a_cluster_retries_a_killed_worker_and_loses_nothing(toy, tmp_path, cluster):
    marker = tmp_path / "died"
    bench, props = _bench(tmp_path, marker)
    out = tmp_path / "out"
    runs = run_benchmark(bench, out, data_path=toy, properties=props, address=cluster.address)
    assert marker.exists()  # the first DiesOnce worker died; its run was retried
    names = [(r.model, r.seed) for r in runs["toy"]]
    assert names == [(m, s) for m in ("BPR", "KD-BPR", "D") for s in (1, 2)]
    stored = sorted(p.parent.relative_to(out).as_posix() for p in out.rglob("result.json"))
    assert len(stored) == len(set(stored)) == 6  # the BPR teachers are the BPR runs
    students = [r for r in runs["toy"] if r.model == "KD-BPR"]
    teachers = {out / "toy" / "BPR" / r.config["teacher_hash"] / f"seed-{r.seed}" for r in students}
    assert len(teachers) == 2  # one teacher per seed, trained before its student (its arrays)
    assert all((t / "representations.npz").is_file() for t in teachers)
    with pytest.raises(ConfigError, match="--force"):
        run_benchmark(bench, out, data_path=toy, properties=props, address=cluster.address,
                      force=True)  # fmt: skip
