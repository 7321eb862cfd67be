"""Model contract, for every registered model: shapes, finite loss, gradients reach every
parameter, predict == full_sort_predict, eval caching, and modality masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fast
from recbole.data.interaction import Interaction

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.model import get_model, model_names
from recbole_mmkd.model.base import MMKDRecommender, MultimodalRecommender
from recbole_mmkd.pipeline import teacher_for
from recbole_mmkd.prepare import prepare
from recbole_mmkd.teacher import STATE_FILE, TABLES_FILE, teacher_arrays

MODELS = model_names()
MULTIMODAL = [m for m in MODELS if issubclass(get_model(m), MultimodalRecommender)]


def _teacher(root, name: str) -> dict:
    """Train (once per test directory) the teacher ``name``'s YAML names; point at it."""
    small_kd = dict(rd_topk=3, rrd_top_n=5, rrd_k=2, rrd_l=3) if name.startswith("KD-") else {}
    quick = fast(teacher_config=fast(), **small_kd)
    return {**quick, **teacher_for(name, "toy", 0, root / "teachers", quick, data_path=root).keys()}


def _build(root, name, **overrides):
    if getattr(get_model(name), "needs_teacher", False):
        overrides = {**_teacher(root, name), **overrides}
    run = prepare(name, "toy", overrides=fast(**overrides), data_path=root)
    return run.model, run.train


def test_registry():
    assert {"BPR", "LightGCN", "VBPR"} <= set(MODELS)
    assert get_model("recbole.LightGCN").__module__.startswith("recbole.")
    with pytest.raises(ConfigError, match=r"unknown model.*name one of BM3"):
        get_model("NoSuchModel")
    with pytest.raises(ConfigError, match="did you mean 'LightGCN'"):
        get_model("LightGCNN")


@pytest.mark.parametrize("name", MODELS)
def test_model_contract(toy, name):
    model, train = _build(toy, name)
    model.train()
    batch = next(iter(train))
    loss = model.calculate_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    frozen = set(getattr(model, "frozen_parameters", ()))
    for pname, param in model.named_parameters():
        if pname in frozen:
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, pname

    model.eval()
    users = torch.tensor([1, 2, 3])
    full = model.full_sort_predict(Interaction({model.USER_ID: users}))
    assert full.shape == (3, model.n_items) and torch.isfinite(full).all()
    items = torch.tensor([4, 5, 30])
    pairs = model.predict(Interaction({model.USER_ID: users, model.ITEM_ID: items}))
    assert torch.allclose(pairs, full[torch.arange(3), items], atol=1e-4)


@pytest.mark.parametrize("name", MULTIMODAL)
def test_masked_items_ignore_their_features(toy, name):
    model, _ = _build(toy, name)
    model.eval()
    users = Interaction({model.USER_ID: torch.tensor([1, 2, 3])})
    present = torch.ones(model.n_items, dtype=torch.bool)
    present[[3, 7, 11]] = False
    for modality in model.modalities:
        model.set_item_mask(modality, present)
    torch.manual_seed(0)  # the same noise in both passes, for models that sample at eval (LGMRec)
    before = model.full_sort_predict(users).clone()
    for modality in model.modalities:  # scramble the masked items' features
        getattr(model, f"_feat_{modality}")[[3, 7, 11]] += 100.0
        model.on_mask_change()
    model.eval()
    torch.manual_seed(0)
    after = model.full_sort_predict(users)
    assert torch.allclose(before, after, atol=1e-5)
    assert not model.item_present(model.modalities[0])[[0, 3, 7, 11]].any()


def test_eval_cache_is_dropped_on_mode_change(toy):
    model, _ = _build(toy, "LightGCN")
    model.eval()
    first = model.representations()
    assert model.representations() is first  # cached during an evaluation pass
    model.train()
    with torch.no_grad():
        model.user_embedding.weight.add_(1.0)
    model.eval()
    assert not torch.equal(model.representations()[0], first[0])


def test_grcn_released_routing_equals_no_user_refinement(toy):
    released, _ = _build(toy, "GRCN")  # the YAML default
    assert released.routing == "released"
    paper, _ = _build(toy, "GRCN", routing="paper", n_routing=0)
    paper.load_state_dict(released.state_dict())
    for a, b in zip(released._modality("image"), paper._modality("image"), strict=True):
        assert torch.allclose(a, b)
    refined, _ = _build(toy, "GRCN", routing="paper")
    refined.load_state_dict(released.state_dict())
    assert not torch.allclose(refined._modality("image")[0], released._modality("image")[0])
    with pytest.raises(ValueError, match="routing"):
        _build(toy, "GRCN", routing="other")


def test_grcn_fusion_modes_are_the_concat_parts_averaged_or_the_id_part(toy):
    concat, _ = _build(toy, "GRCN")  # embedding_size == latent_embedding (64)
    concat.eval()
    parts = len(concat.modalities) + 1
    with torch.no_grad():
        users, items = concat()
        for mode, expect in (
            ("mean", lambda x: sum(x.chunk(parts, dim=1)) / parts),
            ("id", lambda x: x.chunk(parts, dim=1)[0]),
        ):
            fused, _ = _build(toy, "GRCN", fusion_mode=mode)
            fused.load_state_dict(concat.state_dict())
            fused.eval()
            got_users, got_items = fused()
            assert torch.allclose(got_users, expect(users), atol=1e-6)
            assert torch.allclose(got_items, expect(items), atol=1e-6)
    with pytest.raises(ConfigError, match=r"fusion_mode.*latent_embedding"):
        _build(toy, "GRCN", fusion_mode="mean", latent_embedding=32)


def test_grcn_has_act_puts_leaky_relu_on_the_neighbour_sums(toy):
    plain, _ = _build(toy, "GRCN")
    act, _ = _build(toy, "GRCN", has_act=True)
    act.load_state_dict(plain.state_dict())
    with torch.no_grad():
        users, items, *_ = plain._modality("image")
        users_act, items_act, *_ = act._modality("image")
        preference = F.normalize(plain.preference["image"], dim=1)
        features = plain.projection["image"](plain.modal_feature("image"))
        features = F.normalize(F.leaky_relu(features), dim=1)
        for got, own, plain_sum in ((users_act, preference, users), (items_act, features, items)):
            assert torch.allclose(got - own, F.leaky_relu(plain_sum - own), atol=1e-6)
        assert not torch.allclose(users_act, users)


def test_grcn_has_norm_false_leaves_the_inputs_unnormalised(toy):
    normed, _ = _build(toy, "GRCN")
    raw, _ = _build(toy, "GRCN", has_norm=False)
    raw.load_state_dict(normed.state_dict())
    with torch.no_grad():
        before = [model._modality("image")[0] for model in (normed, raw)]
        for model in (normed, raw):
            model.preference["image"].mul_(3.0)
        after = [model._modality("image")[0] for model in (normed, raw)]
    assert torch.allclose(before[0], after[0], atol=1e-6)  # normalised: blind to the scale
    assert not torch.allclose(before[1], after[1])


@pytest.mark.parametrize("fusion_mode", ["concat", "mean", "id"])
def test_grcn_scores_its_training_pairs_by_the_parts_as_by_the_fused_tables(toy, fusion_mode):
    model, train = _build(toy, "GRCN", fusion_mode=fusion_mode)
    batch = next(iter(train))
    torch.manual_seed(0)
    loss = model.calculate_loss(batch)
    torch.manual_seed(0)
    fused, *_ = model.bpr_batch(batch)  # BPR on the concatenated (or fused) tables
    assert torch.allclose(loss - model.reg_weight * model.regularizer(batch), fused, atol=1e-6)


def test_grcn_edge_dropout_equals_the_graph_without_the_dropped_edges(toy):
    dropping, _ = _build(toy, "GRCN", edge_dropout=0.3, pruning=False)
    torch.manual_seed(7)
    kept = ~(torch.rand(dropping.edge_user.shape) < 0.3)  # the draw forward() makes
    subgraph, _ = _build(toy, "GRCN", pruning=False)
    subgraph.load_state_dict(dropping.state_dict())
    subgraph.edge_user = subgraph.edge_user[kept]
    subgraph.edge_item = subgraph.edge_item[kept]
    dropping.train()
    subgraph.train()
    torch.manual_seed(7)
    with torch.no_grad():
        for a, b in zip(dropping(), subgraph(), strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        dropping.eval()  # nothing is dropped at evaluation
        full, _ = _build(toy, "GRCN", pruning=False)
        full.load_state_dict(dropping.state_dict())
        full.eval()
        for a, b in zip(dropping(), full(), strict=True):
            assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="edge_dropout"):
        _build(toy, "GRCN", edge_dropout=1.0)


# Every project model that needs no teacher can be one (BPR's and SGFDTeacher's forward return
# a parameter itself, which teacher_arrays detaches).
# MAML scores by an attention-weighted distance, not by the dot product of its tables.
TEACHERS = [m for m in MODELS if issubclass(get_model(m), MMKDRecommender)
            and not get_model(m).needs_teacher
            and getattr(get_model(m), "dot_product_scores", True)]  # fmt: skip


@pytest.mark.parametrize("name", TEACHERS)
def test_every_project_model_leaves_tables_a_student_can_read(toy, name):
    """The cached-table contract: what a teacher run stores scores as the model does, and its
    stored state rebuilds the same tables in a fresh model."""
    model, _ = _build(toy, name)
    torch.manual_seed(0)
    arrays = teacher_arrays(model)
    users, items = (torch.from_numpy(arrays[TABLES_FILE][k]) for k in ("user", "item"))
    torch.manual_seed(0)
    model.eval()
    scores = model.full_sort_predict(Interaction({model.USER_ID: torch.arange(model.n_users)}))
    torch.testing.assert_close(users @ items.T, scores, atol=1e-4, rtol=1e-4)
    fresh, _ = _build(toy, name)
    state = {k: torch.from_numpy(v) for k, v in arrays[STATE_FILE].items()}
    fresh.load_state_dict(state)
    torch.manual_seed(0)
    rebuilt = teacher_arrays(fresh)[TABLES_FILE]
    np.testing.assert_allclose(rebuilt["item"], arrays[TABLES_FILE]["item"], atol=1e-5)


@pytest.fixture
def one_thread():
    """One torch thread, as every trial of a search trains (``cpus_per_trial: 1``): with two,
    CFDTBD's, PromptMM's and SGFD-MAML's training differed in the last bits between two runs
    of the same settings in one process (not located; at one thread they are identical)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", MODELS)
def test_training_resumed_from_a_snapshot_goes_on_exactly(toy, name, one_thread):
    """A run of 2 epochs that leaves a snapshot, resumed under a config of 3 epochs in a fresh
    build (as successive halving's next round does), trains exactly as a 3-epoch run: the same
    curve and the same final parameters. A model that kept state across epochs outside its
    state dict, or drew from a random stream the snapshot misses, would fail here."""
    from recbole_mmkd.trainer import MMKDTrainer

    extra = _teacher(toy, name) if getattr(get_model(name), "needs_teacher", False) else {}
    extra.pop("epochs", None)

    def build(epochs: int):
        run = prepare(name, "toy", overrides=fast(epochs=epochs, **extra), data_path=toy)
        return run, MMKDTrainer(run.config, run.model)

    whole_run, trainer = build(3)
    whole = trainer.fit(whole_run.train, whole_run.valid)
    run, trainer = build(2)
    trainer.fit(run.train, run.valid, snapshot=True)
    snapshot = trainer.last_snapshot
    assert snapshot is not None and snapshot.epoch == 2
    resumed_run, resumed = build(3)
    again = resumed.fit(resumed_run.train, resumed_run.valid, resume=snapshot)
    assert again.curve == whole.curve and again.best_epoch == whole.best_epoch
    state = resumed_run.model.state_dict()
    for key, value in whole_run.model.state_dict().items():
        assert torch.equal(value, state[key]), key
