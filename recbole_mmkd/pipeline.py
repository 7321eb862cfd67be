"""One run = (dataset, model, config, seed) -> RunResult on disk."""

from __future__ import annotations

import logging
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import recbole
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed
from recbole.utils.logger import RemoveColorFilter

import recbole_mmkd
from recbole_mmkd.config import build_config, config_hash, hashable_config
from recbole_mmkd.data import MultimodalDataset
from recbole_mmkd.model import get_model
from recbole_mmkd.model.base import MMKDRecommender, MultimodalRecommender
from recbole_mmkd.model.student.kd import STATE_FILE, TABLES_FILE
from recbole_mmkd.result import RunResult, run_dir_for
from recbole_mmkd.robustness import robustness_curve
from recbole_mmkd.trainer import MMKDTrainer

logger = logging.getLogger(__name__)


@contextmanager
def _log_to(path: Path):
    """Send everything logged during the run (RecBole logs to the root logger) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(RemoveColorFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def run_one(
    model: str,
    dataset: str,
    seed: int,
    out_root: Path,
    overrides: dict[str, Any] | None = None,
    data_path: Path | None = None,
    reuse: bool = True,
    keep_tables: bool = False,
) -> RunResult:
    """Train ``model`` on ``dataset`` with ``seed``, select on validation, test once, save.

    With ``reuse``, a RunResult already on disk for the same config hash and seed is loaded
    instead of re-trained. ``keep_tables`` also stores the best state's user and item tables
    (``representations.npz``) and parameters (``state.npz``): what a teacher leaves for its
    students. A model that ``needs_teacher`` (the KD students) first gets its teacher from
    this function, with the same dataset, seed and output root: trained once, then reused by
    every student.
    """
    if keep_tables and not issubclass(get_model(model), MMKDRecommender):
        raise TypeError(
            f"{model} cannot be a teacher: teachers must be project models whose forward() "
            f"returns user and item tables (RecBole's own models do not)"
        )
    overrides = {**(overrides or {}), "seed": seed}
    if getattr(get_model(model), "needs_teacher", False):
        overrides.update(teacher_for(model, dataset, seed, out_root, overrides, data_path, reuse))
    config = build_config(model, dataset, overrides, data_path)
    digest = config_hash(config)
    run_dir = run_dir_for(out_root, dataset, model, digest, seed)
    complete = (run_dir / "result.json").is_file()
    stored = all((run_dir / name).is_file() for name in (TABLES_FILE, STATE_FILE))
    if reuse and complete and (not keep_tables or stored):
        logger.info("reusing %s", run_dir)
        return RunResult.load(run_dir)

    log_file = Path(out_root) / "logs" / dataset / model / f"{digest}-seed-{seed}.log"
    with _log_to(log_file):
        init_seed(seed, config["reproducibility"])
        data = MultimodalDataset(config)
        train_data, valid_data, test_data = data_preparation(config, data)
        init_seed(seed, config["reproducibility"])
        net = get_model(model)(config, train_data.dataset).to(config["device"])
        trainer = MMKDTrainer(config, net)
        fit = trainer.fit(train_data, valid_data)
        test = trainer.evaluate_full(test_data)
        arrays = {TABLES_FILE: _tables(net), STATE_FILE: _state(net)} if keep_tables else None
        robustness = []
        if isinstance(net, MultimodalRecommender) and config["robustness_shares"]:
            shares = list(config["robustness_shares"])
            robustness = robustness_curve(trainer, net, test_data, shares, seed)

    result = RunResult(
        dataset=dataset,
        model=model,
        seed=seed,
        config_hash=digest,
        config=hashable_config(config),
        valid_metric=config["valid_metric"].lower(),
        best_epoch=fit.best_epoch,
        epochs_run=fit.epochs_run,
        valid_curve=fit.curve,
        best_valid=fit.best_valid,
        test=test.means,
        n_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        train_seconds=fit.train_seconds,
        valid_seconds=fit.valid_seconds,
        test_seconds=test.seconds,
        n_test_users=len(test.user_ids),
        data_summary=getattr(data, "data_summary", {}),
        environment={
            "recbole_mmkd": recbole_mmkd.__version__,
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(config["device"]),
        },
        model_info=net.run_info() if hasattr(net, "run_info") else {},
        robustness=robustness,
        test_user_ids=data.id2token(data.uid_field, test.user_ids).astype("int64"),
        test_per_user=test.per_user,
    )
    result.save(run_dir, arrays)
    logger.info(
        "%s %s seed %d: best epoch %d, test %s",
        dataset,
        model,
        seed,
        fit.best_epoch,
        ", ".join(f"{k} {v:.4f}" for k, v in test.means.items() if k.endswith("@20")),
    )
    return result


def teacher_for(
    student: str,
    dataset: str,
    seed: int,
    out_root: Path,
    overrides: dict[str, Any],
    data_path: Path | None,
    reuse: bool,
) -> dict[str, Any]:
    """Train or reuse the teacher a student's config names; the keys that point the student
    at it (``teacher_tables`` and ``teacher_state``, paths, and ``teacher_hash``, which enters
    the student's config hash)."""
    probe = build_config(student, dataset, overrides, data_path)
    teacher = probe["teacher"]
    result = run_one(
        teacher, dataset, seed, out_root, probe["teacher_config"] or {}, data_path, reuse, True
    )
    run_dir = run_dir_for(out_root, dataset, teacher, result.config_hash, seed)
    return {
        "teacher_tables": str(run_dir / TABLES_FILE),
        "teacher_state": str(run_dir / STATE_FILE),
        "teacher_hash": result.config_hash,
    }


def _tables(net: MMKDRecommender) -> dict[str, Any]:
    """The best state's user and item tables of a model used as a teacher."""
    net.eval()
    with torch.no_grad():
        users, items = net.representations()
    return {"user": users.cpu().numpy(), "item": items.cpu().numpy()}


def _state(net: MMKDRecommender) -> dict[str, Any]:
    """The best state's parameters and persistent buffers, for students that run the teacher
    (PromptMM)."""
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
