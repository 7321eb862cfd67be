"""PGL's principal subgraph: a degree-sensitive draw of a fixed share of the edges each epoch,
renormalised, the whole graph at evaluation; items carry no ID table."""

from __future__ import annotations

import torch
from conftest import fast

from recbole_mmkd.prepare import prepare


def test_training_reads_a_drawn_share_of_the_edges_and_evaluation_all(toy):
    model = prepare("PGL", "toy", overrides=fast(keep_ratio=0.3), data_path=toy).model
    n_edges = model.edges.shape[1]
    model.on_epoch_start(0)
    kept = model.train_adjacency.to_dense()
    assert (kept > 0).sum() == 2 * int(n_edges * 0.3)
    users = kept[: model.n_users, model.n_users :]
    degrees = (users > 0).sum(1, keepdim=True) * (users > 0).sum(0, keepdim=True)
    torch.testing.assert_close(users[users > 0], degrees[users > 0].float().rsqrt())
    model.eval()
    evaluated = model.forward()
    model.train()
    model.train_adjacency = model.adjacency
    torch.testing.assert_close(model.forward(), evaluated)  # evaluation read the whole graph
    assert evaluated[0].shape == (model.n_users, 2 * model.embedding_size)
    assert not hasattr(model, "item_embedding")
