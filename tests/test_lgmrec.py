"""LGMRec's distinctive parts: hypergraph message passing and the modality graph embedding,
on toy inputs whose answers can be written down."""

from __future__ import annotations

import torch
from conftest import fast

from recbole_mmkd.model.general.lgmrec import contrast_pairs, hypergraph_embeddings
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


def test_contrast_is_anchored_as_released_image_before_text_before_audio():
    assert contrast_pairs(["audio", "image"]) == [("image", "audio")]
    assert contrast_pairs(["text", "image", "audio", "depth"]) == [
        ("image", "text"), ("image", "audio"), ("image", "depth"),
        ("text", "audio"), ("text", "depth"), ("audio", "depth"),
    ]  # fmt: skip


def test_the_padding_user_and_item_belong_to_no_hyperedge(toy):
    model = prepare("LGMRec", "toy", overrides=fast(), data_path=toy).model
    items = torch.randn(model.n_items, model.embedding_size)
    model.eval()  # no hyperedge dropout
    for modality in model.modalities:
        users_z, items_z = model._hyper(modality, items)
        assert torch.count_nonzero(users_z[0]) == 0 and torch.count_nonzero(items_z[0]) == 0
        assert torch.count_nonzero(users_z[1:].abs().sum(1)) == model.n_users - 1
