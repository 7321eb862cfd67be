"""SELFCF_ed's parts: the graph dropout keeps what it keeps at 1 / (1 - rate), the target takes
no gradient, and the score adds both predictor directions."""

from __future__ import annotations

import torch
from conftest import fast

from recbole_mmkd.model.general.selfcfed_lgn import dropped_adjacency, negative_cosine
from recbole_mmkd.prepare import prepare


def test_dropped_entries_are_gone_and_the_rest_rescaled():
    dense = torch.arange(1.0, 201.0).reshape(10, 20)
    torch.manual_seed(0)
    dropped = dropped_adjacency(dense.to_sparse_coo(), 0.25).to_dense()
    kept = dropped > 0
    torch.testing.assert_close(dropped[kept], dense[kept] / 0.75)
    assert 100 < kept.sum() < 200
    assert torch.equal(dropped_adjacency(dense.to_sparse_coo(), 0.0).to_dense(), dense)


def test_the_target_side_takes_no_gradient():
    p, z = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    negative_cosine(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_score_reads_the_predictor_from_both_sides(toy):
    model = prepare("SELFCFED_LGN", "toy", overrides=fast(), data_path=toy).model.eval()
    users, items = model.encode(model.adjacency)
    expected = model.predictor(users) @ items.T + users @ model.predictor(items).T
    u_table, i_table = model.forward()
    torch.testing.assert_close(u_table @ i_table.T, expected)
