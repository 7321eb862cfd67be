"""LayerGCN: layer-refined graph convolution with degree-sensitive edge dropout.

Zhou et al., "Layer-refined Graph Convolutional Networks for Recommendation", ICDE 2023
(released code: enoche/ImRec; MMRec ``src/models/layergcn.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MMKDRecommender
from recbole_mmkd.model.edge_dropout import EdgeDropout
from recbole_mmkd.model.graph import propagate


def refined_layers(adjacency: torch.Tensor, ego: torch.Tensor, n_layers: int) -> torch.Tensor:
    """LayerGCN's readout: each layer :math:`E^{(k+1)} = w^{(k+1)} \\odot \\hat A E^{(k)}`,
    each node's output rescaled by its cosine similarity to its ego embedding
    :math:`w_n = \\cos(\\hat A E^{(k)}_n, E^{(0)}_n)`, and the layers 1..K summed (the ego
    layer left out)."""
    layers, x = [], ego
    for _ in range(n_layers):
        x = propagate(adjacency, x)
        x = F.cosine_similarity(x, ego, dim=-1).unsqueeze(-1) * x
        layers.append(x)
    return torch.stack(layers).sum(0)


@register_model()
class LayerGCN(EdgeDropout, MMKDRecommender):
    r"""ID embeddings over the user-item graph, each layer refined by its similarity to the ego
    layer (:func:`refined_layers`); score :math:`s(u, i) = e_u^\top e_i`.

    Training drops a fraction ``dropout`` of the edges each epoch and renormalises the rest:
    even epochs keep edges drawn without replacement with probability proportional to
    :math:`1/\sqrt{d_u d_i}` (so high-degree nodes lose more), odd epochs keep a uniform draw,
    as the release alternates; evaluation reads the whole graph.

    Loss: :math:`\sum_B -\log\sigma(s_{ui^+} - s_{ui^-}) + \lambda\,\tfrac12(\|e^{(0)}_u\|^2 +
    \|e^{(0)}_{i^+}\|^2 + \|e^{(0)}_{i^-}\|^2)`, summed over the batch as released (MMRec's
    ``L2Loss`` on the ego rows).

    Config: ``embedding_size``, ``n_layers`` (K), ``reg_weight`` (:math:`\lambda`),
    ``dropout`` (fraction of edges dropped).

    Deviations from the release (MMRec ``src/models/layergcn.py``, e775373; it imports
    ``models.common``, a package MMRec does not have, so MMRec cannot run it as shipped):

    - The uniform draw uses torch's generator (the release: Python's ``random.sample``); the
      kept graph's degrees carry no 1e-7.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.n_layers: int = config["n_layers"]
        self.reg_weight: float = config["reg_weight"]
        self.dropout: float = config["dropout"]
        self.init_id_embeddings(self.embedding_size)

        self.init_edge_dropout(dataset.inter_matrix(form="coo"))

    def on_epoch_start(self, epoch: int) -> None:
        if self.dropout > 0:
            self.keep_edges(1.0 - self.dropout, by_degree=epoch % 2 == 0)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        final = refined_layers(self.current_adjacency(), ego, self.n_layers)
        return final.split([self.n_users, self.n_items])

    def calculate_loss(self, interaction) -> torch.Tensor:
        loss, *_ = self.bpr_batch(interaction)
        batch = interaction[self.USER_ID].shape[0]
        return batch * (loss + self.reg_weight * self.id_reg(interaction))
