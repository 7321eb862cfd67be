"""negative_pool: RecBole's rule (all items) and MMRec's (training items only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import fast
from recbole.sampler import Sampler

from recbole_mmkd.data.negatives import TrainItemSampler
from recbole_mmkd.errors import ConfigError
from recbole_mmkd.prepare import prepare
from recbole_mmkd.trainer import MMKDTrainer

N_ITEMS, WARM = 30, 24  # items WARM.. occur in validation and test only


def _cold_dataset(root: Path, *, greedy_user: bool = False) -> Path:
    """40 users with 6 training items among the first WARM and one validation and one test
    item among all N_ITEMS, so items WARM.. never occur in training (raw ids). With
    ``greedy_user``, user 0 has every training item."""
    rng = np.random.default_rng(1)
    rows = []
    for user in range(40):
        train = range(WARM) if greedy_user and user == 0 else rng.choice(WARM, 6, replace=False)
        rows += [(user, int(i), 0) for i in train]
        held = rng.choice(np.setdiff1d(np.arange(N_ITEMS), train), 2, replace=False)
        rows += [(user, int(held[0]), 1), (user, int(held[1]), 2)]
    rows += [(40, WARM + k, 1 + k % 2) for k in range(N_ITEMS - WARM)]  # every cold item held
    rows.append((40, 0, 0))
    folder = root / "cold"
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["userID", "itemID", "x_label"]).to_csv(
        folder / "cold.inter", sep="\t", index=False
    )
    return root


def _negatives(run, epochs: int = 20) -> set[int]:
    """The RecBole ids of every negative the training loader draws over ``epochs`` epochs."""
    drawn = set()
    for _ in range(epochs):
        for batch in run.train:
            drawn.update(batch[run.model.NEG_ITEM_ID].tolist())
    return drawn


def test_train_pool_draws_only_training_items(tmp_path):
    root = _cold_dataset(tmp_path)
    common = {"data_path": root, "seed": 0}
    mmrec = prepare("BPR", "cold", overrides=fast(negative_pool="train"), **common)
    recbole = prepare("BPR", "cold", overrides=fast(), **common)
    assert isinstance(mmrec.train._sampler, TrainItemSampler)
    assert type(recbole.train._sampler) is Sampler  # the default is RecBole's, untouched
    cold = set(range(WARM + 1, N_ITEMS + 1))  # RecBole id = raw id + 1
    assert not _negatives(mmrec) & cold
    assert _negatives(recbole) & cold == cold  # 20 epochs of ~250 draws reach all 6


def test_cold_item_ids_get_no_gradient_under_the_train_pool(tmp_path):
    """Under MMRec's rule an item absent from training is never a negative, so BPR leaves its
    ID embedding at its initial value; under RecBole's it is pushed down."""
    root = _cold_dataset(tmp_path)
    cold = torch.arange(WARM + 1, N_ITEMS + 1)
    for pool, moved in (("train", False), ("all", True)):
        run = prepare("BPR", "cold", overrides=fast(negative_pool=pool), data_path=root, seed=0)
        before = run.model.item_embedding.weight[cold].detach().clone()
        MMKDTrainer(run.config, run.model).fit(run.train, run.valid, stop_after=1)
        after = run.model.item_embedding.weight[cold].detach()
        assert (not torch.equal(before, after)) is moved


def test_bad_pool_and_greedy_user_are_refused_by_name(tmp_path):
    root = _cold_dataset(tmp_path)
    with pytest.raises(ConfigError, match=r"negative_pool.*'warm'.*all, train"):
        prepare("BPR", "cold", overrides=fast(negative_pool="warm"), data_path=root)
    greedy = _cold_dataset(tmp_path / "greedy", greedy_user=True)
    with pytest.raises(ConfigError, match=r"negative_pool.*every training item"):
        prepare("BPR", "cold", overrides=fast(negative_pool="train"), data_path=greedy)
    prepare("BPR", "cold", overrides=fast(), data_path=greedy)  # RecBole's rule has the cold
