"""Callbacks of ``geoguess fit``: the saved split and the run checkpoint."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from geoguess_utils.data import splits


class SaveSplitCallback(Callback):
    """Write the train/val/test membership next to the run's logs (``<log_dir>/split.csv``)."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Save the datamodule's split once, from the first process."""
        datamodule = trainer.datamodule
        split = getattr(datamodule, "split", None)
        log_dir = trainer.log_dir
        if split is None or log_dir is None or getattr(datamodule, "run_dir", None) is not None:
            return
        if trainer.is_global_zero:
            splits.save_split(split, Path(log_dir) / splits.SPLIT_FILE)


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
