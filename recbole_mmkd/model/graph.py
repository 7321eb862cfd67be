"""User-item graph operators, built once per dataset."""

from __future__ import annotations

import hashlib
import inspect
import os
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch.autograd.function import once_differentiable


def normalized_adjacency(interactions: sp.coo_matrix) -> torch.Tensor:
    """Symmetrically normalised bipartite adjacency ``D^-1/2 A D^-1/2`` as a sparse CSR tensor.

    ``interactions`` is the ``(n_users, n_items)`` training matrix; the result is square over
    ``n_users + n_items`` nodes, users first. Isolated nodes keep zero rows. CSR, because
    ``torch.sparse.mm`` with it is about 1.7x faster than with COO on CPU (forward + backward,
    TikTok, 2 layers; see bench/bench_foundation.py).
    """
    n_users, n_items = interactions.shape
    rows = np.concatenate([interactions.row, interactions.col + n_users])
    cols = np.concatenate([interactions.col + n_users, interactions.row])
    n = n_users + n_items
    degree = np.bincount(rows, minlength=n).astype(np.float32)
    inv_sqrt = np.zeros_like(degree)
    np.divide(1.0, np.sqrt(degree), out=inv_sqrt, where=degree > 0)
    values = inv_sqrt[rows] * inv_sqrt[cols]
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    values_t = torch.from_numpy(values)
    coo = torch.sparse_coo_tensor(index, values_t, (n, n), check_invariants=True).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def csr_mm(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` for a sparse ``matrix``: the same values as ``torch.sparse.mm``, which
    for a CSR matrix also copies its output twice on the way; here a CSR product is written
    into a zeroed output (zeroed, not empty: some kernels scale it by beta = 0, which keeps a
    NaN left in fresh memory). A TikTok LightGCN training step 0.88-0.92x
    (``bench/bench_spmm.py``). Not differentiable (an ``out=`` product): for the passes of an
    autograd Function (:func:`propagate`, :mod:`~recbole_mmkd.model.transposed`, GRCN's
    bipartite products)."""
    if matrix.layout != torch.sparse_csr:
        return torch.sparse.mm(matrix, dense)
    out = dense.new_zeros((matrix.shape[0], dense.shape[1]))
    return torch.addmm(out, matrix, dense, beta=0.0, out=out)


class _SymmetricSpMM(torch.autograd.Function):
    """``A @ x`` for a symmetric sparse ``A``, whose backward is ``A @ grad`` (no transpose)."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return csr_mm(adjacency, dense)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, csr_mm(ctx.adjacency, grad)


def propagate(adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """One propagation step over a *symmetric* sparse adjacency (e.g. :func:`normalized_adjacency`).

    Same values and gradients as ``torch.sparse.mm``; about 2x faster forward + backward on CPU,
    because torch's CSR backward transposes the matrix on every call. Differentiable once.
    """
    return _SymmetricSpMM.apply(adjacency, dense)


def normalized_pattern(
    rows: torch.Tensor, cols: torch.Tensor, n: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the ``n x n`` 0/1 matrix ``A`` of the edges ``(rows, cols)``,
    ``D`` its row sums: each edge weighted ``1/sqrt(d_r d_c)`` by the row counts (rows
    without edges stay zero; :func:`knn_graph`, DA-MRS's ``compute_normalized_laplacian``).
    A coalesced sparse COO tensor of ``dtype``."""
    index = torch.stack([rows, cols])
    degree = torch.bincount(rows, minlength=n).to(dtype)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1).rsqrt(), torch.zeros_like(degree))
    values = inv_sqrt[rows] * inv_sqrt[cols]
    return torch.sparse_coo_tensor(index, values, (n, n), check_invariants=True).coalesce()


def knn_graph(features: torch.Tensor, k: int, *, chunk: int = 2048) -> torch.Tensor:
    """Item-item kNN graph by cosine similarity, normalised ``D^-1/2 A D^-1/2`` (LATTICE/FREEDOM).

    Each row keeps its ``k`` most similar items (itself included, as in LATTICE and FREEDOM);
    ``D`` holds the row sums of the 0/1 kNN matrix (:func:`normalized_pattern`). Rows of
    all-zero features (padding, missing modality) get no edges. Similarities are computed
    ``chunk`` rows at a time, so memory stays ``chunk x n_items`` instead of ``n_items^2``.
    Returns a sparse COO tensor.
    """
    n = features.shape[0]
    norms = features.norm(dim=1, keepdim=True)
    valid = norms.squeeze(1) > 0
    unit = features / norms.clamp_min(1e-12)
    k = min(k, int(valid.sum()))
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = unit[start : start + chunk] @ unit.T
        block[:, ~valid] = -2.0  # never a neighbour
        top = torch.topk(block, k, dim=1).indices
        block_rows = torch.arange(start, start + block.shape[0]).unsqueeze(1).expand(-1, k)
        keep = valid[start : start + block.shape[0]]
        rows.append(block_rows[keep].reshape(-1))
        cols.append(top[keep].reshape(-1))
    return normalized_pattern(torch.cat(rows), torch.cat(cols), n, dtype=features.dtype)


_KNN_CACHE: dict[tuple[str, int], torch.Tensor] = {}
ENV_CACHE = "RECBOLE_MMKD_CACHE"  # where derived data (kNN item graphs) is kept between runs


def cache_dir() -> Path:
    """``$RECBOLE_MMKD_CACHE``, else ``~/.cache/recbole-mmkd``."""
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "recbole-mmkd")


def cached_knn_graph(features: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`knn_graph`, memoised by a digest of the features and ``k``: in this process (every
    seed and model of a benchmark on the same features shares one construction) and on disk
    under :func:`cache_dir` (``knn/<digest>-k<k>-<code>.pt``), so that every later process, a
    benchmark's next run or a sweep's trial, reads the graph instead of building it again
    (an Amazon set's 4,096-d image graph costs a minute or more to build). A stored graph that
    cannot be read is built again and replaced; one that cannot be written is only warned of."""
    cpu = features.detach().to("cpu", torch.float32).contiguous()
    key = (hashlib.sha1(cpu.numpy().tobytes()).hexdigest(), k)
    if key not in _KNN_CACHE:
        name = f"{key[0]}-k{k}-{_knn_code()}.pt"  # other code builds another file
        _KNN_CACHE[key] = _stored_knn_graph(cpu, k, cache_dir() / "knn" / name)
    return _KNN_CACHE[key].to(features.device)


@cache
def _knn_code() -> str:
    """Digest of the source that builds a kNN graph, so that a stored graph is read only by
    the code that built it (a run's hash covers that code; the graph it reads must too)."""
    source = inspect.getsource(knn_graph) + inspect.getsource(normalized_pattern)
    return hashlib.sha1(source.encode()).hexdigest()[:10]


def _stored_knn_graph(features: torch.Tensor, k: int, path: Path) -> torch.Tensor:
    if path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            return torch.sparse_coo_tensor(
                saved["indices"], saved["values"], tuple(saved["size"]), check_invariants=True
            ).coalesce()
        except Exception as err:  # a cache file: whatever broke it, it is built again
            warnings.warn(f"{path}: unreadable kNN graph ({err}); building it again", stacklevel=3)
    graph = knn_graph(features, k)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        torch.save(
            {"indices": graph.indices(), "values": graph.values(), "size": list(graph.shape)},
            partial,
        )
        os.replace(partial, path)
    except OSError as err:
        warnings.warn(f"{path}: kNN graph not cached ({err})", stacklevel=3)
    return graph


def bipartite_edges(interactions: sp.coo_matrix) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge list ``(2, E)`` of the user-item matrix and each edge's ``1/sqrt(d_u d_i)``."""
    rows = torch.from_numpy(interactions.row.astype(np.int64))
    cols = torch.from_numpy(interactions.col.astype(np.int64))
    user_deg = torch.bincount(rows, minlength=interactions.shape[0]).float()
    item_deg = torch.bincount(cols, minlength=interactions.shape[1]).float()
    return torch.stack([rows, cols]), (user_deg[rows] * item_deg[cols]).rsqrt()


def adjacency_from_edges(edges: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """Normalised symmetric adjacency (as :func:`normalized_adjacency`) of a user-item edge list."""
    values = np.ones(edges.shape[1], dtype=np.float32)
    matrix = sp.coo_matrix((values, edges.cpu().numpy()), shape=(n_users, n_items))
    return normalized_adjacency(matrix).to(edges.device)


def lightgcn_layers(adjacency: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of ``[E, A E, ..., A^K E]`` over a symmetric adjacency (LightGCN's readout)."""
    layers = [ego]
    for _ in range(n_layers):
        layers.append(propagate(adjacency, layers[-1]))
    return torch.stack(layers).mean(0)


def self_loop_edges(interactions: sp.coo_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of ``A + I`` for the bipartite user-item graph (users first, items offset by
    the user count; both directions, then one self-loop a node) and every node's degree in
    it (interactions + 1): ``(rows, cols, degree)``."""
    n_users, n_items = interactions.shape
    n = n_users + n_items
    nodes = np.arange(n)
    rows = np.concatenate([interactions.row, interactions.col + n_users, nodes])
    cols = np.concatenate([interactions.col + n_users, interactions.row, nodes])
    return rows, cols, np.bincount(rows, minlength=n)
