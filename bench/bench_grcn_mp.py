#!/usr/bin/env python
"""GRCN's message passing two ways, on the shipped TikTok training graph, in one process.

Issue 17 asks for GRCN's message passing as weighted sparse products or as torch-geometric
layers, whichever measures faster. Both compute one modality's refinement (released routing:
affinities <p_u, f_i> softmax-normalised over each user's and each item's edges, each side
adding its neighbours' weighted sum) and two ID layers over those weights, forward and
backward:

- ``sparse``: this project's ``model/bipartite.py`` (affinities and weight gradients as
  sampled dense-dense products, neighbour sums as CSR sparse-dense products);
- ``pyg``: ``torch_geometric.nn.MessagePassing`` over the two-directional edge list, as both
  releases write it (GATConv-style attention messages, SAGEConv-style weighted messages), one
  message tensor per edge.

  .venv/bin/pip install torch-geometric   # the `reference` extra
  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_grcn_mp.py [--repeats 10] [--dim 64]
"""

from __future__ import annotations

import argparse
import statistics
from time import perf_counter

import torch
import torch.nn.functional as F
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import softmax

import recbole_mmkd  # noqa: F401
from recbole_mmkd.model.bipartite import BipartiteGraph
from recbole_mmkd.model.general.grcn import _segment_softmax
from recbole_mmkd.prepare import prepare


class Attention(MessagePassing):
    """A GATConv-style layer without parameters: alpha = softmax over the target's edges of
    <x_i, x_j>, message alpha * x_j, summed; also returns alpha."""

    def __init__(self) -> None:
        super().__init__(aggr="add")

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor):
        out = self.propagate(edge_index, x=x)
        return out, self._alpha

    def message(self, x_i, x_j, index, ptr, size_i):
        alpha = softmax((x_i * x_j).sum(-1), index, ptr, size_i)
        self._alpha = alpha
        return x_j * alpha.unsqueeze(-1)


class Weighted(MessagePassing):
    """A SAGEConv-style weighted sum: message w_e * x_j, summed at the target."""

    def __init__(self) -> None:
        super().__init__(aggr="add")

    def forward(self, x, edge_index, weight):
        return self.propagate(edge_index, x=x, weight=weight)

    def message(self, x_j, weight):
        return x_j * weight.unsqueeze(-1)


def sparse_step(graph: BipartiteGraph, pref, feat, ids, n_users, n_items):
    scores = graph.edge_dot(pref, feat)
    to_user = _segment_softmax(scores, graph.users, n_users)
    to_item = _segment_softmax(scores, graph.items, n_items)
    users = pref + graph.to_users(to_user, feat)
    items = feat + graph.to_items(to_item, pref)
    id_users, id_items = ids.split([n_users, n_items])
    out_u, out_i = id_users, id_items
    for _ in range(2):
        id_users, id_items = graph.to_users(to_user, id_items), graph.to_items(to_item, id_users)
        out_u, out_i = out_u + id_users, out_i + id_items
    return users.pow(2).sum() + items.pow(2).sum() + out_u.pow(2).sum() + out_i.pow(2).sum()


def pyg_step(edges2, attention, weighted, pref, feat, ids, n_users):
    x = torch.cat([pref, feat])
    refined, alpha = attention(x, edges2)
    rep = x + refined
    layer, out = ids, ids
    for _ in range(2):
        layer = weighted(layer, edges2, alpha)
        out = out + layer
    return rep.pow(2).sum() + out.pow(2).sum()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    run = prepare("GRCN", "tiktok", overrides={"epochs": 1})
    users, items = run.model.edge_user, run.model.edge_item
    n_users, n_items = run.model.n_users, run.model.n_items
    graph = BipartiteGraph(users, items, n_users, n_items)
    source, target = users, items + n_users
    edges2 = torch.stack([torch.cat([source, target]), torch.cat([target, source])])
    attention, weighted = Attention(), Weighted()
    torch.manual_seed(0)
    pref = F.normalize(torch.randn(n_users, args.dim), dim=1).requires_grad_()
    feat = F.normalize(torch.randn(n_items, args.dim), dim=1).requires_grad_()
    ids = F.normalize(torch.randn(n_users + n_items, args.dim), dim=1).requires_grad_()
    steps = {
        "sparse": lambda: sparse_step(graph, pref, feat, ids, n_users, n_items),
        "pyg": lambda: pyg_step(edges2, attention, weighted, pref, feat, ids, n_users),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        step().backward()
    for _ in range(args.repeats):  # alternated, so load on the machine hits both alike
        for name, step in steps.items():
            start = perf_counter()
            step().backward()
            times[name].append(perf_counter() - start)
    print(f"TikTok training graph: {users.shape[0]} edges, d = {args.dim}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} repeats (median)")  # fmt: skip
    sparse = statistics.median(times["sparse"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<7} forward + backward {median * 1000:8.1f} ms   x sparse {median / sparse:.2f}"
        )


if __name__ == "__main__":
    main()
