"""Per-user metrics: known answers by hand, and means equal to RecBole's reported means."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ROOT, fast
from recbole.trainer import Trainer

from recbole_mmkd.metrics import per_user_topk
from recbole_mmkd.prepare import prepare
from recbole_mmkd.trainer import MMKDTrainer


def test_per_user_known_answers():
    # user A: hits at ranks 1 and 3, 2 positives; user B: no hit, 1 positive
    topk = torch.tensor([[1, 0, 1, 2], [0, 0, 0, 1]])
    out = per_user_topk(topk, ["Recall", "Precision", "Hit", "NDCG", "MRR", "MAP"], [1, 3])
    assert np.allclose(out["recall@3"], [1.0, 0.0])
    assert np.allclose(out["recall@1"], [0.5, 0.0])
    assert np.allclose(out["precision@3"], [2 / 3, 0.0])
    assert np.allclose(out["hit@1"], [1, 0])
    assert np.allclose(out["mrr@3"], [1.0, 0.0])
    idcg = 1 + 1 / np.log2(3)
    assert np.allclose(out["ndcg@3"], [(1 + 1 / np.log2(4)) / idcg, 0.0])
    assert np.allclose(out["map@3"], [(1 + 2 / 3) / 2, 0.0])


def test_non_topk_metric_rejected():
    with pytest.raises(ValueError, match="not a top-k metric"):
        per_user_topk(torch.zeros(1, 3, dtype=torch.long), ["AUC"], [2])


@pytest.mark.parametrize("model_name", ["LightGCN", "VBPR"])
def test_per_user_means_equal_recbole_means_on_tiktok(model_name, tmp_path, monkeypatch):
    """Our per-user vectors average to the means of RecBole's own, unmodified Trainer."""
    monkeypatch.chdir(tmp_path)  # RecBole's Trainer writes saved/ and log_tensorboard/ here
    metrics = ["Recall", "NDCG", "Precision", "Hit", "MAP", "MRR"]
    run = prepare(
        model_name,
        "tiktok",
        overrides=fast(epochs=1, metrics=metrics, topk=[5, 10, 20, 50]),
        data_path=ROOT / "dataset",
    )
    config, model, train, valid, test = run.config, run.model, run.train, run.valid, run.test
    trainer = MMKDTrainer(config, model)
    trainer.fit(train, valid)
    stock = Trainer(config, model)
    for loader in (valid, test):
        result = trainer.evaluate_full(loader)
        recbole_means = stock.evaluate(loader, load_best_model=False)
        assert result.means == pytest.approx(dict(recbole_means), abs=1e-9)
        assert len(result.user_ids) == len(np.unique(result.user_ids)) == len(loader.uid_list)
        assert set(result.means) == set(result.per_user) and len(result.means) == 24
        for key, mean in result.means.items():
            assert result.per_user[key].shape == result.user_ids.shape
            assert result.per_user[key].mean() == pytest.approx(mean, abs=1e-9), key
