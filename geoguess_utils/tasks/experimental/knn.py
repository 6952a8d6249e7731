"""k nearest neighbours over training embeddings: a model with no trained weights at all.

Each location is described by its four views' backbone features, fused as the network
would (concatenated or averaged) and scaled to unit length. "Training" stores those of
every training location with its projected position; a new location is placed at the
similarity-weighted mean (or geometric median) of its ``neighbours`` most similar training
locations. With few training locations this beats a classifier whose head has one class
per cell; with the embedding cache on (``--data.embeddings.enabled true``) its one
training epoch reads features only.

Its checkpoint holds the training features and positions as buffers, so ``predict``,
``map`` and ``evaluate`` work on it like on any other task.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import projection
from geoguess_utils.models.efficientnet_lite import OFFLINE_BACKBONE
from geoguess_utils.models.multiview import Pooling
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.decoding import weighted_geometric_median

AGGREGATES: tuple[str, ...] = ("weighted_mean", "geometric_median")


class KNNTask(GeoTask):
    """Place a location among its nearest training locations in embedding space.

    The backbone is never trained (``freeze_backbone_epochs`` is always ``"all"``); there is no optimiser.
    """

    task_name = "knn"

    def __init__(
        self,
        neighbours: int = 5,
        temperature: float = 0.05,
        aggregate: str = "weighted_mean",
        backbone: str = OFFLINE_BACKBONE,
        pretrained: bool = True,
        pooling: Pooling = "concat",
        channels_last: bool = False,
    ) -> None:
        """Configure the neighbour search; nothing here is trained, so no optimiser or schedule is taken.

        Args:
            neighbours: How many training locations vote (k).
            temperature: Softmax temperature over cosine similarities: small values let
                the most similar neighbour dominate, large ones weigh the k alike.
            aggregate: ``"weighted_mean"`` or ``"geometric_median"`` of the neighbours'
                projected positions.
            backbone: Backbone name (its features describe the locations).
            pretrained: Start the backbone from ImageNet weights.
            pooling: How the four views' features are fused (``"concat"`` or ``"mean"``; an
                ``"attention"`` fusion would be untrained here).
            channels_last: NHWC memory format for the convolutions.
        """
        super().__init__(
            backbone=backbone,
            pretrained=pretrained,
            pooling=pooling,
            channels_last=channels_last,
            freeze_backbone_epochs="all",
        )
        if neighbours < 1 or not temperature > 0:
            raise ConfigError(f"need neighbours >= 1 and temperature > 0, got {neighbours} and {temperature}")
        if aggregate not in AGGREGATES:
            raise ConfigError(f"unknown aggregate {aggregate!r}; choose one of {', '.join(AGGREGATES)}")

    def num_outputs(self, context: GeoContext) -> int:
        """One (unused) output: the neighbour search needs no trained head."""
        return 1

    def configure_metrics(self, context: GeoContext) -> None:
        """The memory bank: one row per training location (features, projected km, filled or not)."""
        assert self.net is not None
        rows = int(context.class_table["n_train"].sum())
        self.register_buffer("bank_features", torch.zeros(rows, self.net.fused_width))
        self.register_buffer("bank_xy_km", torch.zeros(rows, 2, dtype=torch.float64))
        self.register_buffer("bank_filled", torch.zeros(rows, dtype=torch.bool))

    def batch_outputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Unit-length fused features (B, W) of a batch of images or cached view features."""
        return functional.normalize(self.fused_features(batch).float(), dim=1)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Store the batch's features and positions in the bank (nothing is optimised)."""
        assert self.context is not None
        with torch.no_grad():
            features = self.batch_outputs(batch)
        rows = torch.as_tensor(batch["index"], device=self.bank_features.device)
        lat, lon = batch["latlon"].double().cpu().numpy().T
        x, y = projection.to_projected(lat, lon, self.context.crs)
        self.bank_features[rows] = features.to(self.bank_features.dtype)
        self.bank_xy_km[rows] = torch.from_numpy(np.column_stack([x, y]) / 1000.0).to(self.bank_xy_km.device)
        self.bank_filled[rows] = True

    def configure_optimizers(self) -> None:
        """No optimiser: the bank is filled, not learnt."""
        return None

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """No loss to speak of (0); the great-circle metrics say how good it is."""
        return outputs.new_zeros(())

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Unit features (B, W) -> ``[lat, lon]`` degrees (B, 2) float64, on land."""
        assert self.context is not None
        filled = self.bank_filled.cpu()
        if not bool(filled.any()):
            lat = np.full(len(outputs), self._fallback_latlon[0])
            lon = np.full(len(outputs), self._fallback_latlon[1])
            return self._land(lat, lon)
        bank = self.bank_features.cpu().double()[filled]
        points = self.bank_xy_km.cpu()[filled]
        similarity = torch.nan_to_num(outputs.detach().cpu().double(), nan=0.0) @ bank.T
        k = min(int(self.hparams.neighbours), bank.shape[0])
        top = similarity.topk(k, dim=1)
        weights = torch.softmax(top.values / float(self.hparams.temperature), dim=1)
        if self.hparams.aggregate == "weighted_mean":
            xy_km = (weights[..., None] * points[top.indices]).sum(dim=1)
        else:
            xy_km = weighted_geometric_median(points[top.indices], weights)
        lat, lon = projection.to_latlon(xy_km[:, 0].numpy() * 1000.0, xy_km[:, 1].numpy() * 1000.0, self.context.crs)
        return self._land(lat, lon)
