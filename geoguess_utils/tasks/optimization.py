"""How a task learns: the optimiser and the learning-rate schedule, as two small settings groups.

:class:`~geoguess_utils.tasks.base.GeoTask` keeps its options flat (``--model.lr``,
``--model.scheduler``, ... as every config writes them) and groups them here once, checked;
:func:`configure_optimizers` builds what Lightning's ``configure_optimizers`` returns. A task
that trains nothing (:class:`~geoguess_utils.tasks.experimental.knn.KNNTask`) takes none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geoguess_utils.errors import ConfigError

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
SCHEDULERS: tuple[str, ...] = ("plateau", "onecycle", "none")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimiser: Adam or AdamW over two parameter groups, what sits on the backbone and the backbone.

    Attributes:
        optimizer: ``"adam"`` or ``"adamw"``.
        lr: Learning rate of what sits on the backbone (the peak rate for one-cycle).
        backbone_lr_factor: The backbone's rate is ``lr * backbone_lr_factor`` once it trains.
        weight_decay: Weight decay of the optimiser.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    backbone_lr_factor: float = 0.1
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not self.lr > 0 or not self.backbone_lr_factor >= 0 or not self.weight_decay >= 0:
            raise ConfigError(
                f"need lr > 0, backbone_lr_factor >= 0 and weight_decay >= 0; got {self.lr}, "
                f"{self.backbone_lr_factor} and {self.weight_decay}"
            )


@dataclass(frozen=True)
class ScheduleSettings:
    """The learning-rate schedule.

    Attributes:
        scheduler: ``"plateau"`` (ReduceLROnPlateau on ``monitor``), ``"onecycle"`` or ``"none"``.
        plateau_patience: Epochs without improvement before the rate is reduced.
        plateau_factor: Factor the rate is multiplied by on a plateau.
        onecycle_pct_start: Share of the steps spent warming up in one-cycle.
        monitor: Logged metric the plateau scheduler watches.
        monitor_mode: Whether ``monitor`` improves when it goes ``"min"`` or ``"max"``.
    """

    scheduler: str = "plateau"
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    onecycle_pct_start: float = 0.3
    monitor: str = "val/mean_km"
    monitor_mode: str = "min"

    def __post_init__(self) -> None:
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        if self.monitor_mode not in ("min", "max"):
            raise ConfigError(f"monitor_mode must be 'min' or 'max', got {self.monitor_mode!r}")


def configure_optimizers(
    net: nn.Module,
    optimizer: OptimizerSettings,
    schedule: ScheduleSettings,
    backbone_frozen: bool,
    total_steps: int,
) -> Any:
    """What ``LightningModule.configure_optimizers`` returns for a network with a ``backbone``.

    Both parameter groups (``"head"``: everything not in the backbone; ``"backbone"``) stay in
    the optimiser for the whole run; while the backbone is frozen its rate starts at 0 (and
    :class:`~geoguess_utils.tasks.freezing.BackboneFreezing` holds it there).

    Args:
        net: The network; ``net.backbone`` is the backbone.
        optimizer: The optimiser settings.
        schedule: The schedule settings.
        backbone_frozen: Whether the backbone is frozen as training starts.
        total_steps: Optimiser steps of the whole run (one-cycle's length).
    """
    backbone_ids = {id(p) for p in net.backbone.parameters()}
    head = [p for p in net.parameters() if id(p) not in backbone_ids]
    backbone_lr = optimizer.lr * optimizer.backbone_lr_factor
    groups = [
        {"params": head, "lr": optimizer.lr, "name": "head"},
        {"params": list(net.backbone.parameters()), "lr": backbone_lr, "name": "backbone"},
    ]
    if backbone_frozen and schedule.scheduler != "onecycle":
        groups[1]["lr"] = 0.0  # raised to lr * backbone_lr_factor at the unfreeze epoch
    optimizer_cls = torch.optim.AdamW if optimizer.optimizer == "adamw" else torch.optim.Adam
    built = optimizer_cls(groups, lr=optimizer.lr, weight_decay=optimizer.weight_decay)
    if schedule.scheduler == "none":
        return built
    if schedule.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            built, mode=schedule.monitor_mode, factor=schedule.plateau_factor, patience=schedule.plateau_patience
        )
        config = {"scheduler": scheduler, "monitor": schedule.monitor, "interval": "epoch", "frequency": 1}
        return {"optimizer": built, "lr_scheduler": config}
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        built,
        max_lr=[optimizer.lr, backbone_lr],
        total_steps=max(total_steps, 1),
        pct_start=schedule.onecycle_pct_start,
    )
    return {"optimizer": built, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
