"""Great-circle error metrics as a torchmetrics Metric."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from geoguess_utils.evaluation import THRESHOLDS_KM, metric_names
from geoguess_utils.geo import distance


class HaversineMetrics(Metric):
    """Epoch-level great-circle errors between predicted and true locations.

    ``compute()`` returns a dict of scalar tensors named by :func:`metric_names`:
    ``mean_km`` (mean), ``median_km`` and ``acc_<t>_km`` (share within t km).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, thresholds_km: Sequence[float] = THRESHOLDS_KM, **kwargs: object) -> None:
        """Create the metric.

        Args:
            thresholds_km: Thresholds for the ``acc_<t>_km`` shares.
            **kwargs: Passed to ``torchmetrics.Metric``.
        """
        super().__init__(**kwargs)
        self.thresholds_km = tuple(float(t) for t in thresholds_km)
        self.add_state("distances_km", default=[], dist_reduce_fx="cat")

    def update(self, pred_latlon: torch.Tensor, true_latlon: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred_latlon: Predicted ``[lat, lon]`` degrees, shape (B, 2).
            true_latlon: True ``[lat, lon]`` degrees, shape (B, 2).
        """
        pred = torch.as_tensor(pred_latlon, dtype=torch.float64)
        true = torch.as_tensor(true_latlon, dtype=torch.float64, device=pred.device)
        if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 2:
            raise ValueError(f"expected two (B, 2) [lat, lon] tensors, got {tuple(pred.shape)} and {tuple(true.shape)}")
        dist = distance.haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1])
        self.distances_km.append(dist.to(device=self.device, dtype=torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        """Mean, median and shares over everything added since the last reset."""
        names = metric_names(self.thresholds_km)
        state = self.distances_km  # a list of batches, or one tensor once synchronised across processes
        if isinstance(state, list) and not state:
            return {name: torch.tensor(float("nan"), device=self.device) for name in names}
        d = dim_zero_cat(state).to(torch.float64)
        if d.numel() == 0:
            return {name: torch.tensor(float("nan"), device=self.device) for name in names}
        values = [d.mean(), torch.quantile(d, 0.5)] + [(d <= t).to(torch.float64).mean() for t in self.thresholds_km]
        return {name: value.to(torch.float32) for name, value in zip(names, values, strict=True)}
