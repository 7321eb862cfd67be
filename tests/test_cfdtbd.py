"""CFDTBD as released: its graphs, its whitening, its weighted part scores and the direction of
its two disentangling terms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import fast

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model.student.cfdtbd import CFDTBD, self_loop_adjacency, zca_whiten
from recbole_mmkd.prepare import prepare


def _model(root, **overrides) -> CFDTBD:
    return prepare("CFDTBD", "toy", overrides=fast(**overrides), data_path=root).model


def test_self_loop_adjacency_is_d_a_times_a_plus_i_times_d_b():
    interactions = sp.coo_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))
    a = np.zeros((5, 5))
    a[:2, 2:] = interactions.toarray()
    a = a + a.T + np.eye(5)
    degree = a.sum(1)  # interactions + 1
    expected = np.diag(degree**-0.5) @ a @ np.diag(degree**-0.4)
    got = self_loop_adjacency(interactions, -0.5, -0.4).to_dense().numpy()
    assert np.allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, got.T)  # the release's ID graph is not symmetric


def test_zca_whitening_gives_unit_second_moments_and_passes_gradients():
    torch.manual_seed(0)
    x = (torch.randn(200, 4) @ torch.tensor([[3.0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0.1, 0],
                                             [0, 0, 0, 2]])).requires_grad_()  # fmt: skip
    z = zca_whiten(x)
    # eps = 1e-5 on an eigenvalue near 0.01 (the 0.1-scaled column) leaves 1 - 1e-3 there
    assert torch.allclose(z.T @ z / 200, torch.eye(4), atol=2e-3)
    z.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ranking_is_the_weighted_sum_of_the_part_scores(toy):
    model = _model(toy, embedding_size=4, score_weights={"image": 0.5, "text": 2.0, "fused": 3.0,
                                                          "other": 1.0})  # fmt: skip
    model.eval()
    with torch.no_grad():
        users, items = model.forward()
        tables, _ = model.part_tables()

        def score(part):
            u, i = tables[part]
            return u[1] @ i[7]

        expected = (score("id") + 0.5 * (score("image_1") + score("image_2"))
                    + 2.0 * (score("text_1") + score("text_2")) + 3.0 * score("fused"))  # fmt: skip
    assert torch.allclose(users[1] @ items[7], expected, rtol=1e-5)
    assert users.shape[1] == 4 * (1 + 2 * 2 + 1) + 4 * 3  # id, 2 parts x 2 modalities, fused 4x


@pytest.mark.parametrize(("sign", "direction"), [("apart", -1), ("together", 1)])
def test_the_common_term_drives_two_modalities_common_parts_by_its_sign(toy, sign, direction):
    model = _model(toy, embedding_size=4, common_sign=sign)
    users, items = torch.arange(1, 20), torch.arange(1, 30)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)

    def cosines():
        tables, _ = model.part_tables()
        common, differential = model.disentangling_terms(tables, users, items)
        parts = [tables[f"{m}_1"][1][items] for m in ("image", "text")]
        return common, differential, torch.cosine_similarity(*parts).mean()

    *_, before = cosines()
    for _ in range(150):
        optimizer.zero_grad()
        common, differential, _ = cosines()
        (common + differential).backward()
        optimizer.step()
    common, differential, after = cosines()
    assert direction * (after - before) > 0.5  # apart: towards -1; together: towards +1
    assert differential < 0.1  # the differential parts end up (near) orthogonal


def test_bad_settings_are_named_before_training(toy):
    with pytest.raises(ConfigError, match=r"common_sign.*use one of apart, together"):
        _model(toy, common_sign="closer")
    with pytest.raises(ConfigError, match=r"bpr_weights.*no entry for fused"):
        _model(toy, bpr_weights={"image": 1.0, "text": 1.0})
