"""Classify a location into the context's cells (cross-entropy)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.evaluation import MEAN_NAME
from geoguess_utils.geo import projection
from geoguess_utils.models.efficientnet_lite import OFFLINE_BACKBONE
from geoguess_utils.models.multiview import Pooling
from geoguess_utils.tasks.base import GeoTask, _check_choice
from geoguess_utils.tasks.decoding import DECODINGS, Decoding, _finite_logits, weighted_geometric_median
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
        backbone: str = OFFLINE_BACKBONE,
        pretrained: bool = True,
        pooling: Pooling = "concat",
        dropout: float = 0.0,
        optimizer: Literal["adam", "adamw"] = "adamw",
        lr: float = 1e-3,
        backbone_lr_factor: float = 0.1,
        weight_decay: float = 1e-4,
        scheduler: Literal["plateau", "onecycle", "none"] = "plateau",
        plateau_patience: int = 2,
        plateau_factor: float = 0.1,
        onecycle_pct_start: float = 0.3,
        monitor: str = f"val/{MEAN_NAME}",
        monitor_mode: Literal["min", "max"] = "min",
        freeze_backbone_epochs: int = 1,
        channels_last: bool = False,
        compile_backbone: bool = False,
        cpu_bf16_frozen_backbone: bool = False,
        label_smoothing_tau_km: float = 0.0,
        decoding: Decoding = "weighted_mean",
        median_top_k: int = 10,
        accuracy_top_k: int = 5,
    ) -> None:
        """Configure the classifier.

        Args:
            backbone: See :class:`GeoTask`.
            pretrained: See :class:`GeoTask`.
            pooling: See :class:`GeoTask`.
            dropout: See :class:`GeoTask`.
            optimizer: See :class:`GeoTask`.
            lr: See :class:`GeoTask`.
            backbone_lr_factor: See :class:`GeoTask`.
            weight_decay: See :class:`GeoTask`.
            scheduler: See :class:`GeoTask`.
            plateau_patience: See :class:`GeoTask`.
            plateau_factor: See :class:`GeoTask`.
            onecycle_pct_start: See :class:`GeoTask`.
            monitor: See :class:`GeoTask`.
            monitor_mode: See :class:`GeoTask`.
            freeze_backbone_epochs: See :class:`GeoTask`.
            channels_last: See :class:`GeoTask`.
            compile_backbone: See :class:`GeoTask`.
            cpu_bf16_frozen_backbone: See :class:`GeoTask`.
            label_smoothing_tau_km: 0 for one-hot targets; otherwise the temperature (km)
                of haversine label smoothing (:data:`RECOMMENDED_TAU_KM` suits Croatia).
            decoding: ``"weighted_mean"`` or ``"geometric_median"``.
            median_top_k: Class points the geometric median uses.
            accuracy_top_k: k of the logged top-k accuracy.
        """
        super().__init__(
            backbone=backbone,
            pretrained=pretrained,
            pooling=pooling,
            dropout=dropout,
            optimizer=optimizer,
            lr=lr,
            backbone_lr_factor=backbone_lr_factor,
            weight_decay=weight_decay,
            scheduler=scheduler,
            plateau_patience=plateau_patience,
            plateau_factor=plateau_factor,
            onecycle_pct_start=onecycle_pct_start,
            monitor=monitor,
            monitor_mode=monitor_mode,
            freeze_backbone_epochs=freeze_backbone_epochs,
            channels_last=channels_last,
            compile_backbone=compile_backbone,
            cpu_bf16_frozen_backbone=cpu_bf16_frozen_backbone,
        )
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
        _check_choice("decoding", value, DECODINGS)
        self._decoding = value

    def num_outputs(self, context: GeoContext) -> int:
        """One logit per class."""
        if context.num_classes < 1:
            raise ConfigError("the class table is empty: no training location falls in a grid cell")
        return context.num_classes

    def _init_head(self, head: nn.Linear, context: GeoContext) -> None:
        counts = torch.as_tensor(context.class_table["n_train"].to_numpy(dtype=np.float64))
        with torch.no_grad():
            head.bias.copy_(torch.log((counts + 1.0) / (counts + 1.0).sum()).to(head.bias.dtype))

    def _configure_extras(self, context: GeoContext) -> None:
        k = min(int(self.hparams.accuracy_top_k), context.num_classes)
        self.register_buffer(
            "centroids_latlon", torch.as_tensor(context.centroids_latlon(), dtype=torch.float32), persistent=False
        )
        self._centroids_xy_km = torch.as_tensor(context.centroids_xy() / 1000.0, dtype=torch.float64)
        for stage in ("train", "val", "test"):
            collection = MetricCollection(
                {
                    "acc": MulticlassAccuracy(context.num_classes, top_k=1, average="micro"),
                    f"acc_top{k}": MulticlassAccuracy(context.num_classes, top_k=k, average="micro"),
                },
                prefix=f"{stage}/",
            )
            setattr(self, f"{stage}_accuracy", collection)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Cross-entropy against the class index, or against haversine soft targets."""
        logits = outputs.float()
        tau = float(self.hparams.label_smoothing_tau_km)
        if tau > 0:
            targets = haversine_soft_targets(batch["latlon"], self.centroids_latlon, tau)
            return -(targets * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()
        return functional.cross_entropy(logits, batch["class_index"])

    def _log_extra(self, stage: str, outputs: torch.Tensor, batch: dict[str, Any]) -> None:
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
        if self.decoding == "weighted_mean":
            xy_km = probs @ points
        else:
            k = min(int(self.hparams.median_top_k), probs.shape[1])
            top = probs.topk(k, dim=1)
            xy_km = weighted_geometric_median(points[top.indices], top.values)
        lat, lon = projection.to_latlon(xy_km[:, 0].numpy() * 1000.0, xy_km[:, 1].numpy() * 1000.0, self.context.crs)
        return self._land(lat, lon)
