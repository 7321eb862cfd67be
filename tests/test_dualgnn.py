"""DualGNN's user fusion, as MMRec's code computes it and as the paper writes it, and the bad
option refused before anything trains."""

from __future__ import annotations

import pytest
import torch
from conftest import fast, write_dataset

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.prepare import prepare


def _users(root, fusion):
    torch.manual_seed(0)
    model = prepare("DualGNN", "toy", overrides=fast(user_fusion=fusion), data_path=root).model
    model.user_graph.weight.zero_()  # users read only themselves: the fusion alone
    model.eval()
    encoded = [model.encoders[m](model.adjacency, model.modal_feature(m))[: model.n_users]
               for m in model.modalities]  # fmt: skip
    return model.forward()[0], encoded, model.user_weights.squeeze(2)


def test_released_fusion_sums_every_modality_into_the_image_table(toy):
    users, (image, text), w = _users(toy, "released")
    expected = w[:, :1] * (image + text) + w[:, 1:] * text
    torch.testing.assert_close(users, expected)


def test_released_fusion_sums_into_image_where_image_is_not_first_by_name(tmp_path):
    # TikTok's layout: audio sorts before image, and sits in MMRec's second (text) slot
    write_dataset(tmp_path, modalities={"audio": 5, "image": 8})
    users, (audio, image), w = _users(tmp_path, "released")
    expected = w[:, :1] * audio + w[:, 1:] * (audio + image)
    torch.testing.assert_close(users, expected)


def test_paper_fusion_weights_each_modality_once(toy):
    users, (image, text), w = _users(toy, "paper")
    torch.testing.assert_close(users, w[:, :1] * image + w[:, 1:] * text)


def test_an_unknown_fusion_is_refused_naming_the_key(toy):
    with pytest.raises(ConfigError, match="user_fusion"):
        prepare("DualGNN", "toy", overrides=fast(user_fusion="cat"), data_path=toy)


def test_one_modality_reads_users_unweighted(tmp_path):
    write_dataset(tmp_path, modalities={"text": 5})
    model = prepare("DualGNN", "toy", overrides=fast(), data_path=tmp_path).model
    model.user_graph.weight.zero_()
    model.eval()
    (text,) = model.encode()
    torch.testing.assert_close(model.forward()[0], text[: model.n_users])


def test_the_best_epochs_user_graph_draw_comes_back_with_its_state(toy):
    model = prepare("DualGNN", "toy", overrides=fast(), data_path=toy).model
    model.on_epoch_start(3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    drawn = model.user_graph.index.clone()
    model.on_epoch_start(4)
    model.load_state_dict(state)
    assert torch.equal(model.user_graph.index, drawn)
