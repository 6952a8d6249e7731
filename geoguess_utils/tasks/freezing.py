"""Freezing and unfreezing the backbone: one callback, one setting.

The task's ``freeze_backbone_epochs`` says how long the backbone stays frozen: a number of
epochs, or ``"all"`` (only what sits on the backbone ever learns; with the embedding cache
such a run never runs the backbone after the cache is built). The task hands the trainer a
:class:`BackboneFreezing` (:meth:`GeoTask.configure_callbacks`), which does all of it:

* at each epoch start, the backbone's parameters stop (or start again) requiring gradients
  and its learning rate is held at 0 while frozen;
* as the last frozen epoch ends, the backbone's rate becomes ``head rate * backbone_lr_factor``,
  so it is in place (and logged) for the first training epoch;
* with ``freeze_batchnorm``, the backbone's batch-norm layers stay in eval mode throughout.

Both parameter groups are in the optimiser from the start (rate 0 while frozen), so a run
resumed in the middle finds the optimiser as it was, and under DDP every process reduces the
same set of parameters.
"""

from __future__ import annotations

from typing import Any, Literal

import pytorch_lightning as pl
from torch import nn

from geoguess_utils.errors import ConfigError

FreezeEpochs = int | Literal["all"]
"""How long the backbone stays frozen: a number of epochs (>= 0), or ``"all"`` for the whole run."""


def check_freeze_epochs(value: Any) -> FreezeEpochs:
    """Return ``value`` as a :data:`FreezeEpochs`, refusing anything else.

    Raises:
        ConfigError: Neither a whole number >= 0 nor ``"all"``.
    """
    if value == "all":
        return "all"
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"freeze_backbone_epochs must be a whole number >= 0 or 'all', got {value!r}")
    return value


def frozen_at(epoch: int, freeze_epochs: FreezeEpochs) -> bool:
    """Whether the backbone is frozen during ``epoch`` (0-based)."""
    return freeze_epochs == "all" or epoch < freeze_epochs


class BackboneFreezing(pl.Callback):
    """Freeze, hold and unfreeze the task's backbone as its ``freeze_backbone_epochs`` says (see the module)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Freeze or unfreeze the backbone for this epoch.

        In a single process, frozen backbone parameters also stop requiring gradients
        (saves the backward pass through the backbone). Under DDP they keep requiring
        gradients so every process reduces the same set of parameters; the zero learning
        rate alone keeps them fixed.
        """
        net = pl_module.net
        frozen = pl_module.backbone_frozen
        trainable = not (frozen and trainer.world_size == 1)
        for parameter in net.backbone.parameters():
            parameter.requires_grad_(trainable)
        _hold_batchnorm(pl_module)
        if frozen:
            _set_backbone_lr(trainer, 0.0)
        else:
            _thaw_backbone_lr(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Raise the backbone's rate as the last frozen epoch ends, so it is in place (and logged) next epoch."""
        epoch = pl_module.current_epoch
        if pl_module.backbone_frozen_in(epoch) and not pl_module.backbone_frozen_in(epoch + 1):
            _thaw_backbone_lr(trainer, pl_module)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Hold the backbone's batch-norm layers and, while it is frozen, its learning rate at 0.

        Lightning switches the whole model to train mode after each validation and when a run
        resumes mid-epoch, and schedulers may move the rate, so this runs at every batch.
        """
        _hold_batchnorm(pl_module)
        if pl_module.backbone_frozen:
            _set_backbone_lr(trainer, 0.0)


def _backbone_groups(trainer: pl.Trainer) -> list[dict[str, Any]]:
    return [
        group for optimizer in trainer.optimizers for group in optimizer.param_groups if group.get("name") == "backbone"
    ]


def _set_backbone_lr(trainer: pl.Trainer, lr: float) -> None:
    for group in _backbone_groups(trainer):
        group["lr"] = lr


def _thaw_backbone_lr(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    """Give a backbone group held at 0 the rate ``head rate * backbone_lr_factor`` (one-cycle sets its own)."""
    if pl_module.schedule.scheduler == "onecycle" or not trainer.optimizers or not trainer.optimizers[0].param_groups:
        return  # one-cycle sets every rate itself; a task without an optimiser has none to raise
    head_lr = trainer.optimizers[0].param_groups[0]["lr"]
    for group in _backbone_groups(trainer):
        if group["lr"] == 0.0:
            group["lr"] = head_lr * pl_module.optimization.backbone_lr_factor


def _hold_batchnorm(pl_module: pl.LightningModule) -> None:
    """With ``freeze_batchnorm``, put the backbone's batch-norm layers (back) in eval mode."""
    if pl_module.net is not None and pl_module.freeze_batchnorm:
        for module in pl_module.net.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
                module.eval()
