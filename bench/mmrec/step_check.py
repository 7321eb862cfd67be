"""One training step of MMRec's model and of this project's, from the same parameters on the
same batch: the loss, every parameter's gradient and the full-sort scores, side by side.

    python bench/mmrec/prepare_mmrec.py --mmrec /work/.mirror/enoche+MMRec/repo --out /tmp/mmrec
    OMP_NUM_THREADS=1 python bench/mmrec/step_check.py MGCN --prepared /tmp/mmrec [--their-graphs]

Models: BM3, BPR, DAMRS, DRAGON, DualGNN, FREEDOM, GRCN, LATTICE, LayerGCN, LGMRec, LightGCN,
MGCN, MMGCF, MMGCN, MVGAE, PGL, SELFCFED_LGN, SLMRec, SMORE, VBPR (:data:`SPECS`; MMRec's DRAGON,
DualGNN, GRCN, MMGCN and MVGAE import PyTorch Geometric, the ``reference`` extra). Each side
builds its model with its own code (MMRec's ``Config``/``RecDataset`` from the prepared
checkout, this project's ``prepare``) at the side-by-side setting
(:data:`side_by_side.SETTINGS`) on the same TikTok split. Training curves differ between two
codebases by their random streams (initialisation, batch order, negatives) even where the model
is the same; a step from the same state on the same batch has none of that, so what differs
here is the model. In order:

1. Features: each modality's item features of the two sides, rows mapped (TikTok's audio sits
   in MMRec's *text* slot).
2. Graphs: every graph the model builds (user-item, item-item from features, user-user or
   item-item from co-occurrence), MMRec's mapped to this project's ids and compared row by row:
   how many rows differ in some entry, and how many of those in their edge sets (the rest in
   weights only). On TikTok the kNN item-item graphs' edge sets differ only in rows tied at the
   k-th similarity (equal features), which each side breaks in its own ids' order; the
   co-occurrence graphs order ties by id, each side in its own ids. Where MMRec keeps no graph
   (DualGNN's, MMGCN's and MVGAE's PyG layers read an edge list) the graph its layer propagates
   over is built from the edge list; GRCN's edge lists (both sides') are compared as user-item
   matrices. With ``--their-graphs`` this side then uses MMRec's graphs (in its own sparse
   layout; LATTICE's learned graph: the kNN edges MMRec's code picks; GRCN's edge list in
   MMRec's order), so that only the model differs.
3. Parameters: every trainable parameter of MMRec's model is mapped to this project's (ID tables
   through the id mappings: RecBole's internal ids here, the file's ids in MMRec, this side's
   padding row 0 set to zero; per-modality modules by modality; tables indexed by modality
   permuted, this side ordering modalities by name; fusion layers over concatenations with
   their column blocks permuted; MMGCN's convolution matrices, stored (in, out) in MMRec,
   transposed; MMRec's node tables, users then items, mapped row by row or cut into this
   side's user and item tables) and MMRec's initial values copied in, and so are the tensors
   that are no parameters (MVGAE's preference tables and random item vectors). MMGCN's ID and
   preference tables, plain tensors in MMRec that its optimiser never updates, are made
   parameters of MMRec's model first, so that their gradients are compared. Parameters on one
   side only are listed, with whether they get a gradient.
4. Randomness inside the loss is made identical or is off (printed per model): LGMRec's Gumbel
   noise and hyperedge dropout are drawn once in MMRec's ids and read by both sides; DRAGON's
   and DualGNN's user-graph draw is MMRec's with ``--their-graphs``, each side's own without;
   SMORE runs at dropout 0, LayerGCN and GRCN at edge dropout 0, BPR and VBPR at MMRec's
   forward dropout 0 (its default), MMGCN and LightGCN draw nothing; the edge dropout of
   FREEDOM, MMGCF and PGL keeps MMRec's draw of edges on both sides (each renormalising them);
   MVGAE's sampling noise and convolution dropout, SELFCF_ed's graph dropout (rate and
   per-entry uniforms) and target dropout, BM3's target dropout and PGL's contrastive dropout
   are drawn in MMRec's pass and read back in this side's (:class:`Replay`: rows mapped,
   modality blocks permuted, a batch's rows of MMRec's whole-table masks).
5. One loss and backward on the same ``--batch`` training triples (drawn with ``--seed``);
   printed: the two losses, per mapped parameter the largest gradient difference against the
   largest gradient entry (rows mapped), then the largest full-sort score difference of 8
   users (both models in eval mode; MMRec's SLMRec's before its sigmoid; MMRec's MMGCN, GRCN
   and MVGAE score from the tables of their last forward, one in eval mode). Where a model names
   loss weights in :attr:`Spec.zero_terms`, the step is repeated with them at zero on both
   sides (an extra line: isolates those terms); in :attr:`Spec.on_terms`, at a value where the
   setting has them at zero (PGL's contrastive term).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from side_by_side import ROOT, SETTINGS
from torch import nn

Kind = Literal["user", "item", "node"]  # rows of user tables, item tables, users then items
# this project's modality: (MMRec's slot, its short name); TikTok's audio is MMRec's text slot
SLOTS = {"image": ("image", "v"), "audio": ("text", "t")}


@dataclass(frozen=True)
class Pair:
    """A parameter (or a module: every parameter under it) of this project's model and
    MMRec's counterpart; ``rows``: indexed by user or item ids; ``modal_axis``: the axis
    indexed by modality (MMRec's order image, text)."""

    ours: str
    theirs: str
    rows: Kind | None = None
    modal_axis: int | None = None
    # (axis, leading blocks): the axis cut in equal blocks, the leading ones (ID sources) kept,
    # the rest one per modality in MMRec's order, permuted (a fusion layer over concatenations;
    # a module's parameters without that axis, its bias, as they are)
    modal_blocks: tuple[int, int] | None = None
    # MMRec's matrix is stored (in, out), this side's as ``nn.Linear`` keeps it (out, in)
    transposed: bool = False
    # MMRec's table holds the nodes (users, then items), this side's only its ``rows`` block
    node_table: bool = False


@dataclass(frozen=True)
class Graph:
    """A sparse graph buffer on both sides, its rows and columns indexed by ``rows``/``cols``
    (attribute paths, dotted; ``build``: MMRec's graph made from its model where it keeps none,
    ``theirs`` then names what it is made from)."""

    label: str
    ours: str
    theirs: str
    rows: Kind
    cols: Kind
    build: Callable[[nn.Module], torch.Tensor] | None = None


@dataclass
class Check:
    """The two models and the id mappings between them."""

    ours: nn.Module
    theirs: nn.Module
    user_token: np.ndarray  # our user id -> MMRec's (row 0, padding: -1)
    item_token: np.ndarray
    user_of: np.ndarray  # MMRec's user id -> ours
    item_of: np.ndarray
    adopt: bool
    noise: Passes | None = None  # random draws shared by the two sides
    batch: np.ndarray | None = None  # the step's (user, item) rows, MMRec's ids

    def padding(self, kind: Kind) -> tuple[int, ...]:
        """This side's padding rows of a ``kind`` of rows (no counterpart in MMRec)."""
        return (0, self.ours.n_users) if kind == "node" else (0,)

    def their_nodes(self) -> torch.Tensor:
        """MMRec's node (users, then items) of each of our nodes; -1 for the padding rows."""
        users = torch.as_tensor(self.user_token)
        items = torch.as_tensor(self.item_token)
        items = torch.where(items >= 0, items + self.theirs.n_users, items)
        return torch.cat([users, items])

    def node_map(self, kind: Kind) -> np.ndarray:
        """MMRec's index of ``kind`` -> ours."""
        if kind == "user":
            return self.user_of
        if kind == "item":
            return self.item_of
        return np.concatenate([self.user_of, self.ours.n_users + self.item_of])

    def size(self, kind: Kind) -> int:
        return {"user": self.ours.n_users, "item": self.ours.n_items}.get(
            kind, self.ours.n_users + self.ours.n_items
        )

    def their_rows(self, kind: Kind) -> torch.Tensor:
        """MMRec's row of each of our rows but the padding row 0."""
        token = self.user_token if kind == "user" else self.item_token
        return torch.as_tensor(token[1:])

    def their_index(self, kind: Kind) -> torch.Tensor:
        """MMRec's row of each of our rows of ``kind``; -1 for the padding rows."""
        if kind == "node":
            return self.their_nodes()
        return torch.as_tensor(self.user_token if kind == "user" else self.item_token)

    def modal_order(self) -> list[int]:
        """MMRec's position (image 0, text 1) of each of our modalities, in our order."""
        return [0 if SLOTS[m][0] == "image" else 1 for m in self.ours.modalities]


@dataclass
class Spec:
    """What to map, compare and switch off for one model."""

    pairs: Callable[[Check], list[Pair]]
    graphs: Callable[[Check], list[Graph]] = lambda check: []
    # model-specific setup before the step (randomness, extra graphs); returns lines to print
    setup: Callable[[Check], list[str]] = lambda check: []
    # loss weights (our attribute, MMRec's; ``config.`` + key: MMRec's config item) repeated
    # at zero for an extra line
    zero_terms: tuple[tuple[str, str], ...] = ()
    # loss weights (ours, MMRec's, a value) that the setting has at zero, repeated at the value
    # on both sides for an extra line (a term the setting leaves out)
    on_terms: tuple[tuple[str, str, float], ...] = ()
    # tensors that are no parameters (buffers, plain attributes) copied from MMRec as the pairs
    states: Callable[[Check], list[Pair]] = lambda check: []
    # lines after the step (what the step built)
    after: Callable[[Check], list[str]] = lambda check: []
    # MMRec's full-sort scores of some users (its ids), where its ``full_sort_predict`` does not
    # give plain scores from the current parameters
    their_scores: Callable[[Check, torch.Tensor], torch.Tensor] | None = None
    # MMRec's model replaces its features by their L2-normalised rows: compared so
    normalised_features: bool = False


def ids(items: str) -> list[Pair]:
    """The user table and the item table (MMRec's item table named ``items``)."""
    return [Pair("user_embedding", "user_embedding", "user"),
            Pair("item_embedding", items, "item")]  # fmt: skip


def user_item_graphs(adjacency: str) -> list[Graph]:
    """The normalised user-item adjacency ``D^-1/2 A D^-1/2``, users then items (MMRec's
    attribute ``adjacency``)."""
    return [Graph("user-item adjacency", "adjacency", adjacency, "node", "node")]


def modality_graphs(check: Check, ours: str, theirs: str) -> list[Graph]:
    """Each modality's item-item graph: ``ours``/``theirs`` formatted by modality and slot."""
    return [Graph(f"{m} item-item", ours.format(m), theirs.format(SLOTS[m][0]), "item", "item")
            for m in check.ours.modalities]  # fmt: skip


# --- per-model specs ------------------------------------------------------------------------


def damrs_pairs(check: Check) -> list[Pair]:
    return ids("item_id_embedding")


def damrs_graphs(check: Check) -> list[Graph]:
    return [*user_item_graphs("norm_adj"), *modality_graphs(check, "_graph_{}", "{}_adj"),
            Graph("session (behaviour) item-item", "session_graph", "session_adj", "item",
                  "item")]  # fmt: skip


def mgcn_pairs(check: Check) -> list[Pair]:
    pairs = [*ids("item_id_embedding"), Pair("query", "query_common")]
    for m in check.ours.modalities:
        slot, short = SLOTS[m]
        pairs += [Pair(f"feature_tables.{m}", f"{slot}_embedding.weight", "item"),
                  Pair(f"projections.{m}", f"{slot}_trs"),
                  Pair(f"purifiers.{m}", f"gate_{short}"),
                  Pair(f"preferences.{m}", f"gate_{slot}_prefer")]  # fmt: skip
    return pairs


def purifier_graphs(check: Check) -> list[Graph]:
    """MGCN's and SMORE's graphs: user-item, its user-item block, one item-item per modality."""
    return [*user_item_graphs("norm_adj"),
            Graph("user-item block R", "user_item", "R", "user", "item"),
            *modality_graphs(check, "_graph_{}", "{}_original_adj")]  # fmt: skip


def smore_pairs(check: Check) -> list[Pair]:
    pairs = [
        *ids("item_id_embedding"),
        Pair("spectra.fusion", "fusion_complex_weight"),
        Pair("purifiers.fusion", "gate_f"),
        Pair("preferences.fusion", "gate_fusion_prefer"),
    ]
    for m in check.ours.modalities:
        slot, short = SLOTS[m]
        pairs += [Pair(f"feature_tables.{m}", f"{slot}_embedding.weight", "item"),
                  Pair(f"projections.{m}", f"{slot}_trs"),
                  Pair(f"spectra.{m}", f"{slot}_complex_weight"),
                  Pair(f"purifiers.{m}", f"gate_{short}"),
                  Pair(f"preferences.{m}", f"gate_{slot}_prefer"),
                  Pair(f"queries.{m}", f"query_{short}")]  # fmt: skip
    return pairs


def smore_graphs(check: Check) -> list[Graph]:
    return [*purifier_graphs(check),
            Graph("fusion (max-pooled) item-item", "_graph_fusion", "fusion_adj", "item",
                  "item")]  # fmt: skip


def smore_setup(check: Check) -> list[str]:
    rates = (check.ours.dropout.p, check.theirs.dropout.p)
    assert rates == (0.0, 0.0), f"dropout rates {rates}: the check needs 0 (SETTINGS)"
    return ["randomness: preference dropout at rate 0 on both sides (the side-by-side setting)"]


def lgmrec_pairs(check: Check) -> list[Pair]:
    pairs = ids("item_id_embedding")
    for m in check.ours.modalities:
        slot, short = SLOTS[m]
        pairs += [Pair(f"projections.{m}", f"item_{slot}_trs"),
                  Pair(f"hyperedges.{m}", f"{short}_hyper")]  # fmt: skip
    return pairs


def lgmrec_graphs(check: Check) -> list[Graph]:
    return [*user_item_graphs("norm_adj"),
            Graph("user-item 0/1 matrix", "interactions", "adj", "user", "item")]  # fmt: skip


class Passes:
    """Random draws shared by the two sides' passes: which side's pass runs (MMRec's draws,
    this side's reads) and how many calls of each kind it has made."""

    def __init__(self) -> None:
        self.side: Literal["theirs", "ours"] = "theirs"
        self.draws: dict = {}
        self.calls: dict[str, int] = {}

    def start(self, side: Literal["theirs", "ours"], *, fresh: bool = False) -> None:
        self.side, self.calls = side, {}
        if fresh:
            self.draws = {}

    def next_call(self, kind: str) -> int:
        """This pass's call number of ``kind``, counted."""
        call = self.calls.get(kind, 0)
        self.calls[kind] = call + 1
        return call


class SharedNoise(Passes):
    """Gumbel noise and dropout masks drawn once, in MMRec's rows, and read by both sides:
    MMRec's pass draws (one more row, for this side's padding row), this side's pass reads the
    same draw with its rows mapped. Draws of one kind are keyed by modality and by whether the
    rows are items or users (each side's calls of a kind: per modality, items then users; this
    side orders modalities by name, MMRec image then text)."""

    def __init__(self, check: Check, seed: int) -> None:
        super().__init__()
        self.check = check
        self.generator = torch.Generator().manual_seed(seed)

    def take(
        self, kind: str, shape: torch.Size, draw: Callable[[torch.Size], torch.Tensor]
    ) -> torch.Tensor:
        """MMRec's pass: a new draw of ``kind`` for ``shape``; this side's: the same draw."""
        modality, of_users = divmod(self.next_call(kind), 2)
        if self.side == "ours":  # our modality -> MMRec's position
            modality = self.check.modal_order()[modality]
        key = (kind, 2 * modality + of_users)
        if self.side == "theirs":
            self.draws[key] = draw(torch.Size([shape[0] + 1, *shape[1:]]))
            return self.draws[key][:-1]
        rows = self.check.their_rows("user" if of_users else "item")
        if shape[0] == len(rows) + 1:  # this side's padding row 0 reads MMRec's extra row
            rows = torch.cat([torch.tensor([-1]), rows])
        drawn = self.draws[key][rows]
        assert drawn.shape == shape, f"{kind} draw {tuple(drawn.shape)} for {tuple(shape)}"
        return drawn

    def gumbel_softmax(
        self,
        logits: torch.Tensor,
        tau: float = 1.0,
        hard: bool = False,
        eps: float = 1e-10,
        dim: int = -1,
    ) -> torch.Tensor:
        """``F.gumbel_softmax`` (soft) with the shared noise."""
        assert not hard

        def draw(shape: torch.Size) -> torch.Tensor:
            return -torch.empty(shape).exponential_(generator=self.generator).log()

        noise = self.take("gumbel", logits.shape, draw)
        return torch.softmax((logits + noise) / tau, dim=dim)


class SharedDropout(nn.Module):
    """Dropout at rate ``p`` whose masks come from a :class:`SharedNoise`."""

    def __init__(self, noise: SharedNoise, p: float) -> None:
        super().__init__()
        self.noise, self.p = noise, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p

        def draw(shape: torch.Size) -> torch.Tensor:
            return (torch.rand(shape, generator=self.noise.generator) < keep).float() / keep

        return x * self.noise.take("dropout", x.shape, draw)


def lgmrec_setup(check: Check) -> list[str]:
    noise = SharedNoise(check, seed=1)
    torch.nn.functional.gumbel_softmax = noise.gumbel_softmax  # both models call F's
    p = 1 - check.theirs.keep_rate
    assert abs(p - check.ours.drop.p) < 1e-12
    check.theirs.drop = SharedDropout(noise, p)
    check.ours.drop = SharedDropout(noise, p)
    check.noise = noise
    return [f"randomness: Gumbel noise (tau {check.theirs.tau}) and hyperedge dropout (rate "
            f"{p:g}): the same draws on both sides, made in MMRec's rows (random terms, "
            "made identical)"]  # fmt: skip


def dragon_pairs(check: Check) -> list[Pair]:
    pairs = [Pair("user_weights", "weight_u", "user", modal_axis=1)]
    for m in check.ours.modalities:
        short = SLOTS[m][1]
        pairs += [Pair(f"encoders.{m}.preference", f"{short}_gcn.preference", "user"),
                  Pair(f"encoders.{m}.mlp.0", f"{short}_gcn.MLP"),
                  Pair(f"encoders.{m}.mlp.2", f"{short}_gcn.MLP_1")]  # fmt: skip
    return pairs


def dragon_graphs(check: Check) -> list[Graph]:
    return [Graph("mixed item-item (image 0.1, audio 0.9)", "item_graph", "mm_adj", "item",
                  "item")]  # fmt: skip


def neighbour_matrix(index: torch.Tensor, weight: torch.Tensor, n: int) -> torch.Tensor:
    """Sparse COO ``(n, n)`` of each row's neighbours ``index`` with ``weight`` (repeats
    summed)."""
    rows = torch.arange(len(index)).repeat_interleave(index.shape[1])
    pairs = torch.stack([rows, index.flatten()])
    return torch.sparse_coo_tensor(pairs, weight.flatten().float(), (n, n)).coalesce()


def user_graph_setup(check: Check) -> list[str]:
    """DRAGON's and DualGNN's user-user graph: the co-occurrence lists and this epoch's draw
    compared; with ``adopt``, this side then reads MMRec's draw."""
    ours, theirs = check.ours, check.theirs
    theirs.pre_epoch_processing()  # MMRec's trainer does it before each epoch: the user graph
    k, graph = theirs.k, ours.user_graph
    assert k == graph.k
    lines = []
    # the co-occurrence lists (before padding): MMRec's file's first k, this side's own
    n_theirs = len(theirs.user_graph_dict)
    index = torch.zeros(n_theirs, k, dtype=torch.long)
    counts = torch.zeros(n_theirs, k)
    for user, (neighbours, shared) in theirs.user_graph_dict.items():
        index[user, : len(neighbours[:k])] = torch.as_tensor(neighbours[:k], dtype=torch.long)
        counts[user, : len(shared[:k])] = torch.as_tensor(shared[:k], dtype=torch.float)
    slots = torch.arange(k) < graph.n_neighbours.unsqueeze(1)
    mine = neighbour_matrix(graph.neighbours, graph.counts * slots, ours.n_users)
    theirs_mapped = map_sparse(check, neighbour_matrix(index, counts, n_theirs), "user", "user")
    differ, in_edges, n = differing_rows(mine, theirs_mapped)
    lines.append(f"user-user co-occurrence lists (top {k}, shared counts): "
                 f"{rows_differ(differ, in_edges)} of {n - 1} user rows differ")  # fmt: skip
    # the epoch's draw: lists padded to k by random repeats, softmax weights
    their_index = torch.as_tensor(np.array(theirs.epoch_user_graph), dtype=torch.long)
    their_weight = theirs.user_weight_matrix
    theirs_mapped = map_sparse(check, neighbour_matrix(their_index, their_weight, n_theirs),
                               "user", "user")  # fmt: skip
    drawn = neighbour_matrix(graph.index, graph.weight, ours.n_users)
    differ, in_edges, n = differing_rows(drawn, theirs_mapped)
    lines.append(
        f"user-user graph, this epoch's draw (lists padded by random repeats, softmax "
        f"weights): {rows_differ(differ, in_edges)} of {n - 1} user rows differ"
    )
    if check.adopt:
        rows = torch.as_tensor(check.user_of)
        adopted = torch.zeros_like(graph.index)
        adopted[rows] = rows[their_index]
        weight = torch.zeros_like(graph.weight)
        weight[rows] = their_weight.to(weight.dtype)
        graph.index, graph.weight = adopted, weight
        lines.append("randomness: the user-graph draw is MMRec's on both sides")
    else:
        lines.append(
            "randomness: the user-graph draw is each side's own (random padding of "
            "users with fewer than k neighbours); --their-graphs shares MMRec's"
        )
    return lines


def dragon_setup(check: Check) -> list[str]:
    none = "randomness: none inside the loss (MMRec's dropped-edge graphs are never read)"
    return [*user_graph_setup(check), none]


# --- shared random draws, graphs MMRec builds on the fly ---------------------------------------

Reader = Callable[[list[torch.Tensor], int], torch.Tensor]


class Replay(Passes):
    """Random draws made in MMRec's pass and read back in this side's, by kind in call order;
    ``read`` picks MMRec's draw for this side's call and lays it out as this side's (rows
    mapped), default: the draw of the same call number as drawn."""

    def take(
        self, kind: str, draw: Callable[[], torch.Tensor], read: Reader | None = None
    ) -> torch.Tensor:
        call = self.next_call(kind)
        if self.side == "theirs":
            self.draws.setdefault(kind, []).append(draw())
            return self.draws[kind][-1]
        drawn = self.draws[kind]
        return read(drawn, call) if read else drawn[call]


def replay_dropout(replay: Replay, read: Reader | None = None) -> None:
    """``F.dropout`` with its masks from ``replay`` (both sides call the module's function, and
    so does ``nn.Dropout``)."""

    def dropout(
        input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
    ) -> torch.Tensor:
        if not training or p == 0:
            return input

        def draw() -> torch.Tensor:
            return torch.empty(input.shape).bernoulli_(1 - p) / (1 - p)

        mask = replay.take("dropout", draw, read)
        assert mask.shape == input.shape, f"dropout mask {tuple(mask.shape)} for {input.shape}"
        kept = mask[mask != 0]  # a mask drawn at another rate would not scale by 1 / (1 - p)
        assert torch.allclose(kept, torch.full_like(kept, 1 / (1 - p))), "dropout rates differ"
        return input * mask

    F.dropout = dropout


def our_rows(check: Check, value: torch.Tensor, kind: Kind = "node") -> torch.Tensor:
    """MMRec's rows of ``kind`` (default: nodes, users then items) of ``value`` laid out as
    ours, padding rows 0."""
    index = check.their_index(kind)
    out = value[index.clamp(min=0)]
    out[index < 0] = 0
    return out


def pyg_graph(
    edge_index: torch.Tensor, n: int, *, mean: bool, self_loops: bool = True
) -> torch.Tensor:
    """The graph one PyG layer of MMRec propagates over ``edge_index`` (messages from row 0 to
    row 1), self-loops removed: with ``mean`` each node the mean of its messages, self-loops
    added first where ``self_loops`` (MVGAE's ``aggr='mean'``; MMGCN's adds none), else
    weighted ``d^-1/2 d^-1/2`` by the sources' degrees (DualGNN's ``aggr='add'``; ``self_loops``
    unread). Sparse COO, rows the receiving nodes."""
    source, target = edge_index
    keep = source != target
    source, target = source[keep], target[keep]
    if mean:
        if self_loops:
            loops = torch.arange(n)
            source, target = torch.cat([source, loops]), torch.cat([target, loops])
        values = 1.0 / torch.bincount(target, minlength=n).float()[target]
    else:
        degree = torch.bincount(source, minlength=n).float()
        values = degree[source].rsqrt() * degree[target].rsqrt()
    return torch.sparse_coo_tensor(torch.stack([target, source]), values, (n, n)).coalesce()


def kept_edges_setup(check: Check, graph: str, share: float) -> list[str]:
    """FREEDOM's degree-sensitive edge dropout (MMGCF, PGL, FREEDOM): the draw's weights
    compared; MMRec draws this epoch's kept edges (``pre_epoch_processing``, into ``graph``) and
    this side keeps the same edges, renormalised by its own code (with ``adopt``: MMRec's
    values)."""
    from recbole_mmkd.model.graph import adjacency_from_edges

    ours, theirs = check.ours, check.theirs
    shape = (theirs.n_users, theirs.n_items)
    weights = torch.sparse_coo_tensor(theirs.edge_indices, theirs.edge_values, shape)
    mine = torch.sparse_coo_tensor(ours.edges, ours.edge_weights, (ours.n_users, ours.n_items))
    weights = map_sparse(check, weights, "user", "item")
    differ, in_edges, n = differing_rows(mine.coalesce(), weights)
    lines = [f"edge-draw weights 1/sqrt(d_u d_i) (edge_weights / MMRec's edge_values): "
             f"{rows_differ(differ, in_edges)} of {n - 1} user rows differ"]  # fmt: skip
    theirs.pre_epoch_processing()
    kept = getattr(theirs, graph).coalesce()
    index = kept.indices()
    index = index[:, index[0] < theirs.n_users]  # the user-item block: each kept edge once
    users = torch.as_tensor(check.user_of)[index[0]]
    items = torch.as_tensor(check.item_of)[index[1] - theirs.n_users]
    ours.train_adjacency = adjacency_from_edges(torch.stack([users, items]), ours.n_users,
                                                ours.n_items)  # fmt: skip
    mapped = map_sparse(check, kept, "node", "node")
    padding = check.padding("node")
    differ, in_edges, n = differing_rows(ours.train_adjacency, mapped, padding=padding)
    lines.append(f"this epoch's kept graph (MMRec's {graph}, {index.shape[1]} of "
                 f"{theirs.edge_values.numel()} edges), renormalised here: "
                 f"{rows_differ(differ, in_edges)} of {n - 2} node rows differ")  # fmt: skip
    if check.adopt:
        ours.train_adjacency = mapped.to_sparse_csr()
        lines.append("this side now uses MMRec's kept graph (its values too)")
    lines.append(f"randomness: this epoch's kept edges (share {share:g}, drawn by degree) are "
                 "MMRec's draw on both sides (made identical)")  # fmt: skip
    return lines


# --- MMGCF, PGL, FREEDOM, LayerGCN: edge dropout ----------------------------------------------


def projected_pairs(check: Check, items: str) -> list[Pair]:
    """ID tables and each modality's feature projection (MMRec's ``{slot}_trs``)."""
    return [*ids(items), *(Pair(f"projections.{m}", f"{SLOTS[m][0]}_trs")
                           for m in check.ours.modalities)]  # fmt: skip


def mmgcf_pairs(check: Check) -> list[Pair]:
    """ID tables, projections, and the concat layers and alpha that the setting builds."""
    pairs = projected_pairs(check, "item_id_embedding")
    if "all" in check.ours.concat:  # over [ID, modalities...]
        pairs.append(Pair("concat.all", "all_concat_layer", modal_blocks=(1, 1)))
    if "modalities" in check.ours.concat:
        pairs.append(Pair("concat.modalities", "mm_concat_layer", modal_blocks=(1, 0)))
    if "id_and_modalities" in check.ours.concat:
        pairs.append(Pair("concat.id_and_modalities", "id_mm_concat_layer"))
    if check.ours.weighting == "alpha":
        pairs.append(Pair("alpha_logit", "mm_alpha"))
    return pairs


def mmgcf_setup(check: Check) -> list[str]:
    ours, theirs = check.ours, check.theirs
    assert (ours.fusion, ours.weighting) == (theirs.fusion_mode, theirs.weighting)
    lines = [f"fusion {ours.fusion}, weighting {ours.weighting} on both sides"]
    return lines + kept_edges_setup(check, "masked_adj", 1 - theirs.dropout)


def pgl_pairs(check: Check) -> list[Pair]:
    pairs = []
    for m in check.ours.modalities:
        slot = SLOTS[m][0]
        pairs += [Pair(f"user_tables.{m}", f"user_{slot}.weight", "user"),
                  Pair(f"feature_tables.{m}", f"{slot}_embedding.weight", "item"),
                  Pair(f"projections.{m}", f"{slot}_trs")]  # fmt: skip
    return pairs


def mixed_item_graph(label: str, theirs: str = "mm_adj") -> Callable[[Check], list[Graph]]:
    """The user-item adjacency and FREEDOM's mixed item-item kNN graph (``item_graph``)."""
    return lambda check: [*user_item_graphs("norm_adj"),
                          Graph(label, "item_graph", theirs, "item", "item")]  # fmt: skip


def pgl_setup(check: Check) -> list[str]:
    """The kept edges; the contrastive term's dropout masks, of the batch's rows of ``[image |
    text]`` in MMRec and of this side's modalities by name, read with the blocks permuted."""
    ours, theirs = check.ours, check.theirs
    assert ours.keep_ratio == 0.3 and ours.reg_weight == theirs.reg_weight == 0
    order = check.modal_order()

    def read(drawn: list[torch.Tensor], call: int) -> torch.Tensor:
        blocks = drawn[call].chunk(len(order), dim=1)
        return torch.cat([blocks[i] for i in order], dim=1)

    replay = Replay()
    replay_dropout(replay, read)
    check.noise = replay
    return [*kept_edges_setup(check, "sub_graph", ours.keep_ratio),
            "randomness: the contrastive term's dropout (its weight reg_weight 0 in MMRec's grid: "
            "this side skips the term, MMRec's adds it times 0; at a weight, the extra line): "
            "the same masks on both sides, modality blocks permuted (made identical)"]  # fmt: skip


def freedom_setup(check: Check) -> list[str]:
    return kept_edges_setup(check, "masked_adj", 1 - check.theirs.dropout)


def layergcn_pairs(check: Check) -> list[Pair]:
    return [Pair("user_embedding.weight", "user_embeddings", "user"),
            Pair("item_embedding.weight", "item_embeddings", "item")]  # fmt: skip


def layergcn_setup(check: Check) -> list[str]:
    rates = (check.ours.dropout, check.theirs.dropout)
    assert rates == (0.0, 0.0), f"edge dropout rates {rates}: the check needs 0 (SETTINGS)"
    check.theirs.pre_epoch_processing()  # at rate 0: its whole graph
    return ["randomness: edge dropout at rate 0 on both sides (the side-by-side setting): both "
            "read the whole graph"]  # fmt: skip


# --- DualGNN, MVGAE: MMGCN's descendants over PyG ---------------------------------------------


def pyg_graphs(label: str, layer: str, *, mean: bool) -> Callable[[Check], list[Graph]]:
    """The user-item graph a model's PyG ``layer`` propagates over (:func:`pyg_graph`), against
    this side's ``adjacency``."""

    def build(theirs: nn.Module) -> torch.Tensor:
        return pyg_graph(theirs.edge_index, theirs.n_users + theirs.n_items, mean=mean)

    return lambda check: [Graph(label, "adjacency", f"edge_index, as its {layer} reads it",
                                "node", "node", build)]  # fmt: skip


dualgnn_graphs = pyg_graphs("user-item D^-1/2 A D^-1/2", "Base_gcn", mean=False)
mvgae_graphs = pyg_graphs("user-item D^-1 (A + I)", "BaseModel", mean=True)


def dualgnn_setup(check: Check) -> list[str]:
    theirs = check.theirs
    extra = theirs.reg_weight * theirs.weight_i.detach().pow(2).mean().item()
    return [*user_graph_setup(check),
            "randomness: none inside the loss (MMRec's dropped-node edge lists reach its "
            "encoders, which never read them)",
            f"MMRec's loss also holds reg_weight * mean(weight_i^2) = {extra:.8f}, on its item "
            "weights, which no score reads (left out here)"]  # fmt: skip


def mvgae_pairs(check: Check) -> list[Pair]:
    experts = [(f"experts.{m}", f"{SLOTS[m][1]}_gcn") for m in check.ours.modalities]
    pairs = []
    for mine, theirs in [*experts, ("collaborative_expert", "c_gcn")]:
        pairs += [Pair(f"{mine}.{a}", f"{theirs}.{b}") for a, b in (
            ("mlp", "MLP"), ("convs.0", "conv_embed_1"), ("gates.0", "g_layer1"),
            ("mu_conv", "conv_embed_4"), ("mu_gate", "g_layer4"), ("mu_skip", "linear_layer4"),
            ("logvar_conv", "conv_embed_5"), ("logvar_gate", "g_layer5"),
            ("logvar_skip", "linear_layer5"))]  # fmt: skip
    return pairs


def mvgae_states(check: Check) -> list[Pair]:
    """The preference tables (plain tensors in MMRec, buffers here) and the collaborative
    expert's random item vectors."""
    return [*(Pair(f"experts.{m}.preference", f"{SLOTS[m][1]}_gcn.preference", "user")
              for m in check.ours.modalities),
            Pair("collaborative_expert.preference", "c_gcn.preference", "user"),
            Pair("collaborative", "collaborative", "item")]  # fmt: skip


def mvgae_setup(check: Check) -> list[str]:
    ours = check.ours
    assert ours.item_indexing == "released" and ours.sigmoid_embeddings
    order, n = check.modal_order(), len(ours.modalities)
    per = len(ours.experts[ours.modalities[0]].convs) + 2  # dropouts per expert

    def expert(position: int) -> int:  # ours (modalities by name, collaborative) -> MMRec's
        return order[position] if position < n else position

    replay = Replay()
    replay_dropout(replay, lambda drawn, call: our_rows(
        check, drawn[per * expert(call // per) + call % per]))  # fmt: skip
    randn_like = torch.randn_like

    def normal(input: torch.Tensor, **kwargs: object) -> torch.Tensor:
        def read(drawn: list[torch.Tensor], call: int) -> torch.Tensor:
            return our_rows(check, drawn[0 if call == 0 else 1 + expert(call - 1)])

        return replay.take("normal", lambda: randn_like(input, **kwargs), read)

    torch.randn_like = normal
    check.noise = replay
    # released item indexing reads an item id as a node id: the same user rows on both sides
    # only where this side's id k is MMRec's k - 1 for users and items alike
    shift = all(np.array_equal(token[1:], np.arange(len(token) - 1))
                for token in (check.user_token, check.item_token))  # fmt: skip
    return [f"randomness: the sampling noise (fused, then each expert) and the dropout of "
            f"every mean-convolution ({per} per expert, rate 0.1): the same draws on both sides, "
            "made in MMRec's node rows (made identical)",
            f"item_indexing released (item ids read as node ids): this side's id k is MMRec's "
            f"id k - 1 for every user and item, so both read the same rows: {shift}"]  # fmt: skip


def last_forward_scores(check: Check, users: torch.Tensor) -> torch.Tensor:
    """MMRec's scores read the tables of its last forward (MVGAE's fused mean, MMGCN's and
    GRCN's ``result``): one in eval mode first."""
    check.theirs.forward()
    return check.theirs.full_sort_predict([users])


# --- MMGCN, GRCN: PyG message passing, per-modality branches -----------------------------------


def mmgcn_layers(check: Check) -> Iterator[tuple[str, str, int]]:
    """Per modality: our branch, MMRec's GCN, and the first layer the two share (1 where MMRec
    feeds the raw features and this side projects them, or the reverse: 0 otherwise)."""
    for k, m in enumerate(check.ours.modalities):
        gcn = f"{SLOTS[m][1]}_gcn"
        ours, theirs = check.ours.branches[k], attribute(check.theirs, gcn)
        assert len(ours.layers) == 3, "MMRec's GCN runs three layers"
        yield f"branches.{k}", gcn, int((ours.projection is None) != (theirs.dim_latent is None))


def mmgcn_pairs(check: Check) -> list[Pair]:
    pairs = [Pair("user_embedding.weight", "id_embedding", "user", node_table=True),
             Pair("item_embedding.weight", "id_embedding", "item", node_table=True)]  # fmt: skip
    for ours, gcn, first in mmgcn_layers(check):
        if first == 0:
            pairs.append(Pair(f"{ours}.preference", f"{gcn}.preference", "user"))
            if attribute(check.ours, f"{ours}.projection") is not None:
                pairs.append(Pair(f"{ours}.projection", f"{gcn}.MLP"))
        for layer in range(first, 3):
            mine, n = f"{ours}.layers.{layer}", layer + 1
            pairs += [Pair(f"{mine}.message.weight", f"{gcn}.conv_embed_{n}.weight",
                           transposed=True),
                      Pair(f"{mine}.own", f"{gcn}.linear_layer{n}"),
                      Pair(f"{mine}.combine", f"{gcn}.g_layer{n}")]  # fmt: skip
    return pairs


def mmgcn_graphs(check: Check) -> list[Graph]:
    def build(theirs: nn.Module) -> torch.Tensor:
        n = theirs.n_users + theirs.n_items
        return pyg_graph(theirs.edge_index, n, mean=True, self_loops=False)

    return [Graph("user-item neighbour mean D^-1 A (MMRec's aggr='mean')", "adjacency",
                  "edge_index, as its BaseModel reads it", "node", "node", build)]  # fmt: skip


def mmgcn_setup(check: Check) -> list[str]:
    """MMRec's ID and preference tables made parameters (for their gradients); the branches'
    first layers and the regulariser's preference terms that only one side has."""
    ours, theirs = check.ours, check.theirs
    tables = ["id_embedding", *(f"{gcn}.preference" for _, gcn, _ in mmgcn_layers(check))]
    for path in tables:
        owner, _, name = path.rpartition(".")
        module = attribute(theirs, owner) if owner else theirs
        setattr(module, name, nn.Parameter(attribute(theirs, path).detach()))
    lines = [f"MMRec keeps {', '.join(tables)} as plain tensors (mmgcn.py:55, 126, 139), which "
             "its trainer's Adam over model.parameters() (common/trainer.py:118) never updates; "
             "this side trains its counterparts. Made parameters of MMRec's model here, so that "
             "the step compares their gradients"]  # fmt: skip
    for (mine, gcn, first), m in zip(mmgcn_layers(check), ours.modalities, strict=True):
        if first:
            lines.append(f"{m} (MMRec's {gcn}): MMRec feeds the raw {ours.feature_dims()[m]}-d "
                         "features (dim_latent only for v_gcn, mmgcn.py:46-52), this side "
                         f"projects them to latent_dim {ours.latent_dim} (documented): {mine}'s "
                         f"projection, preference and layers.0 on this side only, {gcn}'s "
                         "preference, conv_embed_1, linear_layer1 and g_layer1 on MMRec's "
                         "only")  # fmt: skip
    extra = [f"{mine}.preference" for mine, gcn, _ in mmgcn_layers(check) if gcn != "v_gcn"]
    value = sum(attribute(ours, p).detach().pow(2).mean().item() for p in extra)
    lines += [f"regulariser: MMRec's holds the image preference only (mmgcn.py:94-95), this "
              f"side's also {', '.join(extra)}: here + reg_weight * {value:.6e} = "
              f"{ours.reg_weight * value:.3e}",
              "randomness: none (no dropout; the graph is fixed)"]  # fmt: skip
    return lines


def grcn_pairs(check: Check) -> list[Pair]:
    pairs = [Pair("id_embedding", "id_gcn.id_embedding", "node"),
             Pair("confidence", "model_specific_conf", "node", modal_axis=1)]  # fmt: skip
    for m in check.ours.modalities:
        gcn = f"{SLOTS[m][1]}_gcn"
        pairs += [Pair(f"preference.{m}", f"{gcn}.preference", "user"),
                  Pair(f"projection.{m}", f"{gcn}.MLP")]  # fmt: skip
    return pairs


def grcn_setup(check: Check) -> list[str]:
    """The setting on both sides, the edge lists compared (with ``adopt``, this side then reads
    MMRec's in its order), and the regulariser's term that only MMRec has."""
    ours, theirs = check.ours, check.theirs
    mine = (ours.weight_mode, ours.fusion_mode, ours.pruning, ours.has_act, ours.has_norm,
            ours.n_routing, ours.n_layers, ours.edge_dropout)  # fmt: skip
    other = (theirs.weight_mode, theirs.fusion_mode, theirs.pruning, theirs.id_gcn.has_act,
             theirs.id_gcn.has_norm, theirs.v_gcn.num_routing, 2, theirs.dropout)  # fmt: skip
    assert mine == other, f"setting {mine} here, {other} in MMRec"
    assert ours.routing == "released" and theirs.aggr_mode == "add"
    users = torch.as_tensor(check.user_of)[theirs.edge_index[0]]
    items = torch.as_tensor(check.item_of)[theirs.edge_index[1] - theirs.n_users]

    def matrix(u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(len(u))
        shape = (ours.n_users, ours.n_items)
        return torch.sparse_coo_tensor(torch.stack([u, i]), ones, shape).coalesce()

    differ, in_edges, n = differing_rows(matrix(ours.edge_user, ours.edge_item),
                                         matrix(users, items))  # fmt: skip
    extra = theirs.reg_weight * theirs.v_gcn.preference.detach().pow(2).mean().item()
    lines = [f"setting on both sides: weight_mode {ours.weight_mode}, fusion_mode "
             f"{ours.fusion_mode}, pruning {ours.pruning}, has_act {ours.has_act}, has_norm "
             f"{ours.has_norm}, {ours.n_routing} routing passes, {ours.n_layers} ID layers; "
             "routing released: MMRec's passes send messages into items only (grcn.py:149-156: "
             "preference + 0, renormalised), this side's none",
             f"user-item edge list (edge_user, edge_item / MMRec's edge_index): "
             f"{rows_differ(differ, in_edges)} of {n - 1} user rows differ"]  # fmt: skip
    if check.adopt:
        ours.edge_user, ours.edge_item, ours._graph = users, items, None
        lines.append("this side now reads MMRec's edge list, in its order")
    return [*lines,
            f"MMRec's loss also holds reg_weight * mean(v_gcn.preference^2) = {extra:.3e}, over "
            "every user's image preference (grcn.py:315-316, kept at 328), which this side "
            "leaves out",
            "randomness: edge dropout at rate 0 on both sides (MMRec's dropout 0, grcn.py:189, "
            "this side's edge_dropout): none"]  # fmt: skip


# --- SLMRec, SELFCF_ed, BM3: contrastive and bootstrap losses ---------------------------------


def slmrec_pairs(check: Check) -> list[Pair]:
    pairs = [Pair("user_embedding.weight", "embedding_user.weight", "user"),
             Pair("item_embedding.weight", "embedding_item.weight", "item"),
             Pair("user_fusion.weight", "embedding_user_after_GCN.weight", modal_blocks=(1, 1)),
             Pair("user_fusion.bias", "embedding_user_after_GCN.bias"),
             Pair("item_fusion.weight", "embedding_item_after_GCN.weight", modal_blocks=(1, 1)),
             Pair("item_fusion.bias", "embedding_item_after_GCN.bias"),
             Pair("chain.0", "g_i_iv"), Pair("audio_level", "g_iv_iva"),
             Pair("chain.1", "g_iva_ivat")]  # fmt: skip
    heads = {"image": "g_v_iv", "text": "g_t_ivat"}
    for m in check.ours.modalities:
        slot, short = SLOTS[m]
        pairs += [Pair(f"projections.{m}", f"{short}_dense"), Pair(f"heads.{m}", heads[slot])]
    return pairs


def slmrec_setup(check: Check) -> list[str]:
    assert check.ours.chain_order == ["image", "audio"] and check.ours.audio_level is not None
    return ["fine-and-coarse chain image, then audio in MMRec's text place, the acoustic level "
            "between them (MMRec's order)",
            "randomness: none (the fine-and-coarse task draws nothing)",
            "scores: MMRec's before its sigmoid (its last forward's tables, the same "
            "parameters), this side's plain"]  # fmt: skip


def slmrec_scores(check: Check, users: torch.Tensor) -> torch.Tensor:
    return check.theirs.all_users[users] @ check.theirs.all_items.T


def selfcfed_pairs(check: Check) -> list[Pair]:
    return [Pair("user_embedding.weight", "online_encoder.embedding_dict.user_emb", "user"),
            Pair("item_embedding.weight", "online_encoder.embedding_dict.item_emb", "item"),
            Pair("predictor", "predictor")]  # fmt: skip


def selfcfed_setup(check: Check) -> list[str]:
    """The graph's dropout rate, its per-entry uniforms (MMRec's entry order, read by each of
    this side's entries) and the target dropouts: drawn in MMRec's pass, read in this side's."""
    ours, theirs = check.ours, check.theirs
    their_graph = theirs.online_encoder.sparse_norm_adj
    nodes = torch.as_tensor(check.node_map("node"))
    n = ours.n_users + ours.n_items
    index = their_graph._indices()
    their_keys = nodes[index[0]] * n + nodes[index[1]]
    mine = ours.adjacency.indices()
    our_keys = mine[0] * n + mine[1]
    order = torch.argsort(their_keys)
    place = order[torch.searchsorted(their_keys[order], our_keys).clamp(max=len(order) - 1)]
    assert len(their_keys) == len(our_keys) and torch.equal(their_keys[place], our_keys)
    replay, generator, nnz = Replay(), torch.Generator().manual_seed(1), len(our_keys)
    rand, random = torch.rand, np.random.random

    def rate() -> torch.Tensor:
        return replay.take("rate", lambda: rand((), generator=generator))

    def uniform(*size: object, **kwargs: object) -> torch.Tensor:
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], tuple | list) else size
        if shape == ():
            return rate()
        if shape == (nnz,):
            return replay.take("uniform", lambda: rand(nnz, generator=generator),
                               lambda drawn, call: drawn[call][place])  # fmt: skip
        return rand(*size, **kwargs)

    torch.rand = uniform
    np.random.random = lambda *args: random(*args) if args else float(rate())
    replay_dropout(replay)
    check.noise = replay
    return ["randomness: the graph's dropout rate, its entries' uniforms (MMRec's entry order, "
            f"read by each of this side's {nnz} entries) and the two target dropouts (rate "
            f"{ours.dropout:g}): the same draws on both sides (made identical)"]  # fmt: skip


def bm3_pairs(check: Check) -> list[Pair]:
    pairs = [*projected_pairs(check, "item_id_embedding"), Pair("predictor", "predictor")]
    return pairs + [Pair(f"feature_tables.{m}", f"{SLOTS[m][0]}_embedding.weight", "item")
                    for m in check.ours.modalities]  # fmt: skip


def bm3_setup(check: Check) -> list[str]:
    """MMRec drops out whole tables (users, items, then text and image features), this side
    the batch's rows (users, items, then each modality by name): each of this side's masks
    reads the batch's rows of MMRec's."""
    modalities = check.ours.modalities

    def read(drawn: list[torch.Tensor], call: int) -> torch.Tensor:
        users, items = (torch.as_tensor(check.batch[:, k]) for k in (0, 1))
        if call < 2:
            return drawn[call][users if call == 0 else items]
        return drawn[2 if SLOTS[modalities[call - 2]][0] == "text" else 3][items]

    replay = Replay()
    replay_dropout(replay, read)
    check.noise = replay
    return [
        f"randomness: the target views' dropout (rate {check.ours.dropout:g}): MMRec's "
        "masks of its whole tables, this side's the batch's rows of them (made identical)"
    ]


# --- LATTICE: a learned item graph ------------------------------------------------------------


def lattice_pairs(check: Check) -> list[Pair]:
    pairs = [*projected_pairs(check, "item_id_embedding"),
             Pair("modal_weight", "modal_weight", modal_axis=0)]  # fmt: skip
    return pairs + [Pair(f"feature_tables.{m}", f"{SLOTS[m][0]}_embedding.weight", "item")
                    for m in check.ours.modalities]  # fmt: skip


def lattice_graphs(check: Check) -> list[Graph]:
    return [Graph("user-item D^-1 (A + I)", "adjacency", "norm_adj", "node", "node"),
            *modality_graphs(check, "_original_{}", "{}_original_adj")]  # fmt: skip


def lattice_setup(check: Check) -> list[str]:
    ours = check.ours
    assert ours.ui_adjacency == "released" and ours.train_features
    lines = ["randomness: none (the learned graph is built on the step's batch, as on an "
             "epoch's first)"]  # fmt: skip
    if check.adopt:
        from utils.utils import build_sim  # MMRec's

        import recbole_mmkd.model.general.lattice as lattice
        from recbole_mmkd.model.graph import normalized_pattern
        from recbole_mmkd.model.transposed import csr_transpose

        # this side propagates with the adjacency and its transpose
        ours.adjacency_t = csr_transpose(ours.adjacency.to_sparse_coo().coalesce())
        item_of = torch.as_tensor(check.item_of)

        def their_knn(features: torch.Tensor, k: int, **_: object) -> torch.Tensor:
            top = torch.topk(build_sim(features[item_of]), k, dim=-1).indices
            rows, cols = item_of.repeat_interleave(k), item_of[top.flatten()]
            return normalized_pattern(rows, cols, features.shape[0], dtype=features.dtype)

        lattice.knn_graph = their_knn
        lines.append("the learned graph's kNN edges are chosen as MMRec chooses them (its "
                     "build_sim and topk over this side's projections in MMRec's item order); "
                     "its weights are this side's")  # fmt: skip
    return lines


def lattice_after(check: Check) -> list[str]:
    """The learned item graph the step built, on both sides."""
    mine = check.ours._item_graph
    theirs = map_sparse(check, check.theirs.item_adj, "item", "item")
    differ, in_edges, n = differing_rows(mine, theirs, padding=(0,))
    return [f"learned item-item graph of the step (_item_graph / MMRec's item_adj): "
            f"{rows_differ(differ, in_edges)} of {n - 1} item rows differ"]  # fmt: skip


# --- BPR, LightGCN, VBPR: ID models under MMRec's EmbLoss ---------------------------------------


def lightgcn_pairs(check: Check) -> list[Pair]:
    return [Pair("user_embedding.weight", "embedding_dict.user_emb", "user"),
            Pair("item_embedding.weight", "embedding_dict.item_emb", "item")]  # fmt: skip


def vbpr_pairs(check: Check) -> list[Pair]:
    return [Pair("user_embedding.weight", "u_embedding", "user"),
            Pair("item_embedding.weight", "i_embedding", "item"),
            Pair("projection.weight", "item_linear.weight")]  # fmt: skip


def emb_loss_setup(check: Check) -> list[str]:
    """The regularisers of the two sides, and MMRec's forward dropout (off at its default)."""
    return ["regulariser: MMRec's EmbLoss (common/loss.py:46-51) (||U|| + ||P|| + ||N||) / B, "
            "Frobenius norms of the batch's user, positive and negative rows unsquared; this "
            "side's l2_reg (||U||^2 + ||P||^2 + ||N||^2) / (2B)",
            "randomness: none (MMRec's forward dropout at its default rate 0)"]  # fmt: skip


def vbpr_setup(check: Check) -> list[str]:
    """The content vector's column order; the bias terms that only one side has."""
    ours, theirs = check.ours, check.theirs
    assert not ours.item_bias, "item_bias true: the paper's bias terms, which MMRec has not"
    slots = [SLOTS[m][0] for m in ours.modalities]
    assert slots == ["text", "image"], f"MMRec's content vector is [text | image], here {slots}"
    bias = theirs.item_linear.bias.detach().abs().max().item()
    return [f"content vector: MMRec's [text (audio) | image] (vbpr.py:34), this side's "
            f"modalities by name {ours.modalities}: the same columns",
            "item_bias false on this side (MMRec's variant); MMRec's item_linear keeps its "
            f"bias (vbpr.py:40, nn.Linear's default; zero at init: {bias:.1e}), which "
            "cancels in BPR and reaches the loss through the regulariser only",
            *emb_loss_setup(check)]  # fmt: skip


SPECS: dict[str, Spec] = {
    "DAMRS": Spec(damrs_pairs, damrs_graphs),
    "MGCN": Spec(mgcn_pairs, purifier_graphs, zero_terms=(("cl_weight", "cl_loss"),)),
    "SMORE": Spec(smore_pairs, smore_graphs, smore_setup, (("cl_weight", "cl_loss"),)),
    "LGMRec": Spec(lgmrec_pairs, lgmrec_graphs, lgmrec_setup, (("cl_weight", "cl_weight"),)),
    "DRAGON": Spec(dragon_pairs, dragon_graphs, dragon_setup, (("reg_weight", "reg_weight"),)),
    "MMGCF": Spec(
        mmgcf_pairs,
        lambda check: user_item_graphs("norm_adj"),
        mmgcf_setup,
        (("reg_weight", "reg_weight"),),
    ),
    "DualGNN": Spec(dragon_pairs, dualgnn_graphs, dualgnn_setup, (("reg_weight", "reg_weight"),)),
    "PGL": Spec(
        pgl_pairs,
        mixed_item_graph("mixed item-item (image 0.1, audio 0.9)"),
        pgl_setup,
        on_terms=(("reg_weight", "reg_weight", 0.01),),
    ),  # the zoo's other value
    "SLMRec": Spec(
        slmrec_pairs,
        lambda check: user_item_graphs("norm_adj"),
        slmrec_setup,
        (("ssl_alpha", "config.ssl_alpha"),),
        their_scores=slmrec_scores,
        normalised_features=True,
    ),
    "LATTICE": Spec(
        lattice_pairs,
        lattice_graphs,
        lattice_setup,
        (("reg_weight", "reg_weight"),),
        after=lattice_after,
    ),
    "MVGAE": Spec(
        mvgae_pairs,
        mvgae_graphs,
        mvgae_setup,
        (("beta", "beta"),),
        states=mvgae_states,
        their_scores=last_forward_scores,
    ),
    "LayerGCN": Spec(
        layergcn_pairs,
        lambda check: user_item_graphs("norm_adj_matrix"),
        layergcn_setup,
        (("reg_weight", "reg_weight"),),
    ),
    "SELFCFED_LGN": Spec(
        selfcfed_pairs,
        lambda check: [
            Graph(
                "user-item adjacency", "adjacency", "online_encoder.sparse_norm_adj", "node", "node"
            )
        ],
        selfcfed_setup,
        (("reg_weight", "reg_weight"),),
    ),
    "BM3": Spec(
        bm3_pairs,
        lambda check: user_item_graphs("norm_adj"),
        bm3_setup,
        (("cl_weight", "cl_weight"),),
    ),
    "FREEDOM": Spec(
        lambda check: projected_pairs(check, "item_id_embedding"),
        mixed_item_graph("mixed item-item (image 0.1, audio 0.9)"),
        freedom_setup,
        (("reg_weight", "reg_weight"),),
    ),
    "MMGCN": Spec(
        mmgcn_pairs,
        mmgcn_graphs,
        mmgcn_setup,
        (("reg_weight", "reg_weight"),),
        their_scores=last_forward_scores,
    ),
    "GRCN": Spec(
        grcn_pairs,
        setup=grcn_setup,
        zero_terms=(("reg_weight", "reg_weight"),),
        their_scores=last_forward_scores,
    ),
    "VBPR": Spec(vbpr_pairs, setup=vbpr_setup, zero_terms=(("reg_weight", "reg_weight"),)),
    "LightGCN": Spec(
        lightgcn_pairs,
        lambda check: user_item_graphs("norm_adj_matrix"),
        emb_loss_setup,
        (("reg_weight", "reg_weight"),),
    ),
    "BPR": Spec(
        lambda check: ids("item_embedding"),
        setup=emb_loss_setup,
        zero_terms=(("reg_weight", "reg_weight"),),
    ),
}


# --- graphs ---------------------------------------------------------------------------------


def map_sparse(check: Check, graph: torch.Tensor, rows: Kind, cols: Kind) -> torch.Tensor:
    """MMRec's ``graph`` (sparse, or dense as LATTICE's) in this project's ids and shape,
    coalesced COO float32."""
    graph = graph.detach()
    graph = (graph if graph.is_sparse else graph.to_sparse()).coalesce()
    row_of, col_of = (torch.as_tensor(check.node_map(k)) for k in (rows, cols))
    r, c = graph.indices()
    assert (row_of[r] >= 0).all() and (col_of[c] >= 0).all(), "an id without a counterpart"
    index = torch.stack([row_of[r], col_of[c]])
    shape = (check.size(rows), check.size(cols))
    return torch.sparse_coo_tensor(index, graph.values().float(), shape).coalesce()


def differing_rows(
    mine: torch.Tensor, theirs: torch.Tensor, tol: float = 1e-6, padding: tuple[int, ...] = ()
) -> tuple[int, int, int]:
    """Of two sparse matrices (this side's in any layout, MMRec's mapped: coalesced COO): how
    many rows but the ``padding`` rows differ by more than ``tol`` in some entry, how many of
    those in their edges (nonzero entries), and the number of rows."""
    mine = (mine.to_sparse_coo() if mine.layout != torch.sparse_coo else mine).coalesce().float()

    def rows_of(diff: torch.Tensor, above: float) -> torch.Tensor:
        diff = diff.coalesce()
        rows = torch.unique(diff.indices()[0][diff.values().abs() > above])
        return rows[~torch.isin(rows, torch.tensor(padding, dtype=rows.dtype))]

    def edges(graph: torch.Tensor) -> torch.Tensor:
        keep = graph.values() != 0
        ones = torch.ones(int(keep.sum()))
        return torch.sparse_coo_tensor(graph.indices()[:, keep], ones, graph.shape)

    values = rows_of(mine - theirs, tol)
    pattern = rows_of(edges(mine) - edges(theirs), 0.5)
    return values.numel(), pattern.numel(), mine.shape[0]


def rows_differ(differ: int, in_edges: int) -> str:
    return f"{differ} ({in_edges} of them in their edge sets)" if differ else "0"


def compare_graphs(check: Check, graphs: list[Graph]) -> Iterator[str]:
    """Per graph, how many rows differ (MMRec's mapped to this project's ids); with ``adopt``,
    this side then uses MMRec's, in its own layout, and so does the transpose this side stores
    beside it for its backward pass (``<name>_t``, :mod:`recbole_mmkd.model.transposed`)."""
    from recbole_mmkd.model.transposed import csr_transpose

    for g in graphs:
        mine = attribute(check.ours, g.ours)
        theirs = g.build(check.theirs) if g.build else attribute(check.theirs, g.theirs)
        theirs = map_sparse(check, theirs, g.rows, g.cols)
        padding = check.padding(g.rows)
        differ, in_edges, n = differing_rows(mine, theirs, padding=padding)
        yield (f"{g.label} graph ({g.ours} / MMRec's {g.theirs}): {rows_differ(differ, in_edges)}"
               f" of {n - len(padding)} {g.rows} rows differ")  # fmt: skip
        if check.adopt:
            adopted = theirs.to_sparse_csr() if mine.layout == torch.sparse_csr else theirs
            setattr(check.ours, g.ours, adopted)
            if hasattr(check.ours, f"{g.ours}_t"):
                setattr(check.ours, f"{g.ours}_t", csr_transpose(adopted))
    if check.adopt and graphs:
        yield "this side now uses MMRec's graphs"


# --- parameters -----------------------------------------------------------------------------


def attribute(model: nn.Module, path: str) -> torch.Tensor:
    """The attribute at a dotted ``path``."""
    return reduce(getattr, path.split("."), model)


def expand(check: Check, pairs: list[Pair]) -> list[Pair]:
    """Each pair naming a module as one pair per parameter under it (same relative names)."""
    ours = dict(check.ours.named_parameters(remove_duplicate=False))
    theirs = dict(check.theirs.named_parameters(remove_duplicate=False))
    out = []
    for p in pairs:
        if p.ours in ours:
            assert p.theirs in theirs, f"MMRec has no parameter {p.theirs}"
            out.append(p)
            continue
        names = [n[len(p.ours) + 1 :] for n in ours if n.startswith(p.ours + ".")]
        assert names, f"this side has no parameter or module {p.ours}"
        for n in names:
            assert f"{p.theirs}.{n}" in theirs, f"MMRec has no parameter {p.theirs}.{n}"
            out.append(replace(p, ours=f"{p.ours}.{n}", theirs=f"{p.theirs}.{n}"))
    return out


def in_our_layout(check: Check, pair: Pair, value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """MMRec's ``value`` of ``pair`` (a parameter or its gradient) laid out as ours: modality
    axis permuted, transposed, rows mapped (padding rows zero), then reshaped."""
    value = value.detach()
    if pair.modal_axis is not None:
        value = value.index_select(pair.modal_axis, torch.as_tensor(check.modal_order()))
    if pair.modal_blocks is not None and value.dim() > pair.modal_blocks[0]:  # not a bias
        axis, lead = pair.modal_blocks
        blocks = value.chunk(lead + len(check.ours.modalities), dim=axis)
        order = [*range(lead), *(lead + i for i in check.modal_order())]
        value = torch.cat([blocks[i] for i in order], dim=axis)
    if pair.transposed:
        value = value.T
    if pair.node_table:
        n = check.theirs.n_users
        value = value[:n] if pair.rows == "user" else value[n:]
    if pair.rows is not None:
        value = our_rows(check, value, pair.rows)
    return value.reshape(shape)


def one_side_only(check: Check, pairs: list[Pair]) -> Iterator[str]:
    """The trainable parameters of either side that no pair maps (by object: MMRec's DRAGON
    also holds its preference tables as ``v_preference``/``t_preference`` after a forward),
    with whether they got a gradient in the step."""
    for side, model, mapped in (("MMRec", check.theirs, {p.theirs for p in pairs}),
                                ("this project", check.ours, {p.ours for p in pairs})):  # fmt: skip
        params = dict(model.named_parameters(remove_duplicate=False))
        seen = {id(params[name]) for name in mapped}
        for name, param in params.items():
            if param.requires_grad and id(param) not in seen:
                seen.add(id(param))
                grad = param.grad
                got = ("no gradient" if grad is None or not grad.any() else
                       f"a gradient, largest entry {grad.abs().max().item():.2e},")  # fmt: skip
                yield f"only in {side}: {name} {tuple(param.shape)} ({got} in the step)"


# --- the step -------------------------------------------------------------------------------


def mmrec_model(name: str, prepared: Path) -> tuple[nn.Module, np.ndarray]:
    """MMRec's model as ``quick_start`` builds it, every grid key at its first value (or the
    side-by-side's), and its training split's (users, items) pairs."""
    src = prepared / "MMRec" / "src"
    sys.path.insert(0, str(src))
    os.chdir(src)
    from utils.configurator import Config
    from utils.dataloader import TrainDataLoader
    from utils.dataset import RecDataset
    from utils.utils import get_model, init_seed

    config = Config(name, "tiktok", {"gpu_id": 0, **SETTINGS[name][1]}, False)
    for key in config["hyper_parameters"]:
        value = config[key]
        config[key] = value[0] if isinstance(value, list) else value
    init_seed(config["seed"] if not isinstance(config["seed"], list) else config["seed"][0])
    train, _, _ = RecDataset(config).split()
    str(train)  # sets inter_num, which MMRec's loader reads (quick_start logs it first)
    model = get_model(name)(config, TrainDataLoader(config, train, batch_size=2048))
    pairs = train.df[[config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]].to_numpy()
    return model, pairs


def our_model(name: str) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    """This project's model as a run builds it (side-by-side setting), and
    each id's token (MMRec's id; -1 for the padding row 0), users then items."""
    sys.path.insert(0, str(ROOT))
    from recbole_mmkd.prepare import prepare

    run = prepare(name, "tiktok", overrides={**SETTINGS[name][0], "epochs": 1})
    dataset = run.train.dataset
    ids = {f: np.array([int(t) if t != "[PAD]" else -1 for t in dataset.field2id_token[f]])
           for f in (dataset.uid_field, dataset.iid_field)}  # fmt: skip
    return run.model, ids[dataset.uid_field], ids[dataset.iid_field]


def inverse(token: np.ndarray, n: int) -> np.ndarray:
    """MMRec's id -> ours (-1 where this side has none), over MMRec's ``n`` ids."""
    of = np.full(max(n, token.max() + 1), -1)
    of[token[1:]] = np.arange(1, len(token))
    return of[:n]


def compare_features(check: Check, normalised: bool = False) -> Iterator[str]:
    """Per modality, the largest difference between the two sides' item features (both
    L2-normalised where MMRec's model normalises its own)."""
    for m in getattr(check.ours, "modalities", []):
        slot, short = SLOTS[m]
        theirs = getattr(check.theirs, f"{short}_feat")[check.their_rows("item")]
        mine = check.ours.raw_feature(m)[1:]
        if normalised:
            mine, theirs = F.normalize(mine), F.normalize(theirs)
        diff = (mine - theirs).abs().max().item()
        how = ", both L2-normalised (MMRec's model normalises its own)" if normalised else ""
        yield f"{m} features (MMRec's {slot}{how}): largest difference {diff:.2e}"


def step(check: Check, rows: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """Both sides' loss of the batch, and its backward (gradients zeroed first)."""
    from recbole.data.interaction import Interaction

    ours, theirs = check.ours, check.theirs
    for model in (ours, theirs):
        model.train()
        model.zero_grad(set_to_none=True)
    noise = check.noise
    if noise is not None:
        noise.start("theirs", fresh=True)
    check.batch = rows
    batch = torch.as_tensor(np.stack([rows[:, 0], rows[:, 1], negatives])).long()
    their_loss = theirs.calculate_loss(batch)  # DRAGON's shifts the batch's items in place
    their_loss.backward()
    if noise is not None:
        noise.start("ours")
    our_batch = Interaction({
        ours.USER_ID: torch.as_tensor(check.user_of[rows[:, 0]]),
        ours.ITEM_ID: torch.as_tensor(check.item_of[rows[:, 1]]),
        ours.NEG_ITEM_ID: torch.as_tensor(check.item_of[negatives]),
    })  # fmt: skip
    our_loss = ours.calculate_loss(our_batch)
    our_loss.backward()
    return their_loss.item(), our_loss.item()


def gradients(check: Check, pairs: list[Pair]) -> Iterator[tuple[Pair, float, float, float]]:
    """Per pair: the largest gradient difference, the largest MMRec gradient entry, and the
    largest gradient entry of this side's padding rows (rows mapped)."""
    ours = dict(check.ours.named_parameters(remove_duplicate=False))
    theirs = dict(check.theirs.named_parameters(remove_duplicate=False))
    for p in pairs:
        mine, other = ours[p.ours], theirs[p.theirs]
        got = mine.grad if mine.grad is not None else torch.zeros_like(mine)
        want = other.grad if other.grad is not None else torch.zeros_like(other)
        want = in_our_layout(check, p, want, mine.shape)
        pad = list(check.padding(p.rows)) if p.rows else []
        padding = got[pad].abs().max().item() if pad else 0.0
        keep = torch.ones(len(got), dtype=torch.bool)
        keep[pad] = False
        got, want = got[keep], want[keep]
        yield p, (got - want).abs().max().item(), want.abs().max().item(), padding


def worst_gradient(
    compared: list[tuple[Pair, float, float, float]],
) -> tuple[str, float, float, list[str]]:
    """The parameter whose gradient differs most against its largest entry, its difference and
    largest entry, leaving out (and listing) those whose gradient is zero up to rounding on
    both sides (largest entries below 1e-6 of the largest of all, as a bias that cancels in a
    pairwise loss)."""
    floor = 1e-6 * max(g[2] for g in compared)
    zero = [g[0].ours for g in compared if g[2] < floor and g[1] < floor]
    rest = [g for g in compared if g[0].ours not in zero]
    p, diff, largest, _ = max(rest, key=lambda g: g[1] / max(g[2], 1e-30))
    return p.ours, diff, largest, zero


def worst(compared: list[tuple[Pair, float, float, float]]) -> str:
    """:func:`worst_gradient` in words."""
    name, diff, largest, zero = worst_gradient(compared)
    out = (f"the largest relative difference {diff / max(largest, 1e-30):.2e} ({diff:.2e} "
           f"against largest entry {largest:.2e}), in {name}")  # fmt: skip
    return out + (f"; zero up to rounding on both sides: {', '.join(zero)}" if zero else "")


def scores(
    check: Check,
    users: np.ndarray,
    their_scores: Callable[[Check, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Largest full-sort score difference of ``users`` (MMRec's ids) and largest score, both
    models in eval mode (MMRec's scores through ``their_scores`` where given)."""
    ours, theirs = check.ours, check.theirs
    noise = check.noise
    with torch.no_grad():
        ours.eval()
        theirs.eval()
        if noise is not None:
            noise.start("theirs", fresh=True)
        if their_scores is None:
            reference = theirs.full_sort_predict([torch.as_tensor(users)])
        else:
            reference = their_scores(check, torch.as_tensor(users))
        if noise is not None:
            noise.start("ours")
        user_table, item_table = ours.forward()
        our_scores = user_table[torch.as_tensor(check.user_of[users])] @ item_table.T
        our_scores = our_scores[:, torch.as_tensor(check.item_of)]
    return (our_scores - reference).abs().max().item(), reference.abs().max().item()


def set_term(model: nn.Module, name: str, value: float) -> None:
    """Set a loss weight: an attribute, or with a ``config.`` prefix a config item (MMRec's
    SLMRec reads its weights from its config at each step)."""
    if name.startswith("config."):
        model.config[name.removeprefix("config.")] = value
    else:
        setattr(model, name, value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(SPECS))
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--their-graphs", action="store_true",
                        help="this side uses MMRec's graphs (and DRAGON's user-graph draw), so "
                        "that only the model differs")  # fmt: skip
    parser.add_argument("--summary", type=Path,
                        help="append the step's figures to this file, one JSON line "
                        "(step_check_all.py reads them)")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = SPECS[args.model]
    ours, user_token, item_token = our_model(args.model)  # before MMRec's chdir
    theirs, train_pairs = mmrec_model(args.model, args.prepared.resolve())
    check = Check(ours, theirs, user_token, item_token, inverse(user_token, theirs.n_users),
                  inverse(item_token, theirs.n_items), args.their_graphs)  # fmt: skip
    assert (check.user_of >= 0).all() and (check.item_of >= 0).all(), "ids without counterpart"

    print(
        f"{args.model}: {theirs.n_users} users, {theirs.n_items} items in MMRec; this side "
        f"{ours.n_users} and {ours.n_items} (padding row 0); modalities "
        f"{getattr(ours, 'modalities', 'none (an ID-only model)')}"
    )
    for line in [*compare_features(check, spec.normalised_features),
                 *compare_graphs(check, spec.graphs(check)), *spec.setup(check)]:  # fmt: skip
        print("  " + line)
    pairs = expand(check, spec.pairs(check))  # after the setup, which may make parameters
    ours_params = dict(ours.named_parameters(remove_duplicate=False))
    theirs_params = dict(theirs.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for p in pairs:
            mine = ours_params[p.ours]
            mine.copy_(in_our_layout(check, p, theirs_params[p.theirs], mine.shape))
        for p in spec.states(check):
            mine = attribute(ours, p.ours)
            mine.copy_(in_our_layout(check, p, attribute(theirs, p.theirs), mine.shape))
            print(f"  copied from MMRec (no parameter): {p.ours} (MMRec's {p.theirs})")

    generator = np.random.default_rng(args.seed)
    rows = train_pairs[generator.choice(len(train_pairs), args.batch, replace=False)]
    negatives = generator.integers(0, theirs.n_items, args.batch)
    their_loss, our_loss = step(check, rows, negatives)
    print(f"{args.model}: loss MMRec {their_loss:.8f}, here {our_loss:.8f} (relative "
          f"difference {abs(our_loss - their_loss) / abs(their_loss):.2e})")  # fmt: skip
    for line in spec.after(check):
        print("  " + line)
    compared = list(gradients(check, pairs))
    for p, diff, largest, padding in compared:
        pad = f"; padding rows {padding:.2e}" if padding else ""
        print(f"  gradient of {p.ours} (MMRec's {p.theirs}): largest difference {diff:.2e}"
              f" against largest entry {largest:.2e}{pad}")  # fmt: skip
    print(f"  gradients: {worst(compared)}")
    for line in one_side_only(check, pairs):
        print("  " + line)
    diff, largest = scores(check, rows[:8, 0], spec.their_scores)
    print(f"  full-sort scores of 8 users: largest difference {diff:.2e} against largest "
          f"score {largest:.2e}")  # fmt: skip
    if args.summary:
        name, gradient, entry, _ = worst_gradient(compared)
        figures = {"model": args.model, "their_graphs": args.their_graphs,
                   "loss_mmrec": their_loss, "loss_here": our_loss, "gradient": name,
                   "gradient_difference": gradient, "gradient_largest": entry,
                   "score_difference": diff, "score_largest": largest}  # fmt: skip
        with args.summary.open("a") as out:
            out.write(json.dumps(figures) + "\n")

    if spec.on_terms:
        for mine, other, value in spec.on_terms:
            set_term(ours, mine, value)
            set_term(theirs, other, value)
        their_loss, our_loss = step(check, rows, negatives)
        names = ", ".join(f"{m} (MMRec's {o}) = {v:g}" for m, o, v in spec.on_terms)
        print(f"  with {names} on both sides: loss MMRec {their_loss:.8f}, here "
              f"{our_loss:.8f}; gradients: {worst(list(gradients(check, pairs)))}")  # fmt: skip
        for mine, other, _ in spec.on_terms:
            set_term(ours, mine, 0.0)
            set_term(theirs, other, 0.0)

    if spec.zero_terms:
        for mine, other in spec.zero_terms:
            set_term(ours, mine, 0.0)
            set_term(theirs, other, 0.0)
        their_loss, our_loss = step(check, rows, negatives)
        names = ", ".join(f"{m} (MMRec's {o})" for m, o in spec.zero_terms)
        print(f"  with {names} = 0 on both sides: loss MMRec {their_loss:.8f}, here "
              f"{our_loss:.8f}; gradients: {worst(list(gradients(check, pairs)))}")  # fmt: skip


if __name__ == "__main__":
    pd.options.mode.chained_assignment = None
    main()
