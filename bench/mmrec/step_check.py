"""One training step of MMRec's model and of this project's, from the same parameters on the
same batch: the loss, every parameter's gradient and the full-sort scores, side by side.

    python bench/mmrec/prepare_mmrec.py --mmrec /work/.mirror/enoche+MMRec/repo --out /tmp/mmrec
    OMP_NUM_THREADS=1 python bench/mmrec/step_check.py MGCN --prepared /tmp/mmrec [--their-graphs]

Models: DAMRS, DRAGON, LGMRec, MGCN, SMORE (:data:`SPECS`). Each side builds its model with its
own code (MMRec's ``Config``/``RecDataset`` from the prepared checkout, this project's
``prepare``) at the side-by-side setting (:data:`side_by_side.SETTINGS`) on the same TikTok
split. Training curves differ between two codebases by their random streams (initialisation,
batch order, negatives) even where the model is the same; a step from the same state on the
same batch has none of that, so what differs here is the model. In order:

1. Features: each modality's item features of the two sides, rows mapped (TikTok's audio sits
   in MMRec's *text* slot).
2. Graphs: every graph the model builds (user-item, item-item from features, user-user or
   item-item from co-occurrence), MMRec's mapped to this project's ids and compared row by row:
   how many rows differ in some entry, and how many of those in their edge sets (the rest in
   weights only). On TikTok the kNN item-item graphs' edge sets differ only in rows tied at the
   k-th similarity (equal features), which each side breaks in its own ids' order; the
   co-occurrence graphs order ties by id, each side in its own ids. With ``--their-graphs``
   this side then uses MMRec's graphs (in its own sparse layout), so that only the model
   differs.
3. Parameters: every trainable parameter of MMRec's model is mapped to this project's (ID tables
   through the id mappings: RecBole's internal ids here, the file's ids in MMRec, this side's
   padding row 0 set to zero; per-modality modules by modality; tables indexed by modality
   permuted, this side ordering modalities by name) and MMRec's initial values copied in.
   Parameters on one side only are listed, with whether they get a gradient.
4. Randomness inside the loss is made identical or is off (printed per model): LGMRec's Gumbel
   noise and hyperedge dropout are drawn once in MMRec's ids and read by both sides; DRAGON's
   user-graph draw is MMRec's with ``--their-graphs``, each side's own without; SMORE runs at
   dropout 0.
5. One loss and backward on the same ``--batch`` training triples (drawn with ``--seed``);
   printed: the two losses, per mapped parameter the largest gradient difference against the
   largest gradient entry (rows mapped), then the largest full-sort score difference of 8
   users (both models in eval mode). Where a model names loss weights in
   :attr:`Spec.zero_terms`, the step is repeated with them at zero on both sides (an extra
   line: isolates those terms).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
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


@dataclass(frozen=True)
class Graph:
    """A sparse graph buffer on both sides, its rows and columns indexed by ``rows``/``cols``."""

    label: str
    ours: str
    theirs: str
    rows: Kind
    cols: Kind


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
    noise: SharedNoise | None = None  # LGMRec's shared random draws

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
    # loss weights (our attribute, MMRec's) repeated at zero for an extra line
    zero_terms: tuple[tuple[str, str], ...] = ()


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


class SharedNoise:
    """Gumbel noise and dropout masks drawn once, in MMRec's rows, and read by both sides:
    MMRec's pass draws (one more row, for this side's padding row), this side's pass reads the
    same draw with its rows mapped. Draws of one kind are keyed by modality and by whether the
    rows are items or users (each side's calls of a kind: per modality, items then users; this
    side orders modalities by name, MMRec image then text)."""

    def __init__(self, check: Check, seed: int) -> None:
        self.check = check
        self.generator = torch.Generator().manual_seed(seed)
        self.draws: dict[tuple[str, int], torch.Tensor] = {}
        self.side = "theirs"
        self.calls: dict[str, int] = {}

    def start(self, side: Literal["theirs", "ours"], *, fresh: bool = False) -> None:
        self.side, self.calls = side, {}
        if fresh:
            self.draws = {}

    def take(
        self, kind: str, shape: torch.Size, draw: Callable[[torch.Size], torch.Tensor]
    ) -> torch.Tensor:
        """MMRec's pass: a new draw of ``kind`` for ``shape``; this side's: the same draw."""
        call = self.calls.get(kind, 0)
        self.calls[kind] = call + 1
        modality, of_users = divmod(call, 2)
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


def dragon_setup(check: Check) -> list[str]:
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
    lines.append("randomness: none inside the loss (MMRec's dropped-edge graphs are never read)")
    return lines


SPECS: dict[str, Spec] = {
    "DAMRS": Spec(damrs_pairs, damrs_graphs),
    "MGCN": Spec(mgcn_pairs, purifier_graphs, zero_terms=(("cl_weight", "cl_loss"),)),
    "SMORE": Spec(smore_pairs, smore_graphs, smore_setup, (("cl_weight", "cl_loss"),)),
    "LGMRec": Spec(lgmrec_pairs, lgmrec_graphs, lgmrec_setup, (("cl_weight", "cl_weight"),)),
    "DRAGON": Spec(dragon_pairs, dragon_graphs, dragon_setup, (("reg_weight", "reg_weight"),)),
}


# --- graphs ---------------------------------------------------------------------------------


def map_sparse(check: Check, graph: torch.Tensor, rows: Kind, cols: Kind) -> torch.Tensor:
    """MMRec's sparse ``graph`` in this project's ids and shape, coalesced COO float32."""
    graph = graph.coalesce()
    row_of, col_of = (torch.as_tensor(check.node_map(k)) for k in (rows, cols))
    r, c = graph.indices()
    assert (row_of[r] >= 0).all() and (col_of[c] >= 0).all(), "an id without a counterpart"
    index = torch.stack([row_of[r], col_of[c]])
    shape = (check.size(rows), check.size(cols))
    return torch.sparse_coo_tensor(index, graph.values().float(), shape).coalesce()


def differing_rows(
    mine: torch.Tensor, theirs: torch.Tensor, tol: float = 1e-6
) -> tuple[int, int, int]:
    """Of two sparse matrices (this side's in any layout, MMRec's mapped: coalesced COO): how
    many rows differ by more than ``tol`` in some entry, how many of those in their edges
    (nonzero entries), and the number of rows."""
    mine = (mine.to_sparse_coo() if mine.layout != torch.sparse_coo else mine).coalesce().float()

    def rows_of(diff: torch.Tensor, above: float) -> torch.Tensor:
        diff = diff.coalesce()
        return torch.unique(diff.indices()[0][diff.values().abs() > above])

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
    this side then uses MMRec's, in its own layout."""
    for g in graphs:
        mine = getattr(check.ours, g.ours)
        theirs = map_sparse(check, getattr(check.theirs, g.theirs), g.rows, g.cols)
        differ, in_edges, n = differing_rows(mine, theirs)
        padding = (g.rows in ("user", "item")) + 2 * (g.rows == "node")
        yield (f"{g.label} graph ({g.ours} / MMRec's {g.theirs}): {rows_differ(differ, in_edges)}"
               f" of {n - padding} {g.rows} rows differ")  # fmt: skip
        if check.adopt:
            adopted = theirs.to_sparse_csr() if mine.layout == torch.sparse_csr else theirs
            setattr(check.ours, g.ours, adopted)
    if check.adopt and graphs:
        yield "this side now uses MMRec's graphs"


# --- parameters -----------------------------------------------------------------------------


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
            out.append(Pair(f"{p.ours}.{n}", f"{p.theirs}.{n}", p.rows, p.modal_axis))
    return out


def in_our_layout(check: Check, pair: Pair, value: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """MMRec's ``value`` of ``pair`` (a parameter or its gradient) laid out as ours: rows
    mapped (padding row 0 zero), modality axis permuted, then reshaped."""
    value = value.detach()
    if pair.modal_axis is not None:
        value = value.index_select(pair.modal_axis, torch.as_tensor(check.modal_order()))
    if pair.rows is not None:
        mapped = value.new_zeros((shape[0], *value.shape[1:]))
        mapped[1:] = value[check.their_rows(pair.rows)]
        value = mapped
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
                got = "no gradient" if grad is None or not grad.any() else "a gradient"
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
    """This project's model as a run builds it, and each id's token (MMRec's id; -1 for the
    padding row 0), users then items."""
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


def compare_features(check: Check) -> Iterator[str]:
    """Per modality, the largest difference between the two sides' item features."""
    for m in check.ours.modalities:
        slot, short = SLOTS[m]
        theirs = getattr(check.theirs, f"{short}_feat")[check.their_rows("item")]
        diff = (check.ours.raw_feature(m)[1:] - theirs).abs().max().item()
        yield f"{m} features (MMRec's {slot}): largest difference {diff:.2e}"


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
    largest gradient entry of this side's padding row (rows mapped)."""
    ours = dict(check.ours.named_parameters(remove_duplicate=False))
    theirs = dict(check.theirs.named_parameters(remove_duplicate=False))
    for p in pairs:
        mine, other = ours[p.ours], theirs[p.theirs]
        got = mine.grad if mine.grad is not None else torch.zeros_like(mine)
        want = other.grad if other.grad is not None else torch.zeros_like(other)
        want = in_our_layout(check, p, want, mine.shape)
        padding = got[0].abs().max().item() if p.rows else 0.0
        if p.rows:
            got, want = got[1:], want[1:]
        yield p, (got - want).abs().max().item(), want.abs().max().item(), padding


def scores(check: Check, users: np.ndarray) -> tuple[float, float]:
    """Largest full-sort score difference of ``users`` (MMRec's ids) and largest score, both
    models in eval mode."""
    ours, theirs = check.ours, check.theirs
    noise = check.noise
    with torch.no_grad():
        ours.eval()
        theirs.eval()
        if noise is not None:
            noise.start("theirs", fresh=True)
        their_scores = theirs.full_sort_predict([torch.as_tensor(users)])
        if noise is not None:
            noise.start("ours")
        user_table, item_table = ours.forward()
        our_scores = user_table[torch.as_tensor(check.user_of[users])] @ item_table.T
        our_scores = our_scores[:, torch.as_tensor(check.item_of)]
    return (our_scores - their_scores).abs().max().item(), their_scores.abs().max().item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(SPECS))
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--their-graphs", action="store_true",
                        help="this side uses MMRec's graphs (and DRAGON's user-graph draw), so "
                        "that only the model differs")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    spec = SPECS[args.model]
    ours, user_token, item_token = our_model(args.model)  # before the chdir into MMRec
    theirs, train_pairs = mmrec_model(args.model, args.prepared.resolve())
    check = Check(ours, theirs, user_token, item_token, inverse(user_token, theirs.n_users),
                  inverse(item_token, theirs.n_items), args.their_graphs)  # fmt: skip
    assert (check.user_of >= 0).all() and (check.item_of >= 0).all(), "ids without counterpart"
    pairs = expand(check, spec.pairs(check))

    print(
        f"{args.model}: {theirs.n_users} users, {theirs.n_items} items in MMRec; this side "
        f"{ours.n_users} and {ours.n_items} (padding row 0); modalities {ours.modalities}"
    )
    for line in [*compare_features(check), *compare_graphs(check, spec.graphs(check)),
                 *spec.setup(check)]:  # fmt: skip
        print("  " + line)
    ours_params = dict(ours.named_parameters(remove_duplicate=False))
    theirs_params = dict(theirs.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for p in pairs:
            mine = ours_params[p.ours]
            mine.copy_(in_our_layout(check, p, theirs_params[p.theirs], mine.shape))

    generator = np.random.default_rng(args.seed)
    rows = train_pairs[generator.choice(len(train_pairs), args.batch, replace=False)]
    negatives = generator.integers(0, theirs.n_items, args.batch)
    their_loss, our_loss = step(check, rows, negatives)
    print(f"{args.model}: loss MMRec {their_loss:.8f}, here {our_loss:.8f}")
    for p, diff, largest, padding in gradients(check, pairs):
        pad = f"; padding row {padding:.2e}" if padding else ""
        print(f"  gradient of {p.ours} (MMRec's {p.theirs}): largest difference {diff:.2e}"
              f" against largest entry {largest:.2e}{pad}")  # fmt: skip
    for line in one_side_only(check, pairs):
        print("  " + line)
    diff, largest = scores(check, rows[:8, 0])
    print(f"  full-sort scores of 8 users: largest difference {diff:.2e} against largest "
          f"score {largest:.2e}")  # fmt: skip

    if spec.zero_terms:
        for mine, other in spec.zero_terms:
            setattr(ours, mine, 0.0)
            setattr(theirs, other, 0.0)
        their_loss, our_loss = step(check, rows, negatives)
        worst = max(gradients(check, pairs), key=lambda g: g[1] / max(g[2], 1e-30))
        names = ", ".join(f"{m} (MMRec's {o})" for m, o in spec.zero_terms)
        print(f"  with {names} = 0 on both sides: loss MMRec {their_loss:.8f}, here "
              f"{our_loss:.8f}; gradients: the largest relative difference, {worst[1]:.2e} "
              f"against largest entry {worst[2]:.2e}, in {worst[0].ours}")  # fmt: skip


if __name__ == "__main__":
    pd.options.mode.chained_assignment = None
    main()
