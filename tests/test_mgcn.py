"""MGCN's distinctive part: the behaviour-guided purifier gates each modality's item-item view,
on a toy graph whose views can be written down."""

from __future__ import annotations

import torch
from conftest import fast, write_dataset

from recbole_mmkd.model.similarity_graph import weighted_knn_graph
from recbole_mmkd.prepare import prepare


def _mgcn(root, **overrides):
    return prepare("MGCN", "toy", overrides=fast(**overrides), data_path=root).model


def _set_gates(model, bias: float) -> None:
    with torch.no_grad():
        for gate in model.purifiers.values():
            gate[0].weight.zero_()
            gate[0].bias.fill_(bias)


def test_closed_purifiers_leave_the_user_item_view_alone(toy):
    model = _mgcn(toy)
    _set_gates(model, -1e4)  # sigmoid = 0: no modality passes the purifier
    content, side = model.views()
    assert torch.count_nonzero(side) == 0
    users, items = model.forward()
    assert torch.equal(torch.cat([users, items]), content)


def test_an_open_purifier_passes_ids_over_the_feature_graph(tmp_path):
    # one modality: the attention weight is 1, the specific part 0, so the side view is half
    # of the ID embeddings propagated over the similarity-weighted kNN graph (items) and the
    # user-item block (users)
    write_dataset(tmp_path, modalities={"image": 4})
    model = _mgcn(tmp_path, n_layers=2, knn_k=3)
    _set_gates(model, 1e4)
    _, side = model.views()
    graph = weighted_knn_graph(model.raw_feature("image"), 3).to_dense()
    items = graph @ (graph @ model.item_embedding.weight)
    block = model.adjacency.to_dense()[: model.n_users, model.n_users :]  # of D^-1/2 A D^-1/2
    expected = torch.cat([block @ items, items]) / 2
    assert torch.allclose(side, expected, atol=1e-5)
