"""Hybrid head: cell logits plus, for every cell, an offset from its class point.

The output layer gives ``3 K`` numbers per location: K cell logits and, per cell, an
offset ``(dx, dy)`` in the projected plane, ``offset_scale_km * tanh(raw)``, so at most
``offset_scale_km`` along each axis (unbounded offsets from a linear layer over frozen,
non-centred features overshoot badly on new locations). Training adds to the
classifier's loss a smooth-L1 loss on the true cell's offset, pointing from that cell's
class point to the true location (clipped to the bound). A prediction is then

* ``offset_decoding="top"``: the most probable cell's class point plus its offset;
* ``offset_decoding="weighted"``: the probability-weighted mean over cells of
  ``class point + offset``.

The cell scheme, label smoothing, county loss and retrieval refinement of the classifier
all apply (retrieval replaces the head's point where it finds training locations).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.experimental.retrieval import RetrievalBank, RetrievalSettings

OFFSET_DECODINGS: tuple[str, ...] = ("top", "weighted")


class HybridTask(RetrievalBank, ClassificationTask):
    """Cell classification plus a per-cell offset regression (see the module docstring)."""

    supports_ensemble = False

    task_name = "hybrid"

    def __init__(
        self,
        offset_loss_weight: float = 1.0,
        offset_scale_km: float = 25.0,
        offset_decoding: str = "top",
        retrieval_cells: int = 0,
        retrieval_neighbours: int = 8,
        retrieval_temperature: float = 0.05,
        **kwargs: Any,
    ) -> None:
        """Configure the hybrid head.

        Args:
            offset_loss_weight: Weight of the offset loss next to the cell loss (>= 0).
            offset_scale_km: Largest offset along each axis, km (> 0): about a cell's
                half-diagonal.
            offset_decoding: ``"top"`` or ``"weighted"`` (see the module docstring).
            retrieval_cells: Most probable cells retrieval searches; 0 switches it off.
            retrieval_neighbours: Training locations that vote in retrieval.
            retrieval_temperature: Softmax temperature over the cosine similarities.
            **kwargs: The classifier's settings (cell loss, retrieval, ...) and those every
                task shares: see :class:`ClassificationTask` and
                :class:`~geoguess_utils.tasks.base.GeoTask`.
        """
        super().__init__(**kwargs)
        self.retrieval = RetrievalSettings(
            int(retrieval_cells), int(retrieval_neighbours), float(retrieval_temperature)
        )
        if not offset_loss_weight >= 0:
            raise ConfigError(f"offset_loss_weight must be >= 0, got {offset_loss_weight}")
        if not offset_scale_km > 0:
            raise ConfigError(f"offset_scale_km must be > 0, got {offset_scale_km}")
        if offset_decoding not in OFFSET_DECODINGS:
            raise ConfigError(
                f"unknown offset_decoding {offset_decoding!r}; choose one of {', '.join(OFFSET_DECODINGS)}"
            )

    def num_outputs(self, context: GeoContext) -> int:
        """K cell logits followed by K offsets of two numbers each."""
        return 3 * super().num_outputs(context)

    def configure_head(self, head: nn.Linear, context: GeoContext) -> None:
        """The logits start from the training prior, the offsets from zero (the class points)."""
        counts = torch.as_tensor(context.class_table["n_train"].to_numpy(dtype=np.float64))
        with torch.no_grad():
            head.bias[: len(counts)] = torch.log((counts + 1.0) / (counts + 1.0).sum()).to(head.bias.dtype)

    def offsets(self, outputs: torch.Tensor) -> torch.Tensor:
        """The predicted offsets, shape (B, K, 2), in units of ``offset_scale_km`` (within (-1, 1))."""
        assert self.context is not None
        k = self.context.num_classes
        return torch.tanh(outputs[:, k : 3 * k].reshape(len(outputs), k, 2))

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """The classifier's loss plus ``offset_loss_weight`` times the true cell's smooth-L1 offset loss."""
        loss = super().loss(outputs, batch)
        weight = float(self.hparams.offset_loss_weight)
        if weight == 0:
            return loss
        classes = batch["class_index"]
        predicted = self.offsets(outputs).float()[torch.arange(len(classes), device=classes.device), classes]
        return loss + weight * functional.smooth_l1_loss(predicted, self.offset_targets(batch))

    def offset_targets(self, batch: dict[str, Any]) -> torch.Tensor:
        """True offsets from the true cell's class point, (B, 2) float32, in ``offset_scale_km`` units, in [-1, 1]."""
        assert self.context is not None
        scaled = batch["xy_scaled"].double().cpu().numpy()
        x_m, y_m = self.context.scaler.inverse_transform(scaled[:, 0], scaled[:, 1])
        true_km = torch.from_numpy(np.column_stack([x_m, y_m]) / 1000.0)
        class_km = self._centroids_xy_km[batch["class_index"].cpu()]
        target = ((true_km - class_km) / float(self.hparams.offset_scale_km)).clamp(-1.0, 1.0)
        return target.float().to(batch["class_index"].device)

    def head_points_km(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class point plus offset of the top cell, or their probability-weighted mean; km (B, 2) float64."""
        probs = self.class_probabilities(outputs)
        shifts = torch.nan_to_num(self.offsets(outputs).detach().cpu().double(), nan=0.0)
        shifts = shifts * float(self.hparams.offset_scale_km)
        points = self._centroids_xy_km[None] + shifts  # (B, K, 2)
        if self.hparams.offset_decoding == "top":
            top = probs.argmax(dim=1)
            return points[torch.arange(len(top)), top]
        return (probs[..., None] * points).sum(dim=1)
