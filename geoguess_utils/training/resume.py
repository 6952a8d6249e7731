"""Exact resumption of a killed training run: step seeds, step checkpoints, plateau catch-up."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_warn

from geoguess_utils.data.sampling import base_seed
from geoguess_utils.errors import ConfigError


class StepSeed(Callback):
    """Seed torch's global generator before each training step from ``(seed, epoch, batch, rank)``.

    Random operations inside a step (dropout, drop-connect) then depend only on where
    training is, not on everything that ran before in the process, which is what makes
    a resumed run repeat the uninterrupted one. The seed is stored in checkpoints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seed: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Take the run's seed (a resumed run gets the checkpoint's instead, loaded afterwards)."""
        if self.seed is None:
            self.seed = base_seed()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Re-seed for this step."""
        seed = self.seed if self.seed is not None else base_seed()
        entropy = [int(seed) % 2**64, int(trainer.current_epoch), int(batch_idx), int(trainer.global_rank)]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]))

    def state_dict(self) -> dict[str, Any]:
        """The seed, as a plain int."""
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use the interrupted run's seed."""
        if state_dict.get("seed") is not None:
            self.seed = int(state_dict["seed"])


class StepCheckpoint(Callback):
    """Write ``last.ckpt`` every ``every_n_train_steps`` optimiser steps, also in the middle of an epoch.

    The file goes next to the run's other checkpoints (the folder of the trainer's
    ``ModelCheckpoint``), under the name that callback uses for its last checkpoint, so
    ``last.ckpt`` is always the most recent state: after an epoch it is the epoch-end
    checkpoint, between epochs the latest step.

    Args:
        every_n_train_steps: Steps between two saves; 0 saves only at epoch ends (through
            ``ModelCheckpoint(save_last=True)``).
    """

    def __init__(self, every_n_train_steps: int = 0) -> None:
        super().__init__()
        if every_n_train_steps < 0:
            raise ConfigError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = int(every_n_train_steps)
        self._last_step = -1
        self._warned = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Save when the step count is a multiple of ``every_n_train_steps``."""
        step = trainer.global_step
        n = self.every_n_train_steps
        if n <= 0 or step == 0 or step % n or step == self._last_step or trainer.sanity_checking:
            return
        if trainer.fast_dev_run:
            return
        callback = trainer.checkpoint_callback
        if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
            if not self._warned:
                rank_zero_warn("step checkpoints need a ModelCheckpoint callback (checkpointing is off); none written")
                self._warned = True
            return
        path = os.path.join(callback.dirpath, f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}")
        callback.last_model_path = path  # so the epoch-end save overwrites this file instead of adding last-v1
        trainer.save_checkpoint(path)
        self._last_step = step


class PlateauCatchUp(Callback):
    """Apply the ``ReduceLROnPlateau`` step Lightning leaves out around a resume.

    Lightning steps a plateau scheduler after each epoch, once the epoch-end checkpoint
    is written, and it skips that step at the end of an epoch it resumed in the middle.
    Either way one step goes missing and the learning-rate schedule drifts from the
    uninterrupted run's. At the start of every epoch this callback compares how many
    steps the scheduler has taken with how many epochs are done and, when one is
    missing, takes it with the monitored value of the last validation (from this process,
    or as saved in the checkpoint). In an uninterrupted run it never does anything.
    """

    def __init__(self) -> None:
        super().__init__()
        self._trainer: pl.Trainer | None = None
        self._saved: dict[str, float] = {}

    @staticmethod
    def _plateaus(trainer: pl.Trainer) -> list[Any]:
        return [
            config
            for config in trainer.lr_scheduler_configs
            if config.reduce_on_plateau and config.interval == "epoch" and config.monitor
        ]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remember the trainer, to read its metrics when a checkpoint is written."""
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        """The monitored values of the last validation, as plain floats."""
        values = dict(self._saved)
        trainer = self._trainer
        if trainer is not None:
            for config in self._plateaus(trainer):
                value = trainer.callback_metrics.get(config.monitor)
                if value is not None:
                    values[config.monitor] = float(value)
        return {"monitored": values}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the interrupted run's last monitored values."""
        self._saved = {str(k): float(v) for k, v in dict(state_dict.get("monitored", {})).items()}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take a plateau step that is due but was not taken."""
        for config in self._plateaus(trainer):
            scheduler = config.scheduler
            due = trainer.current_epoch // max(1, int(config.frequency))
            if int(getattr(scheduler, "last_epoch", due)) != due - 1:
                continue
            value = trainer.callback_metrics.get(config.monitor, self._saved.get(config.monitor))
            if value is None:
                rank_zero_warn(f"cannot make up the missed plateau step: no value of {config.monitor!r}")
                continue
            scheduler.step(float(value))
