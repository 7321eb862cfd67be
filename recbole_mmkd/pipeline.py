"""One run = (dataset, model, config, seed) -> RunResult on disk."""

from __future__ import annotations

import logging
import os
import pickle
import platform
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import recbole
import torch
from recbole.utils.logger import RemoveColorFilter
from torch import nn

from recbole_mmkd.config import MMKDConfig, hashable_config
from recbole_mmkd.identity import code_info, config_hash
from recbole_mmkd.model import get_model
from recbole_mmkd.model.base import MultimodalRecommender
from recbole_mmkd.prepare import Prepared, config_for, prepare
from recbole_mmkd.progress import EpochProgress
from recbole_mmkd.result import ResultError, RunResult, run_dir_for
from recbole_mmkd.robustness import robustness_curve
from recbole_mmkd.teacher import TeacherRef, check_teacher, teacher_arrays
from recbole_mmkd.trainer import FitResult, MMKDTrainer, Snapshot

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


def run_config(
    model: str,
    dataset: str,
    seed: int,
    out_root: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    data_path: Path | None = None,
    properties: Any = None,
    reuse: bool = True,
    source: str = "overrides",
) -> MMKDConfig:
    """The checked config of a run, its teacher trained (or reused) first where it has one."""
    overrides = {**(overrides or {}), "seed": seed}
    if getattr(get_model(model, source=source), "needs_teacher", False):
        ref = teacher_for(
            model,
            dataset,
            seed,
            out_root,
            overrides,
            data_path=data_path,
            properties=properties,
            reuse=reuse,
            source=source,
        )
        overrides.update(ref.keys())
    return config_for(
        model,
        dataset,
        overrides=overrides,
        data_path=data_path,
        properties=properties,
        source=source,
    )


def stored_run(run_dir: Path, *, need_arrays: bool = False) -> RunResult | None:
    """The RunResult in ``run_dir`` when it is whole (and, with ``need_arrays``, has its
    teacher artefacts); None otherwise, an unreadable one named in a warning."""
    if not (run_dir / "result.json").is_file():
        return None
    try:
        result = RunResult.load(run_dir)
    except ResultError as err:
        logger.warning("re-running: %s", err)
        return None
    if need_arrays and not TeacherRef(result.model, result.config_hash, run_dir).stored():
        return None
    return result


TRAINED_FILE = "trained.pt"  # in a run's folder: a search trial's model of its settings
CHECKPOINT_FILE = "checkpoint.pt"  # in a run's folder while it trains: its latest state


@dataclass
class Checkpoint:
    """A training state left on disk and where it was made (:func:`resume_key`): it goes on
    exactly only on the same kind of device with the same CPU threads."""

    snapshot: Snapshot
    where: dict[str, Any]


def resume_key(config: Any) -> dict[str, Any]:
    """What a :class:`Checkpoint` must share with the process that reads it."""
    return {"device": torch.device(config["device"]).type, "threads": torch.get_num_threads()}


def write_snapshot(path: Path, state: Snapshot, where: dict[str, Any]) -> None:
    """Leave ``state`` at ``path`` as a :class:`Checkpoint` made ``where``, written aside (a
    name of this process's) and then renamed, so a process killed mid-write leaves the
    previous one whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    torch.save(Checkpoint(state, where), partial)
    partial.replace(path)


def read_snapshot(path: Path, where: dict[str, Any]) -> Snapshot | None:
    """The state a :class:`Checkpoint` at ``path`` holds, or None where there is none, it
    cannot be read (a damaged file), or it was made elsewhere than ``where``: the training
    then starts again, with a warning."""
    if not path.is_file():
        return None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (EOFError, RuntimeError, pickle.UnpicklingError) as err:
        logger.warning("training from the start: %s cannot be read (%s)", path, err)
        return None
    if not isinstance(checkpoint, Checkpoint):
        logger.warning("training from the start: %s holds no checkpoint of this version", path)
        return None
    if checkpoint.where != where:
        logger.warning("training from the start: %s was made on %s, not %s", path,
                       checkpoint.where, where)  # fmt: skip
        return None
    return checkpoint.snapshot


def train(trainer: MMKDTrainer, run: Prepared, checkpoint: Path, **fit: Any) -> FitResult:
    """Train ``run`` to its early stop, leaving its state at ``checkpoint`` about every ten
    minutes (:meth:`~recbole_mmkd.trainer.MMKDTrainer.fit_checkpointed`) and going on from
    the state found there: a run killed mid-training (a session's end) goes on where it was,
    exactly as it would have trained. A model that cannot resume exactly (``resumable =
    False``) trains in one go."""
    if not getattr(run.model, "resumable", True):
        return trainer.fit(run.train, run.valid, **fit)
    where = resume_key(run.config)
    resume = read_snapshot(checkpoint, where)
    if resume is not None:
        logger.info("going on from epoch %d (%s)", resume.epoch, checkpoint)

    def save(state: Snapshot) -> None:
        write_snapshot(checkpoint, state, where)

    return trainer.fit_checkpointed(run.train, run.valid, resume=resume, save=save, **fit)


@dataclass
class Trained:
    """A model a search trial trained with a run's settings and seed, left for that run."""

    config_hash: str
    fit: FitResult
    state: dict[str, torch.Tensor]
    by: str


def leave_trained(
    out_root: Path, name: str, config: Any, model: nn.Module, fit: FitResult, *, by: str
) -> Path:
    """Leave a search trial's trained ``model`` (at its best validation state) and ``fit`` in
    the folder of the run of model ``name`` with the same settings and seed under ``out_root``:
    a benchmark's seed run at a search's chosen point and seed then adopts it
    (:func:`run_one`) instead of training the same model again; it evaluates the test split
    once, as a run that trained would. A trial is deterministic on CPU, so the adopted model
    is the one the run would train (on another device, the one that device trained)."""
    digest = config_hash(config)
    run_dir = run_dir_for(out_root, config["dataset"], name, digest, config["seed"])
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return write_trained(run_dir, Trained(digest, fit, state, by))


def write_trained(run_dir: Path, trained: Trained) -> Path:
    """Leave ``trained`` in ``run_dir``, written aside (a name of this process's) and then
    renamed, so that a process killed mid-write leaves no half-written model."""
    run_dir.mkdir(parents=True, exist_ok=True)
    partial = run_dir / f"{TRAINED_FILE}.{os.getpid()}.partial"
    torch.save(trained, partial)
    return partial.replace(run_dir / TRAINED_FILE)


def adopted(run_dir: Path, digest: str) -> Trained | None:
    """The :class:`Trained` a search trial left in ``run_dir`` for settings of ``digest``."""
    path = run_dir / TRAINED_FILE
    if not path.is_file():
        return None
    trained = torch.load(path, map_location="cpu", weights_only=False)
    return trained if trained.config_hash == digest else None


def run_one(
    model: str,
    dataset: str,
    seed: int,
    out_root: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    data_path: Path | None = None,
    properties: Any = None,
    reuse: bool = True,
    keep_tables: bool = False,
    source: str = "overrides",
    progress_title: str | None = None,
) -> RunResult:
    """Train ``model`` on ``dataset`` with ``seed``, select on validation, test once, save.

    With ``reuse``, a RunResult already on disk for the same config hash and seed is loaded
    instead of re-trained (an unreadable one is re-trained). ``keep_tables`` also stores the
    teacher artefacts (:mod:`recbole_mmkd.teacher`). A model that ``needs_teacher`` (the KD
    students) first gets its teacher from this function, with the same dataset, seed and
    output root: trained once, then reused by every student.
    """
    model_class = get_model(model, source=source)
    if keep_tables:
        check_teacher(model_class, model)
    config = run_config(
        model,
        dataset,
        seed,
        out_root,
        overrides=overrides,
        data_path=data_path,
        properties=properties,
        reuse=reuse,
        source=source,
    )
    digest = config_hash(config, model_class)
    run_dir = run_dir_for(out_root, dataset, model, digest, seed)
    stored = stored_run(run_dir, need_arrays=keep_tables) if reuse else None
    if stored is not None:
        logger.info("reusing %s", run_dir)
        return stored

    log_file = Path(out_root) / "logs" / dataset / model / f"{digest}-seed-{seed}.log"
    with _log_to(log_file):
        run = prepare(model, dataset, seed=seed, config=config, source=source)
        net, trainer = run.model, MMKDTrainer(config, run.model)
        progress = EpochProgress(
            progress_title or f"{dataset} / {model} / seed {seed}",
            epochs=config["epochs"],
            patience=config["stopping_step"],
            metric=config["valid_metric"],
            every=config["progress_every"],
        )
        trained = adopted(run_dir, digest)
        if trained is None:
            fit = train(trainer, run, run_dir / CHECKPOINT_FILE, progress=progress)
        else:
            logger.info("adopting the model %s trained", trained.by)
            net.load_state_dict(trained.state)
            fit = trained.fit
        test = trainer.evaluate_full(run.test)
        serving = serving_sizes(net)
        arrays = teacher_arrays(net) if keep_tables else None
        robustness = []
        if isinstance(net, MultimodalRecommender) and config["robustness_shares"]:
            shares = list(config["robustness_shares"])
            robustness = robustness_curve(trainer, net, run.test, shares, seed)

    data = run.dataset
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
        n_params=inference_params(net),
        serving=serving,
        train_seconds=fit.train_seconds,
        valid_seconds=fit.valid_seconds,
        test_seconds=test.seconds,
        n_test_users=len(test.user_ids),
        data_summary=getattr(data, "data_summary", {}),
        environment=environment(config),
        model_info=net.run_info() if hasattr(net, "run_info") else {},
        robustness=robustness,
        code=code_info(config, model_class),
        test_user_ids=data.id2token(data.uid_field, test.user_ids).astype("int64"),
        test_per_user=test.per_user,
        trained_by="" if trained is None else trained.by,
    )
    result.save(run_dir, arrays=arrays)
    (run_dir / TRAINED_FILE).unlink(missing_ok=True)
    for left in [run_dir / CHECKPOINT_FILE, *run_dir.glob(f"{CHECKPOINT_FILE}.*.partial")]:
        left.unlink(missing_ok=True)
    logger.info(
        "%s %s seed %d: best epoch %d, test %s",
        dataset,
        model,
        seed,
        fit.best_epoch,
        ", ".join(f"{k} {v:.4f}" for k, v in test.means.items() if k.endswith("@20")),
    )
    return result


def inference_params(net: nn.Module) -> int:
    """Trainable parameters of ``net`` that inference holds: all but those of its
    ``training_only`` submodules (SGFD's teacher tower and classifiers)."""
    only_training = [net.get_submodule(name) for name in getattr(net, "training_only", ())]
    skip = {id(p) for module in only_training for p in module.parameters()}
    return sum(p.numel() for p in net.parameters() if p.requires_grad and id(p) not in skip)


def serving_sizes(net: nn.Module) -> dict[str, int]:
    """Bytes that serving ``net`` holds, measured on its tensors: ``model``, its parameters
    and buffers but those of its ``training_only`` submodules and the transposes only its
    backward passes read (``backward_only_buffers``:
    :func:`~recbole_mmkd.model.transposed.register_with_transpose`), that is features, graphs,
    layers: what recomputing its tables needs; and ``tables``, the user and item tables it
    scores with (all a dot-product model needs once they are computed; none for RecBole's own
    models)."""
    only_training = [net.get_submodule(name) for name in getattr(net, "training_only", ())]
    skip = {id(t) for m in only_training for t in (*m.parameters(), *m.buffers())}
    skip |= {id(getattr(m, name)) for m in net.modules()
             for name in getattr(m, "backward_only_buffers", ())}  # fmt: skip
    held = [t for t in (*net.parameters(), *net.buffers()) if id(t) not in skip]
    sizes = {"model": sum(map(tensor_bytes, held))}
    if not hasattr(net, "representations"):  # RecBole's own models give no tables
        return sizes
    was_training = net.training
    net.eval()
    with torch.no_grad():
        users, items = net.representations()
    net.train(was_training)
    return {**sizes, "tables": users.nbytes + items.nbytes}


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds, a sparse one's indices and values included."""
    if tensor.layout == torch.sparse_coo:
        parts = [tensor._indices(), tensor._values()]
    elif tensor.layout == torch.sparse_csr:
        parts = [tensor.crow_indices(), tensor.col_indices(), tensor.values()]
    else:
        parts = [tensor]
    return sum(p.numel() * p.element_size() for p in parts)


def environment(config: MMKDConfig) -> dict[str, Any]:
    """Where a run executed: versions, device, the processor and the CPU threads (float sums
    depend on both: a fingerprint replay uses the same threads, and one on another processor
    may differ in the last bits)."""
    import recbole_mmkd

    return {
        "recbole_mmkd": recbole_mmkd.__version__,
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(config["device"]),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
    }


def cpu_model() -> str:
    """The processor's model name (Linux; else what ``platform`` knows) and the vector
    instruction set torch's CPU kernels use on it (AVX2, AVX512, ...)."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.partition(":")[2].strip()
                break
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def teacher_for(
    student: str,
    dataset: str,
    seed: int,
    out_root: Path,
    overrides: Mapping[str, Any],
    *,
    data_path: Path | None = None,
    properties: Any = None,
    reuse: bool = True,
    source: str = "overrides",
) -> TeacherRef:
    """Train or reuse the teacher a student's config names (``teacher``, ``teacher_config``);
    the reference that points the student at it."""
    probe = config_for(
        student,
        dataset,
        overrides=overrides,
        data_path=data_path,
        properties=properties,
        source=source,
    )
    teacher = probe["teacher"]
    result = run_one(
        teacher,
        dataset,
        seed,
        out_root,
        overrides=probe["teacher_config"] or {},
        data_path=data_path,
        properties=properties,
        reuse=reuse,
        keep_tables=True,
        source=f"{source}: teacher_config",
    )
    run_dir = run_dir_for(out_root, dataset, teacher, result.config_hash, seed)
    return TeacherRef(teacher, result.config_hash, run_dir)
