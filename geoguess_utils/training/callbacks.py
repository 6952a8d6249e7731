"""Callbacks of `geoguess fit`: what the data learns from the task, the split, the run checkpoint, epoch lines."""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import IO, Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from geoguess_utils.data import splits
from geoguess_utils.training.run_files import save_data_roots


class TaskDataLink(Callback):
    """Attach the task's cached backbone features to the data module, so neither reads the other.

    When the data module's embedding cache is on, it attaches the task's features
    (:class:`geoguess_utils.embeddings.TaskFeatures`), which the data module then serves
    while the backbone is frozen. ``geoguess fit`` adds it; add it to a hand-made
    ``Trainer`` that trains from the cache. (The views' normalisation reaches the data
    module through the task's own callback, :class:`geoguess_utils.tasks.data_link.InputNormalization`.)
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Hand the task's features to the trainer's data module when it trains from the cache."""
        from geoguess_utils.embeddings import TaskFeatures

        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is None:
            return
        settings = getattr(datamodule, "embeddings", None)
        if settings is not None and settings.enabled and hasattr(datamodule, "attach_feature_source"):
            datamodule.attach_feature_source(TaskFeatures(pl_module))


class CachedPhaseThreads(Callback):
    """One torch thread while the head trains from cached features on a CPU; the process's count otherwise.

    A step of the head alone (a small fusion and a linear layer on 32 locations) is too small
    to share among threads: they spend the step waiting for each other, and when other
    programs hold the cores they wait far longer. Epochs that read images (the backbone
    trains, or the cache is off) use the thread count the process had when training started
    (``geoguess`` sizes it from the CPUs it may use, see :mod:`geoguess_utils.threads`), and
    that count is restored when training ends. The embedding cache itself is computed before
    the epoch starts, with every thread.
    """

    def __init__(self) -> None:
        self._threads: int | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Note the process's thread count."""
        import torch

        self._threads = torch.get_num_threads()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Pick the thread count of this epoch."""
        import torch
        from pytorch_lightning.accelerators import CPUAccelerator

        if self._threads is None:
            self._threads = torch.get_num_threads()
        datamodule = getattr(trainer, "datamodule", None)
        settings = getattr(datamodule, "embeddings", None)
        cached = bool(settings is not None and settings.enabled and getattr(pl_module, "backbone_frozen", False))
        wanted = 1 if cached and isinstance(trainer.accelerator, CPUAccelerator) else self._threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Give testing and prediction the process's thread count again."""
        import torch

        if self._threads is not None and torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)


class SaveSplitCallback(Callback):
    """Write the train/val/test membership and the dataset roots next to the run's logs.

    ``<log_dir>/split.csv`` says which location went where; ``<log_dir>/data_roots.txt``
    holds the absolute path of every dataset root, one per line, so that ``predict``,
    ``map`` and ``evaluate --run`` find them from any folder.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Save the datamodule's split and roots once, from the first process."""
        datamodule = trainer.datamodule
        split = getattr(datamodule, "split", None)
        run_dir = getattr(datamodule, "run_dir", None) or trainer.log_dir
        if run_dir is None or not trainer.is_global_zero:
            return
        roots = getattr(datamodule, "roots", None)
        if roots:
            save_data_roots(roots, Path(run_dir))
        if split is not None and getattr(datamodule, "run_dir", None) is None:
            splits.save_split(split, Path(run_dir) / splits.SPLIT_FILE)


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is always the latest epoch, and whose best scores survive a resume.

    Lightning rewrites ``last.ckpt`` only at epochs that also wrote a top-k checkpoint;
    after an epoch without improvement it would still hold an older state, and a resume
    would silently redo finished epochs. This writes it after every epoch.

    Each ``geoguess fit`` writes to a new ``version_N`` folder, and Lightning forgets the
    best scores when a resumed run's checkpoint folder differs from the interrupted
    run's: any score after the resume would then count as the best. This keeps them.
    The interrupted run's files stay where they are (Lightning only ever deletes
    superseded checkpoints inside the current folder).
    """

    def _save_last_if_missed(self, trainer: pl.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save top-k as configured, then ``last.ckpt`` if that did not already."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Save top-k as configured, then ``last.ckpt`` if that did not already."""
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the best scores and paths even when the folder changed."""
        moved = state_dict.get("dirpath", self.dirpath) != self.dirpath
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)
        if moved:
            self.best_model_score = state_dict["best_model_score"]
            self.best_k_models = dict(state_dict.get("best_k_models", self.best_k_models))
            self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
            self.kth_value = state_dict.get("kth_value", self.kth_value)


class EpochLine(Callback):
    """Print one line per training epoch: epoch, train loss, validation km, seconds.

    For runs without a progress bar (logs, CI, notebooks), e.g.
    ``epoch 3/10: train loss 2.314, val mean 84.2 km, 11.6 s``. Only the first process prints.

    Args:
        stream: Where the lines go; standard error (as it is at each epoch) by default.
        loss_key: Logged training loss averaged over the epoch.
        km_key: Logged validation mean error (km).
    """

    def __init__(
        self, stream: IO[str] | None = None, loss_key: str = "train/loss_epoch", km_key: str = "val/mean_km"
    ) -> None:
        """Remember where to print and which logged values to show."""
        self.stream = stream
        self.loss_key = loss_key
        self.km_key = km_key
        self._started = 0.0
        self._validated = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the epoch's clock."""
        self._started = time.perf_counter()
        self._validated = False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Note that this epoch's validation ran (the sanity check does not count)."""
        if not trainer.sanity_checking:
            self._validated = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Print the epoch's line (validation has run by now when it runs this epoch)."""
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        print(
            self.format_line(trainer, time.perf_counter() - self._started), file=self.stream or sys.stderr, flush=True
        )

    def format_line(self, trainer: pl.Trainer, seconds: float) -> str:
        """The line for the epoch that just ended, from ``trainer.callback_metrics``."""
        metrics = trainer.callback_metrics
        total = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
        parts = [f"epoch {trainer.current_epoch + 1}" + (f"/{total}" if total else "")]
        loss = _number(metrics.get(self.loss_key))
        parts.append(f"train loss {loss:.4g}" if loss is not None else "train loss n/a")
        km = _number(metrics.get(self.km_key)) if self._validated else None
        parts.append(f"val mean {km:.1f} km" if km is not None else "no validation this epoch")
        return f"{parts[0]}: {', '.join(parts[1:])}, {seconds:.1f} s"


def _number(value: Any) -> float | None:
    """A logged scalar (tensor or number) as a finite float, else ``None``."""
    if value is None:
        return None
    try:
        number = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError, RuntimeError):
        return None
    return number if math.isfinite(number) else None
