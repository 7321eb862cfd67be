"""Which items a training negative is drawn from (config key ``negative_pool``).

- ``all`` (RecBole's rule, the default): uniform over every item the user has not interacted
  with in training, items that never occur in training included.
- ``train`` (MMRec's rule, ``TrainDataLoader._sample_neg_ids`` at e775373): uniform over the
  distinct items that occur in the training split, the user's own excepted.

The two differ only on items absent from training (cold items). Under ``all`` such an item is
only ever a negative, so an ID-based score learns to rank it last, and so does any model whose
item representation it shares parameters with: on TikTok, 7.3% of the validation and test rows
are on such items. Under ``train`` cold items receive no gradient through their ID, so a
multimodal model can still rank them from their features.
"""

from __future__ import annotations

import numpy as np
from recbole.data.dataloader import AbstractDataLoader
from recbole.sampler import Sampler

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.options import check_choice

POOLS = ("all", "train")


class TrainItemSampler(Sampler):
    """RecBole's :class:`~recbole.sampler.Sampler` of one phase whose uniform draws come from
    ``items`` only; rejection of each user's own items is RecBole's, unchanged."""

    def __init__(self, base: Sampler, items: np.ndarray) -> None:
        self.__dict__.update(base.__dict__)  # the phase's used ids, fields and counts
        self.items = items

    def _uni_sampling(self, sample_num: int) -> np.ndarray:
        return self.items[np.random.randint(0, len(self.items), sample_num)]


def training_items(loader: AbstractDataLoader) -> np.ndarray:
    """The distinct items of a training loader's interactions (RecBole ids, sorted)."""
    dataset = loader.dataset
    return np.unique(dataset.inter_feat[dataset.iid_field].numpy())


def restrict_negatives(loader: AbstractDataLoader, pool: str) -> None:
    """Make ``loader`` (the training loader) draw its negatives from ``pool`` (:data:`POOLS`).
    A user who has interacted with every item of the pool could never get a negative: refused
    by name."""
    check_choice("negative_pool", pool, POOLS)
    sampler = getattr(loader, "_sampler", None)
    if pool == "all" or sampler is None:  # pointwise models (BM3) draw no negatives
        return
    items = training_items(loader)
    if sampler.distribution != "uniform":
        raise ConfigError(
            "config", "negative_pool",
            f"'train' draws uniformly, and train_neg_sample_args asks for "
            f"'{sampler.distribution}' negatives",
            "set negative_pool: all, or train_neg_sample_args.distribution: uniform",
        )  # fmt: skip
    pool_set = set(items.tolist())
    full = [u for u, used in enumerate(sampler.used_ids) if len(used) >= len(pool_set)
            and pool_set <= used]  # fmt: skip
    if full:
        raise ConfigError(
            "config", "negative_pool",
            f"'train' leaves user {full[0]} (RecBole id) no negative: it has interacted "
            "with every training item",
            "set negative_pool: all, or drop such users from the data",
        )  # fmt: skip
    loader._sampler = TrainItemSampler(sampler, items)
