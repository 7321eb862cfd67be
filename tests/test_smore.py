"""SMORE's distinctive parts: spectral denoising and fusion, and the max-pooled fusion graph,
on inputs whose answers can be written down."""

from __future__ import annotations

import math

import torch

from recbole_mmkd.model.general.smore import spectral_filter, spectral_fusion
from recbole_mmkd.model.item_views import max_pool_graphs


def test_a_unit_filter_passes_the_rows_unchanged_and_a_zero_one_removes_them():
    x = torch.randn(5, 8)
    ones = torch.ones(5, dtype=torch.complex64)
    assert torch.allclose(spectral_filter(x, ones), x, atol=1e-6)
    assert torch.count_nonzero(spectral_filter(x, torch.zeros_like(ones))) == 0


def test_fusion_of_two_modalities_is_their_scaled_circular_convolution():
    n = 8
    a, b = torch.zeros(1, n), torch.zeros(1, n)
    a[0, 1], b[0, 2] = 1.0, 1.0  # deltas at 1 and 2: their convolution is a delta at 3
    fused = spectral_fusion([a, b], torch.ones(n // 2 + 1, dtype=torch.complex64))
    expected = torch.zeros(1, n)
    expected[0, 3] = 1 / math.sqrt(n)
    assert torch.allclose(fused, expected, atol=1e-6)


def test_the_fusion_graph_keeps_every_edge_at_its_largest_weight():
    def graph(entries):
        index = torch.tensor([[r for r, _, _ in entries], [c for _, c, _ in entries]])
        values = torch.tensor([v for _, _, v in entries])
        return torch.sparse_coo_tensor(index, values, (3, 3), check_invariants=True)

    first = graph([(0, 0, 0.5), (0, 1, 0.2), (2, 2, 1.0)])
    second = graph([(0, 1, 0.7), (1, 2, 0.3), (2, 2, 0.1)])
    fused = max_pool_graphs([first, second]).to_dense()
    expected = torch.tensor([[0.5, 0.7, 0.0], [0.0, 0.0, 0.3], [0.0, 0.0, 1.0]])
    assert torch.equal(fused, expected)
