"""The one thing a task tells the data it trains on: how to normalise the views for its backbone.

A task does not read its data module, nor the data module its task: the task hands the
trainer this callback (:meth:`GeoTask.configure_callbacks`), and the callback gives any
data module with ``set_normalization`` the backbone's RGB statistics at setup.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl


class InputNormalization(pl.Callback):
    """At setup, set the trainer's data module to normalise views with ``(mean, std)``.

    Args:
        mean: RGB means of the backbone's inputs (images scaled to [0, 1]).
        std: RGB standard deviations.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Hand the statistics to the data module, when there is one that takes them."""
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_normalization"):
            datamodule.set_normalization(self.mean, self.std)
