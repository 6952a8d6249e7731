"""Retrieval refinement: training locations inside the top predicted cells vote for the final point.

A classifier says *which cells* are likely; inside them, the training locations whose
fused features are most similar to the query's say *where*. For each query:

1. take the ``top_cells`` most probable cells;
2. among the training locations of those cells, take the ``neighbours`` most similar
   ones (cosine similarity of unit-length fused features);
3. weigh each by ``softmax(similarity / temperature)`` times its cell's probability and
   return their weighted geometric median in the projected plane.

A query whose top cells hold no stored training location keeps the head's own point.
The bank (features, positions and cells of the training locations) lives in the task's
checkpoint as buffers, like the kNN model's (:mod:`geoguess_utils.tasks.experimental.knn`); it is
written during training from the same features the head sees, so it works with images
and with the embedding cache, for every cell scheme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import projection
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.decoding import weighted_geometric_median


@dataclass(frozen=True)
class RetrievalSettings:
    """How retrieval refines a classifier's point.

    Attributes:
        top_cells: Most probable cells searched (0 switches retrieval off).
        neighbours: Training locations that vote.
        temperature: Softmax temperature over cosine similarities (> 0).
    """

    top_cells: int = 0
    neighbours: int = 8
    temperature: float = 0.05

    def __post_init__(self) -> None:
        if int(self.top_cells) != self.top_cells or self.top_cells < 0:
            raise ConfigError(f"retrieval_cells must be an integer >= 0, got {self.top_cells!r}")
        if int(self.neighbours) != self.neighbours or self.neighbours < 1:
            raise ConfigError(f"retrieval_neighbours must be an integer >= 1, got {self.neighbours!r}")
        if not self.temperature > 0:
            raise ConfigError(f"retrieval_temperature must be > 0, got {self.temperature!r}")

    @property
    def enabled(self) -> bool:
        """Whether retrieval runs at all."""
        return self.top_cells > 0


def refine(
    probabilities: torch.Tensor,
    query: torch.Tensor,
    bank_features: torch.Tensor,
    bank_xy_km: torch.Tensor,
    bank_class: torch.Tensor,
    settings: RetrievalSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The retrieval point of each query, and whether it had any training location to vote.

    Args:
        probabilities: Class probabilities, shape (B, K), float64.
        query: Unit-length fused features of the queries, shape (B, W).
        bank_features: Unit-length fused features of the stored training locations, (N, W).
        bank_xy_km: Their projected positions, km, shape (N, 2), float64.
        bank_class: Their class index, int64, shape (N,), values in ``[0, K)``.
        settings: Cells searched, neighbour count and temperature.

    Returns:
        ``(points, found)``: points (B, 2) float64 km (meaningless where not found) and
        found (B,) bool.
    """
    batch, classes = probabilities.shape
    if bank_features.shape[0] == 0:
        return torch.zeros(batch, 2, dtype=torch.float64), torch.zeros(batch, dtype=torch.bool)
    k_cells = min(int(settings.top_cells), classes)
    top = probabilities.topk(k_cells, dim=1).indices
    searched = torch.zeros(batch, classes, dtype=torch.bool).scatter_(1, top, True)
    allowed = searched[:, bank_class]  # (B, N)
    similarity = torch.nan_to_num(query.double(), nan=0.0) @ bank_features.double().T
    similarity = similarity.masked_fill(~allowed, float("-inf"))
    k = min(int(settings.neighbours), bank_features.shape[0])
    best = similarity.topk(k, dim=1)
    valid = torch.isfinite(best.values)
    found = valid.any(dim=1)
    scores = torch.where(valid, best.values / float(settings.temperature), torch.full_like(best.values, -1e300))
    scores = scores - scores.max(dim=1, keepdim=True).values
    cell_prob = probabilities.gather(1, bank_class[best.indices])
    weights = torch.where(valid, torch.exp(scores) * cell_prob.clamp_min(1e-12), torch.zeros_like(scores))
    weights = torch.where(found[:, None], weights, torch.ones_like(weights))
    points = weighted_geometric_median(bank_xy_km[best.indices], weights)
    return points, found


class RetrievalBank:
    """Mixin for a classifier: refine its point with the training locations of its top cells.

    The host class sets ``self.retrieval`` (:class:`RetrievalSettings`) in ``__init__``. While
    retrieval is on, the outputs carry the unit-length fused features after the head's
    outputs, and the training locations' features, positions and cells are kept as
    buffers (written during training from the features the head sees, so it works with
    images and with the embedding cache). A query whose top cells hold no stored training
    location keeps the head's own point.
    """

    retrieval: RetrievalSettings

    def configure_metrics(self, context: GeoContext) -> None:
        """The classifier's metrics, then the empty bank: one row per training location."""
        super().configure_metrics(context)
        self._head_width = self.num_outputs(context)
        if not self.retrieval.enabled:
            return
        rows = int(context.class_table["n_train"].sum())
        width = self.net.fused_width
        self.register_buffer("bank_features", torch.zeros(rows, width, dtype=torch.float16))
        self.register_buffer("bank_xy_km", torch.zeros(rows, 2, dtype=torch.float64))
        self.register_buffer("bank_class", torch.zeros(rows, dtype=torch.int64))
        self.register_buffer("bank_filled", torch.zeros(rows, dtype=torch.bool))

    def batch_outputs(self, batch: dict[str, Any]) -> torch.Tensor:
        """Head outputs (B, O); with retrieval on, followed by the unit fused features (B, O + W)."""
        if not self.retrieval.enabled:
            return super().batch_outputs(batch)
        fused = self.fused_features(batch)
        outputs = self.net.head(fused)
        return torch.cat([outputs, functional.normalize(fused.detach().float(), dim=1).to(outputs.dtype)], dim=1)

    def _training_outputs(self, batch: dict[str, Any]) -> torch.Tensor:
        if not self.retrieval.enabled:
            return super()._training_outputs(batch)
        outputs = self.batch_outputs(batch)
        self._remember(batch, outputs[:, self._head_width :])
        return outputs

    def _remember(self, batch: dict[str, Any], features: torch.Tensor) -> None:
        """Store a training batch's features, positions and classes in the bank."""
        crs = self.context.crs
        rows = torch.as_tensor(batch["index"], device=self.bank_features.device)
        lat, lon = batch["latlon"].double().cpu().numpy().T
        x, y = projection.to_projected(lat, lon, crs)
        with torch.no_grad():
            self.bank_features[rows] = features.detach().to(self.bank_features.dtype)
            self.bank_xy_km[rows] = torch.from_numpy(np.column_stack([x, y]) / 1000.0).to(self.bank_xy_km.device)
            self.bank_class[rows] = batch["class_index"].to(self.bank_class.device)
            self.bank_filled[rows] = True

    def decode(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs -> ``[lat, lon]`` degrees (B, 2) float64, on land: the head's point, refined by retrieval."""
        xy_km = self.head_points_km(outputs)
        if self.retrieval.enabled and bool(self.bank_filled.any()):
            filled = self.bank_filled.cpu()
            found_xy, found = refine(
                self.class_probabilities(outputs),
                outputs[:, self._head_width :].detach().cpu(),
                self.bank_features.cpu()[filled],
                self.bank_xy_km.cpu()[filled],
                self.bank_class.cpu()[filled],
                self.retrieval,
            )
            xy_km = torch.where(found[:, None], found_xy, xy_km)
        return self.latlon_of_points_km(xy_km)


class RetrievalTask(RetrievalBank, ClassificationTask):
    """A classifier whose point is refined by retrieval among the training locations of its top cells.

    Measured on the synthetic sample it did not beat the plain classifier (BENCHMARKS.md,
    "Ablation": 1.10 x the recipe's error); the published gains rest on place-aware
    backbones, which the offline backbones here are not.
    """

    supports_ensemble = False

    task_name = "retrieval"

    def __init__(
        self,
        retrieval_cells: int = 5,
        retrieval_neighbours: int = 8,
        retrieval_temperature: float = 0.05,
        **kwargs: Any,
    ) -> None:
        """Configure the retrieval.

        Args:
            retrieval_cells: Most probable cells searched (>= 1).
            retrieval_neighbours: Training locations that vote.
            retrieval_temperature: Softmax temperature over the cosine similarities.
            **kwargs: The classifier's settings: see :class:`ClassificationTask`.
        """
        super().__init__(**kwargs)
        if int(retrieval_cells) < 1:
            raise ConfigError(f"retrieval_cells must be >= 1 for the retrieval task, got {retrieval_cells!r}")
        self.retrieval = RetrievalSettings(
            int(retrieval_cells), int(retrieval_neighbours), float(retrieval_temperature)
        )
