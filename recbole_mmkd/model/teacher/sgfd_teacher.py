"""SGFD's semantic-guided teacher.

Liu et al., "Semantic-Guided Feature Distillation for Multimodal Recommendation", ACM MM 2023.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mmkd.data.labels import item_labels
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import register_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.model.losses import l2_reg


def tower_widths(in_dim: int, out_dim: int) -> list[int]:
    """SGFD's teacher widths: divide by 4 while that stays above ``out_dim``, then ``out_dim``
    (4096 -> 1024 -> 256 -> 64; 128 -> 64; 384 -> 96 -> 64)."""
    widths = [in_dim]
    while widths[-1] // 4 > out_dim:
        widths.append(widths[-1] // 4)
    return [*widths, out_dim]


TOWERS = ("released", "interleaved")


def mlp_tower(widths: list[int], activation: bool, *, layout: str = "released") -> nn.Sequential:
    """The teacher tower over ``widths``. ``released`` (SGFD's code,
    ``TeacherStudentModel.py``): a chain of Linear layers with nothing between them, then one
    LeakyReLU when ``activation``. ``interleaved``: a LeakyReLU between consecutive Linears
    when ``activation``, none after the last (this project's first reading of the paper)."""
    linears = [nn.Linear(a, b) for a, b in itertools.pairwise(widths)]
    if layout == "released":
        return nn.Sequential(*linears, *([nn.LeakyReLU()] if activation else []))
    layers: list[nn.Module] = []
    for i, linear in enumerate(linears):
        layers.append(linear)
        if activation and i < len(linears) - 1:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


def class_loss(logits: torch.Tensor, labels: torch.Tensor, softmax_first: bool) -> torch.Tensor:
    """Cross-entropy; ``softmax_first`` reproduces SGFD's released code, which feeds softmax
    probabilities (not logits) to ``CrossEntropyLoss``."""
    return F.cross_entropy(logits.softmax(-1) if softmax_first else logits, labels)


class SemanticTeacher(nn.Module):
    """Per-modality towers, a classifier per modality (to be shared with SGFD's students), and a
    fusion layer over the modalities with its own classifier.

    ``features(inputs)`` gives each modality's L2-normalised ``d``-dim teacher feature
    (towers laid out as ``layout``, :func:`mlp_tower`); ``fuse(features)`` concatenates them,
    applies ``Linear(M*d, d)`` and leaky ReLU.
    """

    def __init__(
        self,
        dims: dict[str, int],
        d: int,
        n_labels: int,
        *,
        activation: bool = True,
        layout: str = "released",
    ) -> None:
        super().__init__()
        if layout not in TOWERS:
            raise ConfigError(
                "config", "teacher_tower", f"unknown {layout!r}", f"use one of {TOWERS}"
            )
        self.towers = nn.ModuleDict(
            {m: mlp_tower(tower_widths(i, d), activation, layout=layout) for m, i in dims.items()}
        )
        self.classifiers = nn.ModuleDict({m: nn.Linear(d, n_labels) for m in dims})
        self.fusion = nn.Linear(len(dims) * d, d)
        self.fusion_classifier = nn.Linear(d, n_labels)

    def features(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: F.normalize(tower(inputs[m]), dim=-1) for m, tower in self.towers.items()}

    def fuse(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.leaky_relu(self.fusion(torch.cat([features[m] for m in self.towers], dim=-1)))

    def losses(
        self, features: dict[str, torch.Tensor], labels: torch.Tensor, softmax_first: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean over modalities of the class loss, fusion class loss). ``softmax_first``
        (the released quirk) applies to the per-modality class loss only: the release's fusion
        loss (``FeatureFusionModel.py``) takes logits."""
        per_modality = [
            class_loss(self.classifiers[m](f), labels, softmax_first) for m, f in features.items()
        ]
        fusion = class_loss(self.fusion_classifier(self.fuse(features)), labels, False)
        return torch.stack(per_modality).mean(), fusion


@register_model()
class SGFDTeacher(MultimodalRecommender):
    r"""SGFD's semantic teacher used on its own, as a multimodal feature model.

    Item representation :math:`e_i = \gamma_i + \mathrm{fuse}(\{f^m_i\})`, where :math:`f^m_i`
    is modality m's teacher tower output (L2-normalised) and fuse the teacher's fusion layer;
    :math:`s(u, i) = \gamma_u^\top e_i`.

    Loss: :math:`\mathcal{L}_{BPR} + \lambda\,\mathrm{reg}
    + \text{ce\_weight}\,(\mathcal{L}_{class} + \mathcal{L}_{fusion})`, where
    :math:`\mathcal{L}_{class} = \frac{1}{M}\sum_m CE(C_m(f^m_i), y_i)` and
    :math:`\mathcal{L}_{fusion} = CE(C_f(\mathrm{fuse}), y_i)` over the batch's positive and
    negative items, y the item's category label (:mod:`recbole_mmkd.data.labels`).

    Config: ``embedding_size`` (d), ``reg_weight``, ``ce_weight``, ``teacher_tower``
    (``released``, the default: Linears then one leaky ReLU; ``interleaved``: a leaky ReLU
    between layers), ``teacher_activation`` (whether the tower has its leaky ReLU),
    ``ce_on_softmax`` (SGFD's released-code quirk, on the per-modality class loss only),
    ``label_source``, ``label_clusters``, ``label_seed``.
    """

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.embedding_size: int = config["embedding_size"]
        self.reg_weight: float = config["reg_weight"]
        self.ce_weight: float = config["ce_weight"]
        self.ce_on_softmax: bool = config["ce_on_softmax"]
        labels, self.label_source = item_labels(dataset, config)
        self.register_buffer("labels", labels, persistent=False)
        n_labels = int(labels.max()) + 1
        self.teacher = SemanticTeacher(
            self.feature_dims(),
            self.embedding_size,
            n_labels,
            activation=config["teacher_activation"],
            layout=config["teacher_tower"],
        )
        self.init_id_embeddings(self.embedding_size)

    def run_info(self) -> dict:
        return {"label_source": self.label_source, "n_labels": int(self.labels.max()) + 1}

    def _items(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        inputs = {m: self.modal_feature(m, items) for m in self.modalities}
        features = self.teacher.features(inputs)
        ids = self.item_embedding.weight if items is None else self.item_embedding(items)
        return ids + self.teacher.fuse(features), features

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self._items()[0]

    def calculate_loss(self, interaction) -> torch.Tensor:
        items = torch.cat([interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]])
        u = self.user_embedding(interaction[self.USER_ID])
        item_e, features = self._items(items)
        pos, neg = item_e.chunk(2)
        loss = -F.logsigmoid((u * pos).sum(-1) - (u * neg).sum(-1)).mean()
        cls, fusion = self.teacher.losses(features, self.labels[items], self.ce_on_softmax)
        return loss + self.reg_weight * l2_reg(u, pos, neg) + self.ce_weight * (cls + fusion)
