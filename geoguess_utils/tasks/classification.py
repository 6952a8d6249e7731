"""Classify a location into the context's cells (cross-entropy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import projection
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.decoding import _finite_logits, get_decoding
from geoguess_utils.tasks.losses import haversine_soft_targets


class ClassificationTask(GeoTask):
    """Classify a location into the context's grid cells (cross-entropy).

    Predictions are the probability-weighted mean of the class points in the projected
    CRS (the original design) or, with ``decoding="geometric_median"``, the weighted
    geometric median of the ``median_top_k`` most probable class points.
    Logs ``<stage>/acc`` and ``<stage>/acc_top<k>``.
    """

    task_name = "classification"

    def __init__(
        self,
        label_smoothing_tau_km: float = 0.0,
        decoding: str = "weighted_mean",
        median_top_k: int = 10,
        accuracy_top_k: int = 5,
        **kwargs: Any,
    ) -> None:
        """Configure the classifier.

        Args:
            label_smoothing_tau_km: 0 for one-hot targets; otherwise the temperature (km)
                of haversine label smoothing (:data:`RECOMMENDED_TAU_KM` suits Croatia).
            decoding: A registered decoding: ``"weighted_mean"``, ``"geometric_median"``, ...
                (see :data:`geoguess_utils.tasks.decoding.DECODINGS`).
            median_top_k: Class points the geometric median uses.
            accuracy_top_k: k of the logged top-k accuracy.
            **kwargs: The settings every task shares (backbone, optimiser, schedule, ...):
                see :class:`GeoTask`.
        """
        super().__init__(**kwargs)
        if label_smoothing_tau_km < 0:
            raise ConfigError(f"label_smoothing_tau_km must be >= 0, got {label_smoothing_tau_km}")
        if median_top_k < 1 or accuracy_top_k < 1:
            raise ConfigError("median_top_k and accuracy_top_k must be at least 1")
        self.decoding = decoding  # may be changed after training, e.g. by ``geoguess predict --decoding``

    @property
    def decoding(self) -> str:
        """How class probabilities become a location: ``"weighted_mean"`` or ``"geometric_median"``."""
        return self._decoding

    @decoding.setter
    def decoding(self, value: str) -> None:
        get_decoding(value)  # refuses unknown names
        self._decoding = value

    def num_outputs(self, context: GeoContext) -> int:
        """One logit per class."""
        if context.num_classes < 1:
            raise ConfigError("the class table is empty: no training location falls in a grid cell")
        return context.num_classes

    def configure_head(self, head: nn.Linear, context: GeoContext) -> None:
        """Start from the training prior: the bias is the log share of each class (add-one smoothed)."""
        counts = torch.as_tensor(context.class_table["n_train"].to_numpy(dtype=np.float64))
        with torch.no_grad():
            head.bias.copy_(torch.log((counts + 1.0) / (counts + 1.0).sum()).to(head.bias.dtype))

    def configure_metrics(self, context: GeoContext) -> None:
        """Class points as buffers, and one accuracy collection (top-1, top-k) cloned per stage."""
        k = min(int(self.hparams.accuracy_top_k), context.num_classes)
        self.register_buffer(
            "centroids_latlon", torch.as_tensor(context.centroids_latlon(), dtype=torch.float32), persistent=False
        )
        self._centroids_xy_km = torch.as_tensor(context.centroids_xy() / 1000.0, dtype=torch.float64)
        accuracy = MetricCollection(
            {
                "acc": MulticlassAccuracy(context.num_classes, top_k=1, average="micro"),
                f"acc_top{k}": MulticlassAccuracy(context.num_classes, top_k=k, average="micro"),
            }
        )
        for stage in ("train", "val", "test"):
            setattr(self, f"{stage}_accuracy", accuracy.clone(prefix=f"{stage}/"))

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Cross-entropy against the class index, or against haversine soft targets."""
        logits = outputs.float()
        tau = float(self.hparams.label_smoothing_tau_km)
        if tau > 0:
            targets = haversine_soft_targets(batch["latlon"], self.centroids_latlon, tau)
            return -(targets * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()
        return functional.cross_entropy(logits, batch["class_index"])

    def log_task_metrics(self, stage: str, outputs: torch.Tensor, batch: dict[str, Any]) -> None:
        """Log ``<stage>/acc`` and ``<stage>/acc_top<k>``."""
        collection = getattr(self, f"{stage}_accuracy")
        collection.update(outputs.detach().float(), batch["class_index"])
        self.log_dict(collection, on_step=False, on_epoch=True, batch_size=len(outputs))

    def prediction_extras(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"probabilities": (B, K) float64}`` next to the decoded points."""
        return {"probabilities": self.class_probabilities(outputs)}

    def class_probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Softmax of the logits, (B, K) float64 on CPU; non-finite logits are made finite first."""
        return torch.softmax(_finite_logits(outputs).cpu(), dim=1)

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities -> ``[lat, lon]`` degrees (B, 2) float64, on land."""
        assert self.context is not None
        probs = self.class_probabilities(outputs)
        points = self._centroids_xy_km
        xy_km = get_decoding(self.decoding)(probs, points, int(self.hparams.median_top_k))
        lat, lon = projection.to_latlon(xy_km[:, 0].numpy() * 1000.0, xy_km[:, 1].numpy() * 1000.0, self.context.crs)
        return self._land(lat, lon)
