"""PromptMM: prompt tokens, frozen stored teacher, paper vs released gradients."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from conftest import fast

from recbole_mmkd.model.student.promptmm import pca_tokens
from recbole_mmkd.pipeline import run_one, teacher_for
from recbole_mmkd.prepare import prepare
from recbole_mmkd.teacher import STATE_FILE

QUICK = fast(teacher_config=fast())


def test_pca_tokens_keep_the_principal_axis_and_pad():
    direction = torch.tensor([3.0, 4.0]) / 5
    features = torch.tensor([[-2.0], [0.0], [2.0]]) * direction + torch.tensor([1.0, 1.0])
    tokens = pca_tokens(features, d=3)
    assert tokens.shape == (3, 3)
    assert torch.allclose(tokens[:, 0].abs(), torch.tensor([2.0, 0.0, 2.0]), atol=1e-5)
    assert torch.allclose(tokens[:, 1:], torch.zeros(3, 2), atol=1e-5)


def _student(root, **overrides):
    keys = teacher_for("PromptMM", "toy", 0, root / "t", QUICK, data_path=root).keys()
    run = prepare("PromptMM", "toy", overrides={**QUICK, **keys, **overrides}, data_path=root)
    return run.model, run.train, keys


@pytest.mark.parametrize("variant", ["paper", "released"])
def test_kd_losses_train_the_prompt_only_in_the_paper_variant(toy, variant):
    model, train, _ = _student(toy, variant=variant)
    model.train()
    assert not model.teacher.training
    model.calculate_loss(next(iter(train))).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    prompt_grads = [p.grad for p in model.prompt.parameters()]
    if variant == "paper":
        assert all(g is not None and g.abs().sum() > 0 for g in prompt_grads)
    else:
        assert all(g is None for g in prompt_grads)


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
