"""Trainer: validation-only model selection, best state in memory, per-user test metrics."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field, replace
from functools import partial
from numbers import Real
from time import perf_counter
from typing import Any

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.evaluator import Collector, Evaluator
from recbole.trainer import Trainer
from recbole.trainer.trainer import AbstractTrainer
from recbole.utils import calculate_valid_score, early_stopping

from recbole_mmkd.errors import ConfigError
from recbole_mmkd.metrics import per_user_topk
from recbole_mmkd.progress import EpochProgress

logger = logging.getLogger(__name__)
CHECKPOINT_SECONDS = 600.0  # how often fit_checkpointed leaves a run's training state


class TopkCollector(Collector):
    """RecBole's Collector with a faster ``rec.topk`` for full-sort evaluation.

    RecBole scatters the positives into a dense ``users x items`` int matrix, gathers the top-k
    columns and sums every row for the positive count. Here the top-k (user, item) keys are
    looked up among the positive keys and the positives are counted per user; the resulting
    ``rec.topk`` matrix is identical. Other data (``rec.items``, ``rec.score``, ...) fall back
    to RecBole's implementation.
    """

    _OTHER = ("rec.items", "rec.meanrank", "rec.score", "data.label")

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i) -> None:
        if any(self.register.need(key) for key in self._OTHER):
            super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
            return
        n_users, n_items = scores_tensor.shape
        _, topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1)
        device = scores_tensor.device
        positive_u, positive_i = positive_u.to(device), positive_i.to(device)
        rows = torch.arange(n_users, device=device).unsqueeze(1)
        hits = torch.isin(rows * n_items + topk_idx, positive_u * n_items + positive_i)
        pos_len = torch.bincount(positive_u, minlength=n_users).unsqueeze(1)
        self.data_struct.update_tensor("rec.topk", torch.cat([hits.long(), pos_len], dim=1))


def lr_factor(epoch: int, *, gamma: float, step: float) -> float:
    """MMRec's learning-rate factor after ``epoch`` training epochs: ``gamma ** (epoch / step)``."""
    return gamma ** (epoch / step)


def lr_schedule(value: Any) -> tuple[float, float] | None:
    """``learning_rate_scheduler`` checked: None (no schedule) or ``(gamma, step)``, two positive
    numbers; anything else is a :class:`~recbole_mmkd.errors.ConfigError`."""
    if value is None:
        return None
    numbers = isinstance(value, list | tuple) and len(value) == 2
    numbers = numbers and all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
    if not numbers or min(value) <= 0:
        raise ConfigError(
            "config",
            "learning_rate_scheduler",
            f"{value!r} is not a list of two positive numbers",
            "give [gamma, step] (lr * gamma ** (epoch / step)), e.g. [0.96, 50], or ~ for none",
        )
    return float(value[0]), float(value[1])


@dataclass
class FitResult:
    best_epoch: int
    best_valid: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0
    train_seconds: float = 0.0
    valid_seconds: float = 0.0


@dataclass
class Snapshot:
    """A run's training as it stands after ``epoch`` epochs, everything the next epochs read:
    the model's and the optimiser's (and learning-rate schedule's) states, the early-stopping
    state with the best state so far, the result so far, and every random stream a training
    epoch draws from (torch's, CUDA's, numpy's, Python's, the training loader's shuffle
    generator). Training resumed from it goes on exactly as the run would have
    (:meth:`MMKDTrainer.fit` ``resume``), where the model keeps no other state across epochs
    and reads no schedule of the run's length: the contract test checks every registered model
    (at one thread, as search trials train: at two, CFDTBD's, PromptMM's and SGFD-MAML's
    training differs in the last bits between two runs from the start too). A model class of
    a user's that fails it says ``resumable = False``, which :meth:`MMKDTrainer.fit` refuses to
    resume; searches and runs then train it in one go."""

    epoch: int
    best_score: float
    bad_steps: int
    result: FitResult
    best_state: dict[str, torch.Tensor] | None
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any] | None
    random: dict[str, Any]


def random_state(train_data: Any) -> dict[str, Any]:
    """Every random stream a training epoch draws from, as it is now."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "loader": train_data.generator.get_state()}  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any], train_data: Any) -> None:
    """Put back what :func:`random_state` took."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    train_data.generator.set_state(state["loader"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class Evaluation:
    means: dict[str, float]
    per_user: dict[str, np.ndarray]
    user_ids: np.ndarray  # RecBole internal ids, one per evaluated user, aligned with per_user
    seconds: float


class MMKDTrainer(Trainer):
    """RecBole Trainer without disk checkpoints, TensorBoard or test-set selection.

    - Early stopping and best-epoch choice use only ``valid_metric`` on the validation split.
    - The best state dict is kept in memory: no ``torch.load`` of pickled configs (which fails
      under torch >= 2.6) and no checkpoint files for parallel runs to overwrite.
    - :meth:`evaluate_full` returns the means and the per-user metric vectors.
    - Nothing is written to the working directory (RecBole's Trainer creates ``saved/`` and
      ``log_tensorboard/`` there).
    - ``learning_rate_scheduler: [gamma, step]`` multiplies the learning rate by
      ``gamma ** (epoch / step)`` after ``epoch`` training epochs (a ``LambdaLR`` stepped after
      each one, as MMRec's trainer); ``~`` (the default) keeps it constant.
    """

    def __init__(self, config, model) -> None:
        AbstractTrainer.__init__(self, config, model)
        self.logger = logging.getLogger()
        self.learner = config["learner"]
        self.learning_rate = config["learning_rate"]
        self.weight_decay = config["weight_decay"]
        self.epochs = config["epochs"]
        self.eval_step = min(config["eval_step"], self.epochs)
        self.stopping_step = config["stopping_step"]
        self.clip_grad_norm = config["clip_grad_norm"]
        self.valid_metric = config["valid_metric"].lower()
        self.valid_metric_bigger = config["valid_metric_bigger"]
        self.test_batch_size = config["eval_batch_size"]
        self.device = config["device"]
        self.gpu_available = self.device.type == "cuda"
        self.enable_amp = config["enable_amp"]
        self.enable_scaler = self.gpu_available and config["enable_scaler"]
        self.optimizer = self._build_optimizer()
        schedule = lr_schedule(config["learning_rate_scheduler"])
        self.lr_scheduler = (
            None
            if schedule is None
            else torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, partial(lr_factor, gamma=schedule[0], step=schedule[1])
            )
        )
        self.eval_collector = TopkCollector(config)
        self.evaluator = Evaluator(config)
        self.item_tensor = None
        self.tot_item_num = None
        self.best_state: dict[str, torch.Tensor] | None = None
        # Batches of each evaluation loader, built once: RecBole re-collates them every pass.
        self._eval_batches: list[tuple[FullSortEvalDataLoader, list]] = []

    def _save_checkpoint(self, epoch: int, verbose: bool = True, **kwargs) -> None:
        self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def fit(  # type: ignore[override]
        self,
        train_data,
        valid_data,
        *,
        callback: Callable[[int, float, dict], None] | None = None,
        progress: EpochProgress | None = None,
        stop_after: int | None = None,
        resume: Snapshot | None = None,
        snapshot: bool = False,
    ) -> FitResult:
        """Train until ``epochs`` or early stop; the model ends holding its best-validation state.

        ``callback(epoch, valid_score, valid_result)`` runs after every validation;
        ``progress`` is told each validation; ``stop_after`` ends training after that many
        epochs (a fingerprint replay), with the run's own settings otherwise unchanged.
        ``resume`` goes on from a :class:`Snapshot` of a run of the same settings (its epochs
        may have been fewer) instead of starting; with ``snapshot``, a run that trains its last
        epoch without stopping early leaves its :class:`Snapshot` in :attr:`last_snapshot`.
        """
        self.eval_collector.data_collect(train_data)
        best_score = -np.inf if self.valid_metric_bigger else np.inf
        bad_steps, first = 0, 0
        result = FitResult(best_epoch=-1, best_valid={})
        if resume is not None:
            if not getattr(self.model, "resumable", True):
                raise ValueError(f"{type(self.model).__name__} cannot resume from a Snapshot")
            first, best_score, bad_steps = resume.epoch, resume.best_score, resume.bad_steps
            result = replace(resume.result, curve=list(resume.result.curve))
            self._restore(resume, train_data)
        self.last_snapshot: Snapshot | None = None
        epochs = self.epochs if stop_after is None else min(self.epochs, stop_after)
        stop = False
        for epoch in range(first, epochs):
            start = perf_counter()
            if hasattr(self.model, "on_epoch_start"):  # RecBole's own models lack the hook
                self.model.on_epoch_start(epoch)
            losses = self._train_epoch(train_data, epoch)
            if self.lr_scheduler is not None:
                self.lr_scheduler.step()
            result.train_seconds += perf_counter() - start
            result.epochs_run = epoch + 1
            loss = float(sum(losses)) if isinstance(losses, tuple) else float(losses)
            if (epoch + 1) % self.eval_step:
                continue
            start = perf_counter()
            valid_result = self.evaluate(valid_data)
            result.valid_seconds += perf_counter() - start
            score = calculate_valid_score(valid_result, self.valid_metric)
            best_score, bad_steps, stop, improved = early_stopping(
                score, best_score, bad_steps, self.stopping_step, self.valid_metric_bigger
            )
            result.curve.append({"epoch": epoch, "loss": loss, **valid_result})
            if improved:
                self._save_checkpoint(epoch)
                result.best_epoch, result.best_valid = epoch, dict(valid_result)
            self.logger.info(
                "epoch %d loss %.4f valid %s %.5f%s",
                epoch,
                loss,
                self.valid_metric,
                score,
                " *" if improved else "",
            )
            if callback is not None:
                callback(epoch, score, valid_result)
            if progress is not None:
                last = stop or epoch + 1 >= self.epochs  # a stretch's end is not the run's
                progress.update(epoch, loss, score, best_score, bad_steps, last=last)
            if stop:
                break
        if snapshot and not stop:
            self.last_snapshot = self._snapshot(epochs, best_score, bad_steps, result, train_data)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return result

    def fit_checkpointed(
        self,
        train_data,
        valid_data,
        *,
        save: Callable[[Snapshot], None],
        resume: Snapshot | None = None,
        callback: Callable[[int, float, dict], None] | None = None,
        progress: EpochProgress | None = None,
        every_seconds: float | None = None,
    ) -> FitResult:
        """:meth:`fit` from ``resume``, its state passed to ``save`` about every
        ``every_seconds`` (default :data:`CHECKPOINT_SECONDS`): trained in stretches of about a
        quarter of the time to the next save, each timed by the last (the first is
        ``eval_step`` epochs), the same training as one fit (a Snapshot resumes exactly), so
        that a process killed mid-run loses about ``every_seconds`` at most.
        :attr:`last_snapshot` is set as one fit with ``snapshot`` sets it."""
        every = CHECKPOINT_SECONDS if every_seconds is None else every_seconds
        state, seconds_per_epoch, saved = resume, None, perf_counter()
        while True:
            first = 0 if state is None else state.epoch
            if seconds_per_epoch is None:
                stretch = self.eval_step
            else:
                # a quarter of the time left at the last stretch's pace: a pace that slows
                # (another process on the cores) delays a save by a quarter, not twofold
                left = every - (perf_counter() - saved)
                stretch = max(1, int(max(left, every / 4) / 4 / seconds_per_epoch))
            began = perf_counter()
            fit = self.fit(train_data, valid_data, callback=callback, progress=progress,
                           resume=state, snapshot=True, stop_after=first + stretch)  # fmt: skip
            state = self.last_snapshot
            if state is None or state.epoch >= self.epochs:  # stopped early, or trained out
                return fit
            seconds_per_epoch = (perf_counter() - began) / (state.epoch - first)
            if perf_counter() - saved >= every:
                save(state)
                saved = perf_counter()

    def _snapshot(
        self, epoch: int, best_score: float, bad_steps: int, result: FitResult, train_data
    ) -> Snapshot:
        def copy(state: dict) -> dict:
            return {k: v.detach().clone() for k, v in state.items()}

        return Snapshot(
            epoch=epoch,
            best_score=best_score,
            bad_steps=bad_steps,
            result=replace(result, curve=list(result.curve)),
            best_state=None if self.best_state is None else copy(self.best_state),
            model=copy(self.model.state_dict()),
            optimizer=deepcopy(self.optimizer.state_dict()),
            lr_scheduler=None if self.lr_scheduler is None else self.lr_scheduler.state_dict(),
            random=random_state(train_data),
        )

    def _restore(self, snapshot: Snapshot, train_data) -> None:
        self.model.load_state_dict(snapshot.model)
        self.optimizer.load_state_dict(snapshot.optimizer)
        if self.lr_scheduler is not None:
            self.lr_scheduler.load_state_dict(snapshot.lr_scheduler)
        self.best_state = snapshot.best_state
        set_random_state(snapshot.random, train_data)

    def _batches(self, eval_data: FullSortEvalDataLoader) -> list:
        for loader, batches in self._eval_batches:
            if loader is eval_data:
                return batches
        batches = list(eval_data)
        self._eval_batches.append((eval_data, batches))
        return batches

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=False, model_file=None, show_progress=False):
        """Mean metrics on ``eval_data`` for the model as it is now (RecBole's signature)."""
        return self.evaluate_full(eval_data, per_user=False).means

    @torch.no_grad()
    def evaluate_full(self, eval_data, per_user: bool = True) -> Evaluation:
        """Full-sort evaluation: means (RecBole's evaluator) and, if asked, per-user vectors."""
        if not isinstance(eval_data, FullSortEvalDataLoader):
            raise TypeError("only full-sort evaluation is supported (eval_args.mode: full)")
        if max(self.config["topk"]) >= eval_data._dataset.item_num:
            raise ConfigError(
                "config",
                "topk",
                f"{self.config['topk']} needs more items than the dataset's "
                f"{eval_data._dataset.item_num - 1}",
                "lower `topk`",
            )
        start = perf_counter()
        self.model.eval()  # drops any cached representations; the first batch recomputes them
        self.tot_item_num = eval_data._dataset.item_num
        if self.item_tensor is None:
            self.item_tensor = eval_data._dataset.get_item_feature().to(self.device)
        uid_field = eval_data._dataset.uid_field
        user_ids = []
        for batched_data in self._batches(eval_data):
            interaction, scores, positive_u, positive_i = self._full_sort_batch_eval(batched_data)
            self.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
            user_ids.append(interaction[uid_field].cpu())
        self.eval_collector.model_collect(self.model)
        struct = self.eval_collector.get_data_struct()
        means = self.evaluator.evaluate(struct)
        seconds = perf_counter() - start
        per_user = per_user_topk(
            struct.get("rec.topk"), self.config["metrics"], self.config["topk"]
        )
        return Evaluation(dict(means), per_user, torch.cat(user_ids).numpy(), seconds)
