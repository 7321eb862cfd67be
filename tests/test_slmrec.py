"""SLMRec's fine-and-coarse chain: its spaces and widths as MMRec builds them for two
modalities, and its dot-product InfoNCE on a batch whose answer can be written down."""

from __future__ import annotations

import math

import torch
from conftest import fast

from recbole_mmkd.model.contrastive import info_nce
from recbole_mmkd.prepare import prepare


def test_dot_product_infonce_reads_lengths_cosine_does_not():
    anchors, positives = 2 * torch.eye(2), torch.eye(2)
    # logits [[2, 0], [0, 2]] at temperature 1: -log(e^2 / (e^2 + 1)) per row
    plain = info_nce(anchors, positives, temperature=1.0, cosine=False).item()
    assert math.isclose(plain, -math.log(math.e**2 / (math.e**2 + 1)), rel_tol=1e-6)
    cosine = info_nce(anchors, positives, temperature=1.0).item()
    assert math.isclose(cosine, -math.log(math.e / (math.e + 1)), rel_tol=1e-6)


def test_two_modalities_chain_through_the_releases_acoustic_level(toy):
    model = prepare("SLMRec", "toy", overrides=fast(embedding_size=8), data_path=toy).model
    assert [layer.out_features for layer in model.chain] == [8, 4]  # fine, then coarse
    assert model.audio_level.out_features == 8
    assert [model.heads[m].out_features for m in model.modalities] == [8, 4]
    plain = prepare("SLMRec", "toy", overrides=fast(embedding_size=8, released_audio_level=False),
                    data_path=toy).model  # fmt: skip
    assert plain.audio_level is None
