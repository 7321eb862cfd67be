"""Teacher -> student distillation: stored teacher, reuse, frozen teacher, KD terms."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from conftest import ROOT, fast
from recbole.data import data_preparation

import recbole_mmkd.model.student.kd  # noqa: F401 (registers every built-in KD method)
from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.distill import methods
from recbole_mmkd.distill.methods import (
    KDMethod,
    items_outside,
    register_kd_method,
    resolve_kd_method,
    scores,
    teacher_top_items,
)
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import get_model
from recbole_mmkd.pipeline import run_one
from recbole_mmkd.prepare import config_for, prepare
from recbole_mmkd.result import find_results
from recbole_mmkd.teacher import TABLES_FILE


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


# every built-in method at a size the toy data allows (30 items, 6 training each)
SMALL = dict(
    kd_items=5, rd_topk=3, rrd_top_n=5, rrd_k=2, rrd_l=3, cd_top_n=10, cd_n_items=4,
    de_num_experts=3, htd_groups=3, dcd_top_m=10, dcd_k=3, unkd_top=5, unkd_pairs=4,
)  # fmt: skip
DEFAULTS = yaml.safe_load((ROOT / "properties" / "model" / "KD.yaml").read_text())
SETTINGS = {**DEFAULTS, **SMALL}


def _random_tables(path, dataset, dim: int = 4):
    """Stand-in teacher tables of the dataset's shape, stored where a teacher run puts them."""
    rng = np.random.default_rng(0)
    user = rng.normal(size=(dataset.user_num, dim)).astype(np.float32)
    item = rng.normal(size=(dataset.item_num, dim)).astype(np.float32)
    np.savez(path, user=user, item=item)
    return path


def _student(toy, method: str, **extra):
    """A KD-LightGCN student of ``toy`` with stand-in teacher tables, and its training data."""
    tables = toy / TABLES_FILE
    kd = fast(teacher="LightGCN", teacher_run=str(tables.parent), kd_method=method, **extra)
    config = config_for("KD-LightGCN", "toy", overrides=kd, data_path=toy)
    train, _, _ = data_preparation(config, MultimodalDataset(config))
    _random_tables(tables, train.dataset)
    return get_model("KD-LightGCN")(config, train.dataset), train


def _digest(path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("method", sorted(methods.KD_METHODS))
def test_student_trains_from_a_stored_teacher_it_never_changes(toy, tmp_path, method):
    out = tmp_path / "out"
    kd = dict(teacher="VBPR", teacher_config=fast(), kd_method=method, kd_weight=1.0)
    kd.update(SMALL)
    result = run_one("KD-LightGCN", "toy", 1, out, overrides=fast(**kd), data_path=toy)
    teacher_dirs = [p for p in find_results(out) if "/VBPR/" in str(p)]
    assert len(teacher_dirs) == 1
    tables = teacher_dirs[0] / TABLES_FILE
    before = _digest(tables)
    assert result.model_info == {"teacher": "VBPR", "kd_method": method}
    assert result.config["teacher_hash"] == teacher_dirs[0].parent.name
    # a second student with other KD settings reuses the teacher: not retrained, not touched
    run_one("KD-BPR", "toy", 1, out, overrides=fast(**{**kd, "kd_weight": 0.5}), data_path=toy)
    assert [p for p in find_results(out) if "/VBPR/" in str(p)] == teacher_dirs
    assert _digest(tables) == before


def test_student_teacher_buffers_are_frozen_and_kd_weight_zero_is_the_plain_student(toy):
    out = toy / "out"
    teacher = run_one("LightGCN", "toy", 1, out, overrides=fast(), data_path=toy, keep_tables=True)
    path = out / "toy" / "LightGCN" / teacher.config_hash / "seed-1" / TABLES_FILE
    kd = fast(teacher="LightGCN", teacher_run=str(path.parent), kd_method="logit")
    run = prepare("KD-LightGCN", "toy", overrides=kd, data_path=toy)
    train, student = run.train, run.model
    stored = np.load(path)
    assert torch.equal(student.kd.teacher_users, torch.from_numpy(stored["user"]))
    names = {n for n, _ in student.named_parameters()}
    assert not any(n.startswith("teacher") for n in names)
    batch = next(iter(train))
    with_kd = student.calculate_loss(batch)
    with_kd.backward()
    assert student.kd.teacher_users.grad is None
    plain = get_model("LightGCN")(
        config_for("LightGCN", "toy", overrides=fast(), data_path=toy), train.dataset
    )
    plain.load_state_dict(student.state_dict())
    student.kd_weight = 0.0
    assert torch.allclose(student.calculate_loss(batch), plain.calculate_loss(batch))
    assert with_kd > plain.calculate_loss(batch)  # the KD term is positive


def test_student_errors_name_the_fix(toy):
    kd = fast(teacher="LightGCN", teacher_run=str(toy / "missing"), kd_method="logit")
    config = config_for("KD-LightGCN", "toy", overrides=kd, data_path=toy)
    train, _, _ = data_preparation(config, MultimodalDataset(config))
    with pytest.raises(FileNotFoundError, match="run_one"):
        get_model("KD-LightGCN")(config, train.dataset)
    with pytest.raises(ConfigError, match="did you mean 'rd'"):  # before the teacher is read
        typo = config_for("KD-LightGCN", "toy", overrides={**kd, "kd_method": "rdd"}, data_path=toy)
        get_model("KD-LightGCN")(typo, train.dataset)
    kd["teacher_run"] = str(_random_tables(toy / TABLES_FILE, train.dataset).parent)
    for bad, match in (
        ({"kd_method": "rrd", "rrd_k": 9, "rrd_top_n": 5}, "rrd_k <= rrd_top_n"),
        ({"kd_method": "rd", "rd_topk": 31}, "rd_topk 31 must be below n_items 31"),
    ):
        with pytest.raises(ConfigError, match=match):
            bad_config = config_for("KD-LightGCN", "toy", overrides={**kd, **bad}, data_path=toy)
            get_model("KD-LightGCN")(bad_config, train.dataset)
    with pytest.raises(ConfigError, match="cannot be a teacher"):
        run_one(
            "KD-LightGCN",
            "toy",
            1,
            toy / "o",
            overrides=fast(teacher="recbole.BPR", teacher_config=fast()),
            data_path=toy,
        )


class _ReadKeys(dict):
    """A config that records which keys are read."""

    def __init__(self, values: dict) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str):
        self.read.add(key)
        return super().__getitem__(key)


def test_an_unknown_kd_method_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="'kd_method': unknown KD method 'nope'") as error:
        resolve_kd_method("nope")
    assert "name one of logit, rd, rrd" in str(error.value)


@pytest.mark.parametrize("cls", list(methods.KD_METHODS.values()))
def test_each_kd_method_reads_exactly_its_declared_config_keys(cls):
    assert resolve_kd_method(cls.name) is cls
    config = _ReadKeys({**SETTINGS, "cd_top_n": 8, "dcd_top_m": 4, "dcd_k": 2, "unkd_top": 4})
    seen = sp.csr_matrix(np.eye(6, 12))  # one interaction a user, so unkd finds groups
    cls.from_config(
        config,
        teacher_users=torch.randn(6, 3),
        teacher_items=torch.randn(12, 3),
        seen=seen,
        n_items=12,
        student_dim=3,
    )
    assert config.read == set(cls.config_keys)
    assert set(cls.config_keys) <= set(DEFAULTS)  # documented, with a default


@pytest.mark.parametrize("method", ["logit", "rd", "rrd"])
def test_kd_method_buffers_move_with_the_student_and_stay_out_of_its_state(toy, method):
    student, train = _student(toy, method, **SMALL)
    plain = get_model("LightGCN")(
        config_for("LightGCN", "toy", overrides=fast(), data_path=toy), train.dataset
    )
    assert student.state_dict().keys() == plain.state_dict().keys()
    assert not list(student.kd.parameters())
    student.double()
    floats = [b for b in student.kd.buffers() if b.is_floating_point()]
    assert floats and all(b.dtype == torch.float64 for b in floats)


def test_one_registered_class_is_all_a_new_kd_method_needs(toy, monkeypatch):
    monkeypatch.setattr(methods, "KD_METHODS", dict(methods.KD_METHODS))  # undone after the test

    @register_kd_method
    class ScoreMSE(KDMethod):
        """Squared error of the student's scores of each row's items against the teacher's."""

        name = "score_mse"

        def __init__(self, *, teacher_users, teacher_items, seen, n_items) -> None:
            super().__init__()  # the default from_config passes all four
            self.register_buffer("teacher_users", teacher_users, persistent=False)
            self.register_buffer("teacher_items", teacher_items, persistent=False)

        def loss(self, user_e, item_e, users, interaction_items):
            student = scores(user_e[users], item_e[interaction_items])
            teacher = scores(self.teacher_users[users], self.teacher_items[interaction_items])
            return (student - teacher).pow(2).mean()

    student, train = _student(toy, "score_mse", kd_weight=0.5)
    assert isinstance(student.kd, ScoreMSE)
    assert student.run_info()["kd_method"] == "score_mse"
    batch = next(iter(train))
    user_e, item_e = student.forward()
    users = batch[student.USER_ID]
    items = torch.stack([batch[student.ITEM_ID], batch[student.NEG_ITEM_ID]], dim=1)
    teacher = scores(student.kd.teacher_users[users], student.kd.teacher_items[items])
    term = (scores(user_e[users], item_e[items]) - teacher).pow(2).mean()
    with_kd = student.calculate_loss(batch)
    student.kd_weight = 0.0
    assert torch.allclose(with_kd, student.calculate_loss(batch) + 0.5 * term)
    assert term > 0
