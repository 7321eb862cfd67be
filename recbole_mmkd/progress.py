"""Progress a person can follow: a live line while a run trains, and where a benchmark is.

On a terminal, :class:`EpochProgress` rewrites one line on stderr after every validation
(epoch, loss, last and best validation metric, patience left, elapsed time); elsewhere (a log
file, CI) it logs that line every ``every`` epochs and at the last one.
:class:`BenchmarkProgress` says which run of how many is next and estimates what is left from
the runs trained so far.
"""

from __future__ import annotations

import logging
import sys
from time import perf_counter
from typing import TextIO

logger = logging.getLogger(__name__)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochProgress:
    """One run's training progress (``every`` <= 0: silent)."""

    def __init__(
        self,
        title: str,
        *,
        epochs: int,
        patience: int,
        metric: str,
        every: int = 10,
        stream: TextIO | None = None,
    ) -> None:
        self.title, self.epochs, self.patience, self.metric = title, epochs, patience, metric
        self.every = every
        self.stream = stream or sys.stderr
        self.live = every > 0 and self.stream.isatty()
        self.start = perf_counter()

    def line(self, epoch: int, loss: float, score: float, best: float, bad_steps: int) -> str:
        left = max(self.patience - bad_steps, 0)  # RecBole counts one past the patience
        return (
            f"{self.title}: epoch {epoch + 1}/{self.epochs} loss {loss:.4f} "
            f"{self.metric} {score:.4f} (best {best:.4f}) patience {left}/{self.patience} "
            f"{_clock(perf_counter() - self.start)}"
        )

    def update(
        self, epoch: int, loss: float, score: float, best: float, bad_steps: int, *, last: bool
    ) -> None:
        if self.every <= 0:
            return
        text = self.line(epoch, loss, score, best, bad_steps)
        if self.live:
            self.stream.write(f"\r\033[K{text}" + ("\n" if last else ""))
            self.stream.flush()
        elif last or (epoch + 1) % self.every == 0:
            logger.info(text)


class BenchmarkProgress:
    """Which run of a benchmark is next, and an estimate of the time left."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.trained, self.train_seconds = total, 0, 0, 0.0

    def begin(self, label: str, *, stored: bool) -> None:
        left = self.total - self.done
        estimate = ""
        if self.trained and not stored:
            estimate = f", about {_clock(self.train_seconds / self.trained * left)} left"
        state = " (stored, reused)" if stored else estimate and f" ({estimate[2:]})"
        logger.info("[%d/%d] %s%s", self.done + 1, self.total, label, state)
        self._start = perf_counter()

    def end(self, *, trained: bool) -> None:
        self.done += 1
        if trained:
            self.trained += 1
            self.train_seconds += perf_counter() - self._start
