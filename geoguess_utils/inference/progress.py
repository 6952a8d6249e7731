"""Plain progress lines for prediction where no progress bar can draw (logs, pipes, CI)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import pytorch_lightning as pl

STEPS = 10
"""Lines per pass: one each time another tenth of the locations is done (and one at the end)."""


class ProgressLines(pl.Callback):
    """Print ``<label>: 320/1,000 locations, 12.3 s`` at every tenth of a prediction pass.

    The counterpart of ``geoguess fit``'s one line per epoch, for ``Trainer.predict``:
    a first line with the number of locations, then one line each time another tenth of
    them is done, the last one at 100 %. Only the first process prints.

    Args:
        label: What the lines start with, e.g. ``"geoguess predict"``.
        stream: Where the lines go; standard error (as it is when a line is printed) by default.
        steps: How many lines a pass prints after the first (at most one per batch).
    """

    def __init__(self, label: str, stream: IO[str] | None = None, steps: int = STEPS) -> None:
        """Remember the label, the stream and how often to print."""
        self.label = label
        self.stream = stream
        self.steps = max(1, int(steps))
        self._total = 0
        self._done = 0
        self._next = 0
        self._started = 0.0

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Count the locations of every predict loader and print the first line."""
        self._total = sum(_length(loader) for loader in _loaders(trainer.predict_dataloaders))
        self._done = 0
        self._next = 1
        self._started = time.perf_counter()
        if trainer.is_global_zero:
            self._print(f"{self.label}: predicting {self._total:,} locations")

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Count the batch's locations; print a line when another tenth is done."""
        self._done += _batch_size(batch)
        if not trainer.is_global_zero or self._total <= 0:
            return
        if self._done * self.steps >= self._next * self._total:
            self._print(self.line(self._done, self._total, time.perf_counter() - self._started))
            self._next = self._done * self.steps // self._total + 1

    def line(self, done: int, total: int, seconds: float) -> str:
        """The line for ``done`` of ``total`` locations after ``seconds`` s."""
        return f"{self.label}: {done:,}/{total:,} locations, {seconds:.1f} s"

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stderr, flush=True)


def _loaders(loaders: Any) -> list[Any]:
    if loaders is None:
        return []
    if isinstance(loaders, dict):
        return list(loaders.values())
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def _length(loader: Any) -> int:
    """Locations a loader yields: its dataset's length (0 when it has none)."""
    try:
        return len(loader.dataset)
    except (AttributeError, TypeError):
        return 0


def _batch_size(batch: Any) -> int:
    """Locations in a batch: the length of its uuid list (1 when it has none)."""
    if isinstance(batch, dict) and "uuid" in batch:
        return len(batch["uuid"])
    return 1
