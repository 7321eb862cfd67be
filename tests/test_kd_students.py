"""Teacher -> student distillation: stored teacher, reuse, frozen teacher, KD terms."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import fast
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_mmkd.config import build_config
from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.model import get_model
from recbole_mmkd.model.student.kd import TABLES_FILE, items_outside, scores, teacher_top_items
from recbole_mmkd.pipeline import run_one
from recbole_mmkd.result import find_results


def test_teacher_top_items_excludes_padding_and_training_items():
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    items = torch.tensor([[9.0, 9.0], [3.0, 0.0], [2.0, 1.0], [0.0, 3.0], [1.0, 2.0]])
    seen = sp.csr_matrix(np.array([[0, 1, 0, 0, 0], [0] * 5]))
    top = teacher_top_items(users, items, seen, n=2, chunk=1)
    assert top.tolist() == [[2, 4], [3, 4]]  # user 0: item 1 seen, item 0 is padding


def test_items_outside_draws_uniformly_from_the_rest_only():
    torch.manual_seed(0)
    excluded = torch.tensor(
        [[1, 3, 7], [2, 5, 9], [6, 7, 8]]
    )  # sorted rows; 10 items, 0 is padding
    drawn = items_outside(excluded, 10, 12_000)
    for row, ex in zip(drawn, excluded.tolist(), strict=True):
        ids, counts = row.unique(return_counts=True)
        assert ids.tolist() == sorted(set(range(1, 10)) - set(ex))
        assert counts.min() > 0.9 * 2_000 and counts.max() < 1.1 * 2_000  # 6 ids, 12k draws
    with pytest.raises(ValueError, match="no item is left"):
        items_outside(torch.tensor([[1, 2, 3]]), 4, 1)


def test_scores_are_row_wise_inner_products():
    users = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    items = torch.tensor([[[1.0, 1.0], [3.0, 0.0]], [[2.0, 5.0], [0.0, 0.0]]])
    assert scores(users, items).tolist() == [[3.0, 3.0], [-5.0, 0.0]]


def _digest(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("method", ["logit", "rd", "rrd"])
def test_student_trains_from_a_stored_teacher_it_never_changes(toy, tmp_path, method):
    out = tmp_path / "out"
    kd = dict(teacher="VBPR", teacher_config=fast(), kd_method=method, kd_weight=1.0)
    kd.update(rd_topk=3, rrd_top_n=5, rrd_k=2, rrd_l=3)  # toy: 30 items, 6 training each
    result = run_one("KD-LightGCN", "toy", 1, out, fast(**kd), data_path=toy)
    teacher_dirs = [p for p in find_results(out) if "/VBPR/" in str(p)]
    assert len(teacher_dirs) == 1
    tables = teacher_dirs[0] / TABLES_FILE
    before = _digest(tables)
    assert result.model_info == {"teacher": "VBPR", "kd_method": method}
    assert result.config["teacher_hash"] == teacher_dirs[0].parent.name
    # a second student with other KD settings reuses the teacher: not retrained, not touched
    run_one("KD-BPR", "toy", 1, out, fast(**{**kd, "kd_weight": 0.5}), data_path=toy)
    assert [p for p in find_results(out) if "/VBPR/" in str(p)] == teacher_dirs
    assert _digest(tables) == before


def test_student_teacher_buffers_are_frozen_and_kd_weight_zero_is_the_plain_student(toy):
    out = toy / "out"
    teacher = run_one("LightGCN", "toy", 1, out, fast(), data_path=toy, keep_tables=True)
    path = out / "toy" / "LightGCN" / teacher.config_hash / "seed-1" / TABLES_FILE
    kd = fast(teacher="LightGCN", teacher_tables=str(path), kd_method="rd", rd_topk=3)
    config = build_config("KD-LightGCN", "toy", kd, data_path=toy)
    init_seed(0, True)
    train, _, _ = data_preparation(config, MultimodalDataset(config))
    student = get_model("KD-LightGCN")(config, train.dataset)
    stored = np.load(path)
    assert torch.equal(student.teacher_users, torch.from_numpy(stored["user"]))
    names = {n for n, _ in student.named_parameters()}
    assert not any(n.startswith("teacher") for n in names)
    batch = next(iter(train))
    with_kd = student.calculate_loss(batch)
    with_kd.backward()
    assert student.teacher_users.grad is None
    plain = get_model("LightGCN")(
        build_config("LightGCN", "toy", fast(), data_path=toy), train.dataset
    )
    plain.load_state_dict(student.state_dict())
    student.kd_weight = 0.0
    assert torch.allclose(student.calculate_loss(batch), plain.calculate_loss(batch))
    assert with_kd > plain.calculate_loss(batch)  # the RD term is positive


def test_student_errors_name_the_fix(toy):
    kd = fast(teacher="LightGCN", teacher_tables=str(toy / "missing.npz"), kd_method="logit")
    config = build_config("KD-LightGCN", "toy", kd, data_path=toy)
    train, _, _ = data_preparation(config, MultimodalDataset(config))
    with pytest.raises(FileNotFoundError, match="run_one"):
        get_model("KD-LightGCN")(config, train.dataset)
    with pytest.raises(ValueError, match="rrd_k <= rrd_top_n"):
        bad = build_config(
            "KD-LightGCN",
            "toy",
            {**kd, "kd_method": "rrd", "rrd_k": 9, "rrd_top_n": 5},
            data_path=toy,
        )
        get_model("KD-LightGCN")(bad, train.dataset)
    with pytest.raises(TypeError, match="cannot be a teacher"):
        run_one(
            "KD-LightGCN",
            "toy",
            1,
            toy / "o",
            fast(teacher="recbole.BPR", teacher_config=fast()),
            data_path=toy,
        )
