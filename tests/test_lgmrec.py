"""LGMRec's distinctive parts: hypergraph message passing and the modality graph embedding,
on toy inputs whose answers can be written down."""

from __future__ import annotations

import torch
from conftest import fast

from recbole_mmkd.model.general.lgmrec import hypergraph_embeddings
from recbole_mmkd.prepare import prepare


def test_hard_hyperedges_pool_their_members():
    items = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    item_hyper = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # {0, 1}, {2}
    user_hyper = torch.tensor([[0.5, 0.5]])
    users, pooled = hypergraph_embeddings(item_hyper, user_hyper, items, 1)
    assert torch.equal(pooled, torch.tensor([[1.0, 2.0], [1.0, 2.0], [3.0, 3.0]]))
    assert torch.equal(users, torch.tensor([[2.0, 2.5]]))
    _, twice = hypergraph_embeddings(item_hyper, user_hyper, items, 2)  # members counted again
    assert torch.equal(twice, torch.tensor([[2.0, 4.0], [2.0, 4.0], [3.0, 3.0]]))


def test_a_users_modality_embedding_is_the_mean_of_its_items(toy):
    model = prepare("LGMRec", "toy", overrides=fast(n_mm_layers=0), data_path=toy).model
    out = model._modal("image")
    items = model.modal_feature("image") @ model.projections["image"]
    assert torch.equal(out[model.n_users :], items)
    block = model.interactions.to_dense()
    for user in (1, 5, 17):
        mine = block[user].nonzero().squeeze(1)
        assert torch.allclose(out[user], items[mine].mean(0), atol=1e-6)
