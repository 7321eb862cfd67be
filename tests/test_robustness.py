"""Missing-modality robustness evaluation and the modality-dropout student."""

from __future__ import annotations

import pytest
import torch
from conftest import fast

from recbole_mmkd.pipeline import run_one
from recbole_mmkd.prepare import prepare
from recbole_mmkd.robustness import missing_items


def test_missing_items_are_nested_counted_and_skip_padding():
    quarter, half, every = (missing_items(41, s, seed=3) for s in (0.25, 0.5, 1.0))
    assert (quarter.sum(), half.sum(), every.sum()) == (10, 20, 40)
    assert not every[0] and bool((half | quarter).eq(half).all())  # quarter within half
    assert torch.equal(missing_items(41, 0.25, seed=3), quarter)
    assert not torch.equal(missing_items(41, 0.25, seed=4), quarter)
    with pytest.raises(ValueError, match="share"):
        missing_items(41, 1.5, seed=0)


def test_run_result_has_robustness_rows_for_multimodal_models(toy):
    result = run_one("VBPR", "toy", 1, toy / "out", overrides=fast(), data_path=toy)
    rows = {(r["modality"], r["share"]): r for r in result.robustness}
    assert set(rows) == {(m, s) for m in ("image", "text") for s in (0.0, 0.25, 0.5, 1.0)}
    for modality in ("image", "text"):
        assert rows[modality, 0.0]["recall@20"] == pytest.approx(result.test["recall@20"])
    id_only = run_one("LightGCN", "toy", 1, toy / "out", overrides=fast(), data_path=toy)
    assert id_only.robustness == []


def _md_model(root, **overrides):
    return prepare("MDLightGCN", "toy", overrides=fast(**overrides), data_path=root).model


def test_modality_dropout_only_in_training(toy):
    model = _md_model(toy, modality_dropout=0.5)
    model.train()
    torch.manual_seed(0)
    ids = model.item_embedding.weight
    content = model.item_inputs() - ids
    # every row of the content sum is a subset-sum of the modality terms; with p = 0.5 some
    # items keep both, some one, some none
    both = sum(model.projections[m](model.modal_feature(m)) for m in model.modalities)
    kept_all = torch.isclose(content, both, atol=1e-6).all(1)
    kept_none = torch.isclose(content, torch.zeros_like(content), atol=1e-6).all(1)
    assert 0 < int(kept_all.sum()) < model.n_items - 1 and int(kept_none[1:].sum()) > 0
    model.eval()
    assert torch.allclose(model.item_inputs() - ids, both)  # no dropout at evaluation
    with pytest.raises(ValueError, match="modality_dropout"):
        _md_model(toy, modality_dropout=1.0)
