"""DRAGON's homogeneous graphs: the user co-occurrence graph and its resampled padding, on a
toy whose answer can be written down."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from recbole_mmkd.model.cooccurrence import (
    UserCooccurrenceGraph,
    pad_by_resampling,
    top_cooccurring,
)


def _interactions(pairs, shape):
    rows, cols = zip(*pairs, strict=True)
    return sp.coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=shape)


def test_users_read_those_sharing_the_most_items_first():
    # user 0 holds items {0, 1, 2}, user 1 {0, 1}, user 2 {2}, user 3 {5}
    inter = _interactions([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 2), (3, 5)], (4, 6))
    neighbours, counts, n = top_cooccurring(inter, 2)
    assert n.tolist() == [2, 1, 1, 0]
    assert neighbours[0].tolist() == [1, 2] and counts[0].tolist() == [2.0, 1.0]
    assert neighbours[1, 0] == 0 and counts[1, 0] == 2.0
    assert neighbours[2, 0] == 0 and counts[2, 0] == 1.0
    assert counts[3].tolist() == [0.0, 0.0]  # no item in common with anyone


def test_short_lists_are_padded_with_their_own_members():
    n = torch.tensor([3, 1, 0, 5])
    slots = pad_by_resampling(n, 5, generator=torch.Generator().manual_seed(0))
    assert slots[0, :3].tolist() == [0, 1, 2] and (slots[0, 3:] < 3).all()
    assert slots[1].tolist() == [0] * 5 and slots[2].tolist() == [0] * 5
    assert slots[3].tolist() == [0, 1, 2, 3, 4]
    draws = torch.stack([pad_by_resampling(n, 5)[0, 3] for _ in range(300)])
    assert set(draws.tolist()) == {0, 1, 2}  # every member can be repeated


def test_items_over_the_transpose_keep_pairs_sharing_enough_users():
    # items 0 and 1 share users 0 and 1; items 0 and 2 share user 0 only
    inter = _interactions([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)], (2, 3))
    neighbours, counts, n = top_cooccurring(inter.T, 2, min_shared=2)
    assert n.tolist() == [1, 1, 0]
    assert neighbours[0, 0] == 1 and neighbours[1, 0] == 0 and counts[0, 0] == 2.0


def test_user_graph_sums_each_drawn_slot_and_follows_a_restored_draw():
    # user 0 shares with 1 and 2, user 1 with 0 only: with k = 3 its list repeats user 0
    inter = _interactions([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 2), (3, 5)], (4, 6))
    graph = UserCooccurrenceGraph(inter, 3)
    users = torch.randn(4, 5)
    gathered = (graph.weight.unsqueeze(-1) * users[graph.index]).sum(1)
    torch.testing.assert_close(graph(users), gathered)
    torch.testing.assert_close(graph(users)[1], users[0])  # every slot of user 1 is user 0
    assert graph(users)[3].abs().sum() == 0  # shares nothing: reads nothing
    state = {k: v.clone() for k, v in graph.state_dict().items()}
    graph.weight.zero_()  # an edit in place is read
    assert graph(users).abs().sum() == 0
    graph.load_state_dict(state)  # and so is a restored draw
    torch.testing.assert_close(graph(users), gathered)


def test_user_graph_reads_every_new_draw_and_copies():
    import copy

    inter = _interactions([(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2)], (4, 3))
    graph = UserCooccurrenceGraph(inter, 5)  # every list is short: each draw repeats members
    users = torch.randn(4, 3)
    for _ in range(20):  # draws without a forward between them are read all the same
        graph.resample()
        graph.resample()
        gathered = (graph.weight.unsqueeze(-1) * users[graph.index]).sum(1)
        torch.testing.assert_close(graph(users), gathered)
    torch.testing.assert_close(copy.deepcopy(graph)(users), graph(users))
