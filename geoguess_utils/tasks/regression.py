"""Regress a location's min-max scaled projected (x, y)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.geo import projection
from geoguess_utils.tasks.base import GeoTask


class RegressionTask(GeoTask):
    """Regress min-max scaled projected ``(x, y)`` with mean squared error.

    Outputs are inverse-scaled, projected back to ``(lat, lon)`` and moved onto land.
    """

    task_name = "regression"
    supports_ensemble = True

    def num_outputs(self, context: GeoContext) -> int:
        """Two outputs: scaled x and y."""
        return 2

    def configure_head(self, head: nn.Linear, context: GeoContext) -> None:
        """Start at the training mean: the bias is its scaled projected position."""
        lat, lon = context.centroids_latlon("weighted").T
        n = context.class_table["n_train"].to_numpy(dtype=np.float64)
        if n.sum() <= 0:
            return
        x, y = projection.to_projected(lat, lon, context.crs)
        xs, ys = context.scaler.transform(np.array([n @ x / n.sum()]), np.array([n @ y / n.sum()]))
        with torch.no_grad():
            head.bias.copy_(torch.tensor([float(xs[0]), float(ys[0])], dtype=head.bias.dtype))

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Mean squared error on scaled ``(x, y)``."""
        return functional.mse_loss(outputs.float(), batch["xy_scaled"].to(torch.float32))

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Scaled ``(x, y)`` -> ``[lat, lon]`` degrees (B, 2) float64, on land."""
        assert self.context is not None
        xy = torch.nan_to_num(outputs.detach().to(torch.float64).cpu(), nan=0.5, posinf=1.0, neginf=0.0)
        xy = xy.clamp(-0.25, 1.25).numpy()
        lat, lon = self.context.scaled_to_latlon(xy[:, 0], xy[:, 1])
        return self._land(lat, lon)
