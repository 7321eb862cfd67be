"""DA-MRS: denoising and aligning multimodal recommendation.

Xv et al., "Improving Multi-modal Recommender Systems by Denoising and Aligning Multi-modal
Content and User Feedback", KDD 2024 (released code: XMUDM/DA-MRS; MMRec
``src/models/damrs.py``).
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction
from torch.autograd.function import once_differentiable

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.cooccurrence import top_cooccurring
from recbole_mmkd.model.graph import lightgcn_layers, normalized_adjacency, normalized_pattern
from recbole_mmkd.model.inplace import saved_once

# elements of one row block of similarities (a modality's in the denoised graphs, every
# view's in the neighbour discrimination): about 256 MB of float32, so a batch's rows are one
# block on TikTok and hundreds of rows a block at 100,000 items
BLOCK_ELEMENTS = 2**26


def denoised_knn_graphs(
    features: dict[str, torch.Tensor], k: int, *, block_elements: int = BLOCK_ELEMENTS
) -> dict[str, torch.Tensor]:
    """DA-MRS's denoised item-item graphs, one per modality: a pair of items is a candidate
    edge only where its cosine similarity reaches the mean similarity (over all pairs of the
    items that have the modality) in *every* modality; each item then links, in each modality,
    to its ``k`` most similar candidates (all of them where it has fewer; itself included, as
    its own similarity is the largest), each graph normalised by
    :func:`~recbole_mmkd.model.graph.normalized_pattern` (sparse CSR). Items with a zero feature
    row (padding, missing modality) get no edges in any graph. Computed in blocks of rows of
    at most ``block_elements`` similarities a modality."""
    units = {m: F.normalize(x.float(), dim=1) for m, x in features.items()}
    valid = torch.stack([x.norm(dim=1) > 0 for x in features.values()]).all(0)
    means = {}
    for m, unit in units.items():
        present = unit[unit.norm(dim=1) > 0]
        total = present.sum(0)
        means[m] = (total @ total) / max(len(present), 1) ** 2
    n = valid.shape[0]
    chunk = max(1, block_elements // n)
    rows: dict[str, list[torch.Tensor]] = {m: [] for m in units}
    cols: dict[str, list[torch.Tensor]] = {m: [] for m in units}
    for start in range(0, n, chunk):
        sims = {m: unit[start : start + chunk] @ unit.T for m, unit in units.items()}
        keep = valid[start : start + chunk].unsqueeze(1) & valid.unsqueeze(0)
        for m, sim in sims.items():
            keep &= sim >= means[m]
        for m, sim in sims.items():
            top = torch.topk(sim.masked_fill(~keep, float("-inf")), min(k, n), dim=1)
            hit = torch.isfinite(top.values)
            block_rows = torch.arange(start, start + sim.shape[0], device=sim.device)
            block_rows = block_rows.unsqueeze(1).expand_as(hit)
            rows[m].append(block_rows[hit])
            cols[m].append(top.indices[hit])
    return {
        m: normalized_pattern(torch.cat(rows[m]), torch.cat(cols[m]), n).to_sparse_csr()
        for m in units
    }


def session_graph(interactions: sp.coo_matrix, k: int, *, min_shared: int) -> torch.Tensor:
    """DA-MRS's item-item behaviour graph: each item's ``k`` items sharing the most training
    users (at least ``min_shared``; the authors' ``build_iib_graph.py``), plus itself, the
    counts dropped (the release weights every edge 1), normalised by
    :func:`~recbole_mmkd.model.graph.normalized_pattern` (sparse CSR)."""
    neighbours, _, n = top_cooccurring(interactions.T, k, min_shared=min_shared)
    n_items = interactions.shape[1]
    slots = torch.arange(k).unsqueeze(0) < n.unsqueeze(1)
    items = torch.arange(n_items)
    rows = torch.cat([items, items.unsqueeze(1).expand(-1, k)[slots]])
    cols = torch.cat([items, neighbours[slots]])
    return normalized_pattern(rows, cols, n_items).to_sparse_csr()


def label_distribution(similarities: torch.Tensor) -> torch.Tensor:
    """Softmax over all items of each anchor row's cosine similarities (DA-MRS's
    ``label_prediction``)."""
    return torch.softmax(similarities, dim=-1)


def pseudo_positives(
    own: torch.Tensor, total: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A view's pseudo-positive items: the ``n`` best of ``total + own`` (every view's label
    distribution summed, its own counted twice), and the ``n`` best of its own distribution
    among the rest. The rest's best lie among its own ``2n`` best (at most ``n`` of those are
    shared), so they are read from there: no copy of ``own`` with the shared items zeroed,
    the release's way (a row x items pass saved a view). The same items but where several tie
    at the n-th value, which the two ways take in another order (on a TikTok batch 21, 11 and
    2 of 2,786 rows, one count a view; ``bench/mmrec/step_check.py DAMRS``)."""
    shared = torch.topk(total + own, n, dim=-1).indices
    candidates = torch.topk(own, min(2 * n, own.shape[-1]), dim=-1).indices
    taken = (candidates.unsqueeze(-1) == shared.unsqueeze(-2)).any(-1)
    first = torch.argsort(taken.to(torch.int8), dim=-1, stable=True)[..., :n]
    return shared, candidates.gather(-1, first)


def _block_terms(
    anchors: torch.Tensor, items: torch.Tensor, n: int, temperature: float
) -> tuple[torch.Tensor, ...]:
    """One row block of every view: ``exp(cos / temperature)`` ``(V, rows, items)``, the
    shared and single pseudo-positives ``(V, rows, n)`` (from the label distributions of
    the same cosines, without gradient), and per row the sums T, P_s and P_1."""
    similarities = anchors @ items.transpose(1, 2)
    labels = label_distribution(similarities)
    total = labels.sum(0)
    shared, single = zip(*(pseudo_positives(own, total, n) for own in labels), strict=True)
    del labels, total
    scores = similarities.div_(temperature).exp_()
    shared, single = torch.stack(shared), torch.stack(single)
    sums = scores.sum(-1)
    return (
        scores,
        shared,
        single,
        sums,
        scores.gather(-1, shared).sum(-1),
        scores.gather(-1, single).sum(-1),
    )


class _NeighbourDiscrimination(torch.autograd.Function):
    """Every view's discrimination rows ``(V, rows)`` from the L2-normalised anchor and item
    rows of each view, in blocks of ``block`` rows, the gradient written out. With one block
    its ``(V, rows, items)`` scores are kept for backward, which turns them into the
    gradient in place (so it runs once; a second backward through the same graph is
    refused); with several, backward computes each block's scores again, so that no more
    than one block's are held at a time."""

    @staticmethod
    def forward(ctx, anchors, items, n, temperature, block):
        blocks = []  # per block: shared, single, sums, p_shared, p_single
        for start in range(0, anchors.shape[1], block):
            scores, *parts = _block_terms(anchors[:, start : start + block], items, n, temperature)
            blocks.append(parts)
        parts = (torch.cat(p, dim=1) for p in zip(*blocks, strict=True))
        shared, single, sums, p_shared, p_single = parts
        kept = [scores] if len(blocks) == 1 else []
        ctx.save_for_backward(anchors, items, shared, single, sums, p_shared, p_single, *kept)
        ctx.temperature, ctx.block = temperature, block
        rest = sums - p_shared
        return -torch.log(p_shared / sums + 1e-9) - torch.log(p_single / rest + 1e-9)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        anchors, items, shared, single, sums, p_shared, p_single, *kept = saved_once(
            ctx, "neighbour_discrimination"
        )
        tau, block = ctx.temperature, ctx.block
        rest = sums - p_shared
        # d loss / d x and / d y of x = P_s / T and y = P_1 / (T - P_s), over the temperature
        gx = -grad / (p_shared / sums + 1e-9) / tau
        gy = -grad / (p_single / rest + 1e-9) / tau
        d_sums = -gx * p_shared / sums**2 - gy * p_single / rest**2
        d_shared = gx / sums + gy * p_single / rest**2
        d_single = gy / rest
        grad_anchors, grad_items = torch.empty_like(anchors), torch.zeros_like(items)
        for start in range(0, anchors.shape[1], block):
            part = slice(start, start + block)
            a = anchors[:, part]
            scores = kept[0] if kept else (a @ items.transpose(1, 2)).div_(tau).exp_()
            at_shared = scores.gather(-1, shared[:, part]) * d_shared[:, part, None]
            at_single = scores.gather(-1, single[:, part]) * d_single[:, part, None]
            out = scores.mul_(d_sums[:, part, None])  # d/dS = exp(S / tau) / tau * d/dexp
            out.scatter_add_(-1, shared[:, part], at_shared)
            out.scatter_add_(-1, single[:, part], at_single)
            torch.bmm(out, items, out=grad_anchors[:, part])
            grad_items.baddbmm_(out.transpose(1, 2), a)
        return grad_anchors, grad_items, None, None, None


def neighbour_discrimination(
    anchors: torch.Tensor,
    items: torch.Tensor,
    *,
    n_pseudo_positives: int,
    temperature: float,
    block_elements: int = BLOCK_ELEMENTS,
) -> torch.Tensor:
    r"""DA-MRS's neighbour discrimination of every view's anchors (``(V, rows, d)``: the
    batch's items in each view) against all of that view's items (``(V, items, d)``):
    per anchor and view, :math:`-\log(P_s / T + \epsilon) - \log(P_1 / (T - P_s) +
    \epsilon)`, where :math:`P_s, P_1` are the summed :math:`\exp(\cos / \tau)` of the
    view's shared and single pseudo-positives (:func:`pseudo_positives`, ranked on every
    view's :func:`label_distribution` of the same cosines), :math:`T` that sum over all items,
    :math:`\epsilon = 10^{-9}`; the mean over anchors and views. Computed in blocks of rows of
    at most ``block_elements`` similarities over all views, the gradient written out
    (:class:`_NeighbourDiscrimination`); runs outside autocast, in float32 at least."""
    dtype = torch.promote_types(anchors.dtype, torch.float32)
    views, n_items = items.shape[:2]
    block = max(1, block_elements // (views * n_items))
    with torch.autocast(anchors.device.type, enabled=False):
        rows = _NeighbourDiscrimination.apply(
            F.normalize(anchors.to(dtype), dim=-1),
            F.normalize(items.to(dtype), dim=-1),
            n_pseudo_positives,
            temperature,
            block,
        )
    return rows.mean()


def symmetric_binary_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    r"""Mean of :math:`KL(p \| q) + KL(q \| p)` of Bernoulli variables given by their logits
    :math:`a, b`, in the closed form :math:`(\sigma(a) - \sigma(b))(a - b)` (the two
    divergences' logarithms cancel to the logits' difference; the release takes ``log`` of
    sigmoids, infinite where a sigmoid saturates)."""
    return ((torch.sigmoid(logits_p) - torch.sigmoid(logits_q)) * (logits_p - logits_q)).mean()


@torch.no_grad()
def feedback_weights(
    users: torch.Tensor, positive_views: torch.Tensor, negative_views: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""DA-MRS's feedback denoising weights of a BPR batch, from each view's preference
    :math:`p^v = \sigma(e_u^\top \hat h^v_i)` (``*_views`` are ``(V, B, d)``, L2-normalised):
    positive :math:`\mathrm{clip}(\bar p \cdot e^{-2\,\mathrm{var}(p)}, 0, 1)`; negative
    :math:`\mathrm{clip}(\max_v p^v - \bar n, 0, 1)` where :math:`\bar p < \bar n` and 0 elsewhere,
    :math:`\bar n` the mean negative preference over views *and the batch*. No gradient."""
    positive = torch.sigmoid((users.unsqueeze(0) * positive_views).sum(-1))
    negative_mean = torch.sigmoid((users.unsqueeze(0) * negative_views).sum(-1)).mean()
    mean = positive.mean(0)
    positive_weight = (mean * torch.exp(-positive.var(0)).pow(2)).clamp(0, 1)
    flipped = (mean < negative_mean).to(mean.dtype)
    negative_weight = ((positive.max(0).values - negative_mean) * flipped).clamp(0, 1)
    return positive_weight, negative_weight


@register_model()
class DAMRS(MultimodalRecommender):
    r"""A LightGCN collaborative view plus item views over denoised graphs, trained with
    feedback-denoised BPR, neighbour discrimination and a user-preference alignment.

    - Collaborative view: LightGCN layer mean (``n_ui_layers``) of the ID embeddings over
      :math:`D^{-1/2} A D^{-1/2}`: :math:`e_u, e_i`.
    - Item views: the item ID embeddings propagated ``n_mm_layers`` times over each denoised
      modality graph (:func:`denoised_knn_graphs`: the features only decide the edges) and over
      the behaviour graph (:func:`session_graph`): :math:`h^v_i`, V = M + 1 views.
    - Score :math:`s(u, i) = e_u^\top (e_i + \bar h_i)`, :math:`\bar h` the mean of the views.

    Loss:
    :math:`-\mathrm{mean}(w^+ \log\sigma(s_{ui^+} - s_{ui^-}) + w^- \log\sigma(s_{ui^-} -
    s_{ui^+}))` (:func:`feedback_weights`) :math:`+ \beta\,\frac{1}{V}\sum_v ND_v +
    \gamma\,KL`, where :math:`ND_v` is :func:`neighbour_discrimination` of the batch's unique
    items in view v against its :func:`pseudo_positives` (``n_pseudo_positives`` of each kind,
    ranked on every view's :func:`label_distribution`), and :math:`KL` the
    :func:`symmetric_binary_kl` of :math:`e_u^\top \hat e_i` and :math:`e_u^\top \hat{\bar h}_i`
    over the batch's unique users and items (hats: L2-normalised).

    Config: ``embedding_size`` (d), ``n_ui_layers``, ``n_mm_layers``, ``knn_k``, ``kl_weight``
    (:math:`\gamma`), ``neighbor_weight`` (:math:`\beta`), ``temperature`` (MMRec: 0.2,
    hard-coded), ``n_pseudo_positives`` (MMRec: 10, hard-coded), ``session_k`` and
    ``session_min_shared`` (the authors' ``build_iib_graph.py``: 2 and 2), ``feature_norm``.

    Deviations from the release (MMRec ``src/models/damrs.py``, e775373):

    - The behaviour graph is built here from the training split (MMRec reads
      ``item_graph_dict_file``, written by the authors' ``build_iib_graph.py`` from the same
      split); co-occurrence ties are ordered by item id.
    - Any number of modalities: the candidate edges need every modality's similarity at its
      mean, and each view's pseudo-positives rank the sum of all V distributions plus its own
      (the release: image and text, the same for M = 2). Among the candidates each item takes
      its ``knn_k`` most similar, the release's selection (a candidate's similarity is at
      least the mean, which is never negative); the mean similarity is over the items that
      have the modality, and the label distributions, pseudo-positives and the
      discrimination's denominator run over the items, the dataset's padding item 0 left
      out.
    - The BPR term is computed from logits in log-sigmoid form and the KL in its closed form
      :math:`(\sigma(a) - \sigma(b))(a - b)` (the release: ``log`` of sigmoids, which is
      infinite where a sigmoid saturates); the graphs' row counts carry no 1e-7 (rows without
      edges are zero). The neighbour discrimination's gradient is written out (the same
      gradient; float32 under autocast).
    - Memory: the release computes each view's whole (batch items x items) similarities,
      label distributions and exponentials at once. Here the discrimination, and the graph
      construction, run in row blocks of at most 2^26 similarities (one block for a TikTok
      batch; backward computes a block again when there are several): on a set of 100,000
      items (``tests/test_scale.py``) building the model and a training step peak at 1.5 GB,
      against 17 GB with whole matrices, and a TikTok step takes 0.93x the time
      (``bench/bench_step_ab.py DAMRS``).
    - Left out as unused by the release: ``image_trs``/``text_trs``, ``reg_weight``,
      ``lambda_coeff``, ``cf_model``. The features are fixed, as they are in the release.

    Beside MMRec (``results/reference``: TikTok, MMRec's default setting, seed 2020, exactly
    20 epochs a side): test Recall@20 0.945x MMRec's, NDCG@20 0.918x, both validation curves
    still rising, this side's below MMRec's from the first epoch on (0.0620 against 0.0670;
    19 of 20 epochs). The model is the same: from the same parameters on the same batch
    (``bench/mmrec/step_check.py DAMRS --their-graphs``) the two losses agree to 2e-7 relative
    and every gradient to 2e-11 (entries up to 6e-5); the item-item graphs are identical but
    for 7 of 6,710 audio rows, ties at the tenth neighbour (items with equal audio features),
    which the two top-k routines order differently. What differs between the curves is the
    random streams (initialisation, batch order, negatives), one seed a side.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_ui_layers: int = config["n_ui_layers"]
        self.n_mm_layers: int = config["n_mm_layers"]
        self.knn_k: int = config["knn_k"]
        self.kl_weight: float = config["kl_weight"]
        self.neighbor_weight: float = config["neighbor_weight"]
        self.temperature: float = config["temperature"]
        self.n_pseudo_positives: int = config["n_pseudo_positives"]

        self.init_id_embeddings(self.embedding_size)
        inter = dataset.inter_matrix(form="coo")
        self.register_buffer("adjacency", normalized_adjacency(inter), persistent=False)
        session = session_graph(inter, config["session_k"], min_shared=config["session_min_shared"])
        self.register_buffer("session_graph", session, persistent=False)
        self.on_mask_change()

    def on_mask_change(self) -> None:
        features = {m: self.raw_feature(m) for m in self.modalities}
        for m, graph in denoised_knn_graphs(features, self.knn_k).items():
            self.register_buffer(f"_graph_{m}", graph, persistent=False)

    def views(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Collaborative users and items, and the item views ``(V, n_items, d)``."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = lightgcn_layers(self.adjacency, ego, self.n_ui_layers).split(
            [self.n_users, self.n_items]
        )
        item_views = []
        graphs = [getattr(self, f"_graph_{m}") for m in self.modalities]
        for graph in [*graphs, self.session_graph]:
            h = self.item_embedding.weight
            for _ in range(self.n_mm_layers):
                h = torch.sparse.mm(graph, h)
            item_views.append(h)
        return users, items, torch.stack(item_views)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items, item_views = self.views()
        return users, items + item_views.mean(0)

    def calculate_loss(self, interaction: Interaction) -> torch.Tensor:
        user, pos, neg = (interaction[k] for k in (self.USER_ID, self.ITEM_ID, self.NEG_ITEM_ID))
        users, items, item_views = self.views()
        batch_items = torch.unique(torch.cat([pos, neg]))

        candidates = item_views[:, 1:]  # every item but the padding item 0
        discrimination = neighbour_discrimination(
            item_views[:, batch_items],
            candidates,
            n_pseudo_positives=self.n_pseudo_positives,
            temperature=self.temperature,
        )

        mean_view = item_views.mean(0)
        batch_users = users[torch.unique(user)]
        alignment = symmetric_binary_kl(
            batch_users @ F.normalize(items[batch_items], dim=1).T,
            batch_users @ F.normalize(mean_view[batch_items], dim=1).T,
        )

        u = users[user]
        positive_weight, negative_weight = feedback_weights(
            u, F.normalize(item_views[:, pos], dim=-1), F.normalize(item_views[:, neg], dim=-1)
        )
        scored = items + mean_view
        margin = (u * scored[pos]).sum(-1) - (u * scored[neg]).sum(-1)
        bpr = -(
            positive_weight * F.logsigmoid(margin) + negative_weight * F.logsigmoid(-margin)
        ).mean()
        return bpr + self.neighbor_weight * discrimination + self.kl_weight * alignment
