"""MMGCF's fusions and weightings: every combination trains every parameter it builds, the
normalised weighting balances the ID output against the modalities, and a bad option is
refused by name."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import fast

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.general.mmgcf import FUSIONS, WEIGHTINGS
from recbole_mmkd.model.graph import lightgcn_layers
from recbole_mmkd.prepare import prepare


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_every_combination_trains_what_it_builds(toy, fusion, weighting):
    run = prepare("MMGCF", "toy", overrides=fast(fusion=fusion, weighting=weighting),
                  data_path=toy)  # fmt: skip
    batch = next(iter(run.train))
    run.model.calculate_loss(batch).backward()
    untrained = [n for n, p in run.model.named_parameters() if p.grad is None]
    assert not untrained


def test_normalised_weighting_scales_the_id_output_by_the_number_of_modalities(toy):
    model = prepare("MMGCF", "toy", overrides=fast(fusion="sum", weighting="normalized"),
                    data_path=toy).model.eval()  # fmt: skip
    _, items = model.forward()
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
    ids = lightgcn_layers(model.adjacency, ego, model.n_ui_layers)[model.n_users :]
    features = [F.normalize(model.projections[m](model.modal_feature(m))) for m in model.modalities]
    torch.testing.assert_close(items, 2 * F.normalize(ids) + sum(features))


def test_an_unknown_weighting_is_refused_naming_the_key(toy):
    with pytest.raises(ConfigError, match="weighting"):
        prepare("MMGCF", "toy", overrides=fast(weighting="prod"), data_path=toy)
