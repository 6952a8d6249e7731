"""Where a task and the data it trains on meet: two callbacks, so that neither reads the other.

The task hands the trainer both (:meth:`GeoTask.configure_callbacks`); at setup, after the
data module has read, split and fitted its data and before the task sets itself up,

* :class:`LabelSpaceLink` gives the task the data module's fitted label space (its
  :class:`~geoguess_utils.cells.context.GeoContext`), the image size and a description of
  the training data, and the task builds its network for them;
* :class:`InputNormalization` gives the data module the backbone's RGB statistics.

Both work with any data module that has the attributes they use (``context``,
``image_size``, ``roots``, ``locations``; ``set_normalization``), so neither side imports
the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl

from geoguess_utils.checkpoints.record import training_data_record
from geoguess_utils.errors import ConfigError


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


class LabelSpaceLink(pl.Callback):
    """At setup, hand the data module's fitted context, image size and training data to the task.

    A data module without a fitted context (predicting with a task that already has one)
    leaves the task as it is.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Configure the task's context and network from the data module; note the training data at fit."""
        datamodule = getattr(trainer, "datamodule", None)
        try:
            context = getattr(datamodule, "context", None)
        except ConfigError:  # a data module that has not fitted one (e.g. predict-only without a context)
            context = None
        if context is None:
            return
        image_size = getattr(datamodule, "image_size", None)
        if image_size is None and hasattr(datamodule, "hparams"):
            image_size = datamodule.hparams.get("image_size")
        pl_module.configure_context(context, image_size)
        if stage == "fit":
            described = _training_data(datamodule)
            if described is not None:
                pl_module.training_data = described


def _training_data(datamodule: Any) -> dict[str, Any] | None:
    """The checkpoint record's description of the data a run trains on (roots and location counts)."""
    roots = list(getattr(datamodule, "roots", None) or [])
    locations = getattr(datamodule, "locations", None)
    if not roots or locations is None:
        return None
    train = int((locations["split"] == "train").sum()) if "split" in locations.columns else len(locations)
    return training_data_record(roots, len(locations), train)
