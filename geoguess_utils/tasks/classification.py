"""Classify a location into the context's cells (cross-entropy)."""

from __future__ import annotations

import math
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
from geoguess_utils.geo.soft_targets import haversine_soft_targets
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.calibration import apply_temperature_torch
from geoguess_utils.tasks.decoding import finite_logits, get_decoding


class ClassificationTask(GeoTask):
    """Classify a location into the context's cells (cross-entropy).

    Predictions are the probability-weighted mean of the class points in the projected
    CRS (the original design) or, with ``decoding="geometric_median"``, the weighted
    geometric median of the ``median_top_k`` most probable class points.
    Logs ``<stage>/acc`` and ``<stage>/acc_top<k>``.

    With ``county_loss_weight > 0`` (cell schemes whose class table has ``county_index``,
    e.g. ``county`` with split counties) the cell probabilities summed per county are
    trained against the true county as well (hierarchical labels, county -> cell).
    Retrieval refinement is a task of its own
    (:class:`geoguess_utils.tasks.experimental.retrieval.RetrievalTask`).
    """

    task_name = "classification"
    supports_ensemble = True

    def __init__(
        self,
        label_smoothing_tau_km: float = 0.0,
        decoding: str = "weighted_mean",
        median_top_k: int = 10,
        accuracy_top_k: int = 5,
        county_loss_weight: float = 0.0,
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
            county_loss_weight: Weight of the county-level cross-entropy (0: off).
            **kwargs: The settings every task shares (backbone, optimiser, schedule, ...):
                see :class:`GeoTask`.
        """
        super().__init__(**kwargs)
        if label_smoothing_tau_km < 0:
            raise ConfigError(f"label_smoothing_tau_km must be >= 0, got {label_smoothing_tau_km}")
        if median_top_k < 1 or accuracy_top_k < 1:
            raise ConfigError("median_top_k and accuracy_top_k must be at least 1")
        if not county_loss_weight >= 0:
            raise ConfigError(f"county_loss_weight must be >= 0, got {county_loss_weight}")
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
        if context.num_classes < 2:
            raise ConfigError(
                f"the {context.scheme_name} cell scheme {context.scheme.params()} gives one class for these training "
                "locations, and a classifier needs at least two: use smaller cells (data.cells.spacing_deg, "
                "data.cells.params) or more locations"
            )
        return context.num_classes

    def combine_member_outputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """An ensemble's logits: the log of its members' mean probabilities, (N, B, K) -> (B, K).

        Softmax of the result is exactly the mean of the members' softmaxes. A member with
        non-finite logits makes the result non-finite too, so the location is reported.
        """
        assert self.context is not None
        k = self.context.num_classes
        log_p = torch.log_softmax(outputs[..., :k].float(), dim=-1)
        mean_log_p = torch.logsumexp(log_p, dim=0) - math.log(outputs.shape[0])
        return torch.cat([mean_log_p.to(outputs.dtype), outputs[..., k:].mean(dim=0)], dim=-1)

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """The class logits (B, K) among the outputs (the first K columns)."""
        assert self.context is not None
        return outputs[:, : self.context.num_classes]

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
        if float(self.hparams.get("county_loss_weight", 0.0)) > 0:
            if "county_index" not in context.class_table.columns:
                raise ConfigError(
                    f"county_loss_weight needs the county cell scheme; this one is {context.scheme_name!r}"
                )
            county = context.class_table["county_index"].to_numpy(dtype=np.int64)
            self.register_buffer("cell_county", torch.as_tensor(county), persistent=False)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Cross-entropy against the class index, or against haversine soft targets."""
        logits = self.logits(outputs).float()
        tau = float(self.hparams.label_smoothing_tau_km)
        if tau > 0:
            targets = haversine_soft_targets(batch["latlon"], self.centroids_latlon, tau)
            loss = -(targets * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()
        else:
            loss = functional.cross_entropy(logits, batch["class_index"])
        weight = float(self.hparams.get("county_loss_weight", 0.0))
        if weight > 0:
            loss = loss + weight * self.county_loss(logits, batch["class_index"])
        return loss

    def county_loss(self, logits: torch.Tensor, class_index: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the county probabilities (cell probabilities summed per county).

        Args:
            logits: Cell logits, shape (B, K).
            class_index: True cell, shape (B,).

        Returns:
            Scalar loss.
        """
        counties = int(self.cell_county.max()) + 1
        membership = functional.one_hot(self.cell_county, counties).to(logits.dtype)  # (K, C)
        county_p = torch.softmax(logits, dim=1) @ membership
        log_county = torch.log(county_p.clamp_min(torch.finfo(county_p.dtype).tiny))
        return functional.nll_loss(log_county, self.cell_county[class_index])

    def log_task_metrics(self, stage: str, outputs: torch.Tensor, batch: dict[str, Any]) -> None:
        """Log ``<stage>/acc`` and ``<stage>/acc_top<k>``."""
        collection = getattr(self, f"{stage}_accuracy")
        collection.update(self.logits(outputs).detach().float(), batch["class_index"])
        self.log_dict(collection, on_step=False, on_epoch=True, batch_size=len(outputs))

    def prediction_extras(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"probabilities": (B, K) float64}`` next to the decoded points: the calibrated ones (see below)."""
        return {"probabilities": self.calibrated_probabilities(outputs)}

    def calibrated_probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """The reported probabilities, (B, K) float64 on CPU: the trained ones scaled by the calibration's temperature.

        Without a calibration (or with ``T = 1``) they are :meth:`class_probabilities`. The
        temperature keeps each row's ranking; it does not move the decoded point, which
        :meth:`decode` takes from the trained probabilities (the point the model was trained
        and selected on). Top cells and search regions use these.
        """
        probabilities = self.class_probabilities(outputs)
        temperature = None if self.calibration is None else self.calibration.temperature
        if temperature is None or temperature == 1.0:
            return probabilities
        return apply_temperature_torch(probabilities, temperature)

    def class_probabilities(self, outputs: torch.Tensor) -> torch.Tensor:
        """Softmax of the logits, (B, K) float64 on CPU; non-finite logits are made finite first."""
        return torch.softmax(finite_logits(self.logits(outputs)).cpu(), dim=1)

    def head_points_km(self, outputs: torch.Tensor) -> torch.Tensor:
        """The head's own point per location, projected km (B, 2) float64: the chosen decoding."""
        probs = self.class_probabilities(outputs)
        return get_decoding(self.decoding)(probs, self._centroids_xy_km, int(self.hparams.median_top_k))

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs -> ``[lat, lon]`` degrees (B, 2) float64, on land: the head's point (:meth:`head_points_km`)."""
        return self.latlon_of_points_km(self.head_points_km(outputs))

    def latlon_of_points_km(self, xy_km: torch.Tensor) -> torch.Tensor:
        """Projected points, km (B, 2) float64 -> ``[lat, lon]`` degrees (B, 2) float64, moved onto land."""
        assert self.context is not None
        lat, lon = projection.to_latlon(xy_km[:, 0].numpy() * 1000.0, xy_km[:, 1].numpy() * 1000.0, self.context.crs)
        return self._land(lat, lon)
