"""Model contract: shapes, finite loss, gradients, predict == full_sort_predict, caching."""

from __future__ import annotations

import pytest
import torch
from conftest import fast
from recbole.data import data_preparation
from recbole.data.interaction import Interaction

from recbole_mmkd.config import build_config
from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.model import get_model, model_names

MODELS = ["BPR", "LightGCN", "VBPR"]


def _build(root, name):
    config = build_config(name, "toy", fast(), data_path=root)
    data = MultimodalDataset(config)
    train, _, _ = data_preparation(config, data)
    torch.manual_seed(0)
    return config, get_model(name)(config, train.dataset), train


def test_registry():
    assert set(MODELS) <= set(model_names())
    assert get_model("recbole.LightGCN").__module__.startswith("recbole.")
    with pytest.raises(KeyError, match="Registered"):
        get_model("NoSuchModel")


@pytest.mark.parametrize("name", MODELS)
def test_model_contract(toy, name):
    _config, model, train = _build(toy, name)
    batch = next(iter(train))
    loss = model.calculate_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname

    model.eval()
    users = torch.tensor([1, 2, 3])
    full = model.full_sort_predict(Interaction({model.USER_ID: users}))
    assert full.shape == (3, model.n_items)
    items = torch.tensor([4, 5, 30])
    pairs = model.predict(Interaction({model.USER_ID: users, model.ITEM_ID: items}))
    assert torch.allclose(pairs, full[torch.arange(3), items], atol=1e-5)


def test_eval_cache_is_dropped_on_mode_change(toy):
    _, model, _train = _build(toy, "LightGCN")
    model.eval()
    first = model.representations()
    assert model.representations() is first  # cached during an evaluation pass
    model.train()
    with torch.no_grad():
        model.user_embedding.weight.add_(1.0)
    model.eval()
    assert not torch.equal(model.representations()[0], first[0])
