"""PromptMM: the teacher trained with its prompt, the student reading that trained prompt, the
paper's and the released variant's gradients, and the release's operators on a toy graph."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import fast

from recbole_mmkd.model.student.promptmm import reweighted_list_kd, trimmed_mean
from recbole_mmkd.model.teacher.promptmm_teacher import one_sided_graphs, pca_tokens
from recbole_mmkd.pipeline import run_one, teacher_for
from recbole_mmkd.prepare import config_for, prepare
from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE

QUICK = fast(teacher_config=fast())


def test_pca_tokens_keep_the_principal_axis_with_a_fixed_sign_and_pad():
    direction = torch.tensor([3.0, 4.0]) / 5
    features = torch.tensor([[-2.0], [0.0], [3.0]]) * direction + torch.tensor([1.0, 1.0])
    tokens = pca_tokens(features, d=3)
    assert tokens.shape == (3, 3)
    centred = torch.tensor([-2.0, 0.0, 3.0]) - 1 / 3
    assert torch.allclose(tokens[:, 0], centred, atol=1e-5)  # largest entry (3) positive
    # whatever sign the SVD returns, the largest-magnitude token of an axis is positive
    assert torch.allclose(pca_tokens(-features, d=3)[:, 0], centred, atol=1e-5)
    assert torch.allclose(tokens[:, 1:], torch.zeros(3, 2), atol=1e-5)


def test_one_sided_graphs_scale_each_side_by_its_own_degree():
    # users 0, 1; items 0, 1, 2; user 0 has items 0 and 1, user 1 has item 1
    matrix = sp.coo_matrix((np.ones(3), ([0, 0, 1], [0, 1, 1])), shape=(2, 3))
    to_users, to_items = one_sided_graphs(matrix)
    half = 2**-0.5
    expect_users = [[half, half, 0.0], [0.0, 1.0, 0.0]]  # D_u^-1/2 R
    expect_items = [[1.0, 0.0], [half, half], [0.0, 0.0]]  # D_i^-1/2 R^T (item 2: no edge)
    assert torch.allclose(to_users.to_dense(), torch.tensor(expect_users))
    assert torch.allclose(to_items.to_dense(), torch.tensor(expect_items))


def test_reweighted_list_kd_is_zero_on_agreement_and_weights_the_negatives():
    lists = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.0, 0.0]])
    assert reweighted_list_kd(lists, lists, 1.0).abs() < 1e-6
    # the same ranking of negatives, another positive mass: only the binary term remains
    shifted = lists.clone()
    shifted[:, 0] += 1.0
    p_t, p_s = lists.softmax(-1)[:, 0], shifted.softmax(-1)[:, 0]
    binary = p_t * (p_t / p_s).log() + (1 - p_t) * ((1 - p_t) / (1 - p_s)).log()
    assert torch.allclose(reweighted_list_kd(shifted, lists, 1.0), binary.mean(), atol=1e-6)


def test_trimmed_mean_leaves_out_the_largest_share():
    losses = torch.tensor([1.0, 2.0, 3.0, 10.0])
    assert trimmed_mean(losses, drop=0.0) == 4.0
    assert trimmed_mean(losses, drop=0.25) == 2.0


def test_the_teacher_trains_its_prompt_and_stores_it(toy):
    run = prepare("PromptMMTeacher", "toy", overrides=fast(), data_path=toy)
    model = run.model
    model.train()
    model.calculate_loss(next(iter(run.train))).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.prompt.parameters())
    assert any(name.startswith("prompt.") for name in model.state_dict())


def _student(root, name="PromptMM", **overrides):
    keys = teacher_for(name, "toy", 0, root / "t", QUICK, data_path=root).keys()
    run = prepare(name, "toy", overrides={**QUICK, **keys, **overrides}, data_path=root)
    return run.model, run.train, keys


@pytest.mark.parametrize("name", ["PromptMM", "PromptMM-released"])
def test_the_students_teacher_is_the_trained_teacher_with_its_trained_prompt(toy, name):
    model, _, keys = _student(toy, name)
    stored = np.load(Path(keys["teacher_run"]) / TABLES_FILE)
    model.eval()
    with torch.no_grad():
        users, items, _ = model.teacher.tables(model.prompt())
    assert torch.equal(users, torch.from_numpy(stored["user"]))
    assert torch.equal(items, torch.from_numpy(stored["item"]))
    with torch.no_grad():  # with the prompt at zero, the teacher alone
        zero = [torch.zeros_like(p) for p in model.prompt()]
        bare = model.teacher.tables(tuple(zero))
        teacher_alone = model.teacher.tables(None)
    for a, b in zip(bare[:2], teacher_alone[:2], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "prompt_trains"), [("PromptMM", True), ("PromptMM-released", False)]
)
def test_kd_losses_reach_the_prompt_only_where_the_variant_says(toy, name, prompt_trains):
    model, train, _ = _student(toy, name)
    model.train()
    assert not model.teacher.training
    model.calculate_loss(next(iter(train))).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    grads = [p.grad for p in model.prompt.parameters()]
    if prompt_trains:  # the paper: the student's loss tunes the prompt again
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    else:  # the release: the teacher and prompt run under no_grad in the student phase
        assert all(g is None for g in grads)
    assert model.user_embedding.weight.grad.abs().sum() > 0


def test_the_released_student_starts_from_the_teacher_and_doubles_its_input(toy):
    model, _, _ = _student(toy, "PromptMM-released")
    model.eval()
    with torch.no_grad():
        teacher_users, teacher_items = model.teacher()
        assert torch.equal(model.user_embedding.weight, teacher_users)
        assert torch.equal(model.item_embedding.weight, teacher_items)
        users, _ = model()
        model.ego_scale = 1.0
        single, _ = model()
    assert torch.allclose(users, 2 * single)
    config = config_for("PromptMM-released", "toy", data_path=toy)
    assert config["variant"] == "released" and config["learning_rate"] == 4e-3  # 2 x 0.002


def test_the_released_teacher_runs_with_dropout_every_batch(toy):
    model, _, _ = _student(toy, "PromptMM-released")
    model.train()
    first, second = model.teacher_tables()[0], model.teacher_tables()[0]
    assert not torch.equal(first, second)  # feature dropout on, as released
    assert not model.teacher.training


def test_the_student_keeps_the_methods_depth_on_every_shipped_dataset(toy):
    for dataset in ("tiktok", "ml-100k-mm"):  # LightGCN's per-dataset files are not read
        assert config_for("PromptMM", dataset)["n_layers"] == 1


def test_student_run_leaves_the_stored_teacher_unchanged(toy):
    out = toy / "out"
    ref = teacher_for("PromptMM", "toy", 1, out, QUICK, data_path=toy)
    state = ref.run_dir / STATE_FILE
    before = hashlib.sha1(Path(state).read_bytes()).hexdigest()
    result = run_one("PromptMM", "toy", 1, out, overrides=QUICK, data_path=toy)
    assert result.model_info == {"teacher": "PromptMMTeacher", "variant": "paper"}
    assert result.config["teacher_hash"] == ref.config_hash
    assert hashlib.sha1(Path(state).read_bytes()).hexdigest() == before


def test_embedding_sizes_must_match(toy):
    with pytest.raises(ValueError, match="embedding_size"):
        _student(toy, embedding_size=16)


def test_an_item_that_loses_a_modality_loses_what_its_tokens_drew_from_it(toy):
    model = prepare("PromptMMTeacher", "toy", overrides=fast(), data_path=toy).model
    before = model.prompt.item_tokens.clone()
    present = model.item_present(model.modalities[0]).clone()
    present[3] = False
    model.set_item_mask(model.modalities[0], present)
    after = model.prompt.item_tokens
    assert not torch.allclose(after[3], before[3])
    assert torch.equal(after[4], before[4])
    assert "prompt.item_tokens" in model.state_dict()  # stored: students read the teacher's


def test_the_released_graph_products_have_torchs_gradients(toy):
    model = prepare("PromptMMTeacher", "toy", overrides=fast(), data_path=toy).model
    items = torch.randn(model.n_items, 3, requires_grad=True)
    users = torch.randn(model.n_users, 3, requires_grad=True)
    (model.hop_to_users(items).sin().sum() + model.hop_to_items(users).cos().sum()).backward()
    ours = items.grad.clone(), users.grad.clone()
    items.grad = users.grad = None
    dense_users, dense_items = model.to_users_graph.to_dense(), model.to_items_graph.to_dense()
    ((dense_users @ items).sin().sum() + (dense_items @ users).cos().sum()).backward()
    assert torch.allclose(ours[0], items.grad, atol=1e-6)
    assert torch.allclose(ours[1], users.grad, atol=1e-6)
