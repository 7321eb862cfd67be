"""CFDTBD-described: representation layout and the direction of its disentangling losses."""

from __future__ import annotations

import torch
from conftest import fast, write_dataset

from recbole_mmkd.model.student.cfdtbd_described import CFDTBDDescribed
from recbole_mmkd.prepare import prepare


def _model(root, **overrides) -> CFDTBDDescribed:
    return prepare("CFDTBD-described", "toy", overrides=fast(**overrides), data_path=root).model


def test_blocks_per_modality(toy):
    model = _model(toy, embedding_size=8)
    users, items = model.forward()
    assert users.shape == (model.n_users, 8 * 4) and items.shape == (model.n_items, 8 * 4)


def test_training_the_distillation_terms_aligns_common_and_separates_differential(toy):
    model = _model(toy, embedding_size=8, t_decay=0.5)
    items = torch.arange(1, model.n_items)
    pull0, push0 = (v.item() for v in model.disentangling_losses(items))
    common, _ = model.parts(items)
    aligned0 = torch.cosine_similarity(common["image"], common["text"]).mean().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        pull, push = model.disentangling_losses(items)
        (pull + push).backward()
        optimizer.step()
    pull, push = model.disentangling_losses(items)
    assert pull.item() < 0.7 * pull0 and push.item() < 0.2 * push0
    common, _ = model.parts(items)
    aligned = torch.cosine_similarity(common["image"], common["text"]).mean().item()
    assert aligned > aligned0 + 0.2  # the same item's common parts now agree more


def test_single_modality_has_only_the_within_modality_term(tmp_path):
    write_dataset(tmp_path, modalities={"text": 6})
    model = _model(tmp_path)
    items = torch.arange(1, model.n_items)
    pull, push = model.disentangling_losses(items)
    common, differential = model.parts(items)
    assert pull.item() == 0.0
    expected = torch.cosine_similarity(common["text"], differential["text"]).pow(2).mean()
    assert torch.allclose(push, expected)
