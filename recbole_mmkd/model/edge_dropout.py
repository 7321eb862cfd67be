"""Edge dropout of the user-item graph, drawn once per epoch: FREEDOM's degree-sensitive
pruning, shared by FREEDOM, LayerGCN, PGL and MMGCF."""

from __future__ import annotations

import scipy.sparse as sp
import torch

from recbole_mmkd.model.graph import adjacency_from_edges, bipartite_edges, normalized_adjacency


class EdgeDropout:
    """Mixin for a recommender over the normalised user-item graph: :meth:`init_edge_dropout`
    registers the whole graph (``adjacency``) and the graph training reads
    (``train_adjacency``, the whole graph until a draw); :meth:`keep_edges` redraws it with a
    share of the edges, renormalised; :meth:`current_adjacency` is the one to propagate over
    (the drawn graph in training, the whole one at evaluation)."""

    def init_edge_dropout(self, interactions: sp.coo_matrix) -> None:
        edges, edge_weights = bipartite_edges(interactions)
        self.register_buffer("edges", edges, persistent=False)
        self.register_buffer("edge_weights", edge_weights, persistent=False)
        self.register_buffer("adjacency", normalized_adjacency(interactions), persistent=False)
        self.register_buffer("train_adjacency", self.adjacency, persistent=False)

    def keep_edges(self, share: float, *, by_degree: bool = True) -> None:
        """Keep ``int(n_edges * share)`` edges, drawn without replacement with probability
        :math:`\\propto 1/\\sqrt{d_u d_i}` (``by_degree``: high-degree nodes lose more) or
        uniformly."""
        n_edges = self.edges.shape[1]
        n_keep = int(n_edges * share)
        if by_degree:
            keep = torch.multinomial(self.edge_weights, n_keep, replacement=False)
        else:
            keep = torch.randperm(n_edges, device=self.edges.device)[:n_keep]
        self.train_adjacency = adjacency_from_edges(self.edges[:, keep], self.n_users, self.n_items)

    def current_adjacency(self) -> torch.Tensor:
        return self.train_adjacency if self.training else self.adjacency
