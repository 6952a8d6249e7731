"""Helpers of the reliability tests: a callback that halts training for an outside kill, tiny checkpoints."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.io import atomic_write_text
from geoguess_utils.tasks.base import GeoTask

TINY_BACKBONE = "shufflenet_v2_x0_5"
"""Smallest torchvision backbone the project accepts (0.34 M parameters): fast on one CPU thread."""


class HaltAt(pl.Callback):
    """At one training batch, announce it in ``marker`` and wait there to be killed from outside."""

    def __init__(self, marker: str, epoch: int, batch: int) -> None:
        super().__init__()
        self.marker = marker
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            atomic_write_text(self.marker, f"{os.getpid()} step {trainer.global_step}\n")
            time.sleep(600)  # the test kills the process long before this ends


def write_checkpoint(task: GeoTask, path: Path) -> Path:
    """Save ``task`` (context configured) as a geoguess checkpoint without training it."""
    torch.save(
        {
            "state_dict": task.state_dict(),
            "hyper_parameters": dict(task.hparams),
            "epoch": 0,
            "global_step": 0,
            "geoguess": task.checkpoint_record(),
        },
        path,
    )
    return path


def tiny_task(cls: type[GeoTask], context: GeoContext, image_size: int = 32, **kwargs) -> GeoTask:
    """An untrained task with the tiny backbone, its network built for ``context``."""
    task = cls(backbone=TINY_BACKBONE, pretrained=False, **kwargs)
    task.configure_context(context, image_size=image_size)
    return task.eval()
