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
checkpoint as buffers, like the kNN model's (:mod:`geoguess_utils.tasks.knn`); it is
written during training from the same features the head sees, so it works with images
and with the embedding cache, for every cell scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geoguess_utils.errors import ConfigError
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
