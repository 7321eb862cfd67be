"""MMRec's modality slots (image first, the rest by name) and the models whose modalities play
different parts: SLMRec's chain follows them unless told otherwise."""

from __future__ import annotations

import pytest
from conftest import fast, write_dataset

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.slots import mmrec_order
from recbole_mmkd.prepare import prepare


@pytest.mark.parametrize(
    ("modalities", "expected"),
    [
        (["audio", "image"], ["image", "audio"]),  # TikTok: audio in MMRec's text slot
        (["image", "text"], ["image", "text"]),
        (["text", "image", "audio"], ["image", "audio", "text"]),
        (["text", "audio"], ["audio", "text"]),
    ],
)
def test_image_first_then_the_rest_by_name(modalities, expected):
    assert mmrec_order(modalities) == expected


def test_slmrec_chains_image_first_by_default(tmp_path):
    write_dataset(tmp_path, modalities={"audio": 5, "image": 8})
    model = prepare("SLMRec", "toy", overrides=fast(), data_path=tmp_path).model
    assert model.chain_order == ["image", "audio"]
    chosen = prepare("SLMRec", "toy", overrides=fast(chain_order=["audio", "image"]),
                     data_path=tmp_path).model  # fmt: skip
    assert chosen.chain_order == ["audio", "image"]


def test_slmrec_refuses_a_chain_that_is_not_an_order_of_the_modalities(toy):
    with pytest.raises(ConfigError, match="chain_order"):
        prepare("SLMRec", "toy", overrides=fast(chain_order=["image", "audio"]), data_path=toy)
