"""Haversine label smoothing: soft class targets that decay with the great-circle distance."""

from __future__ import annotations

import torch

from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import distance

RECOMMENDED_TAU_KM = 25.0
"""Label-smoothing temperature that suits Croatia: about one 0.3-degree grid cell (23-33 km)."""


def haversine_soft_targets(true_latlon: torch.Tensor, centroids_latlon: torch.Tensor, tau_km: float) -> torch.Tensor:
    """Soft class targets that decay with the distance to each class point.

    ``q_i = exp(-(d_i - d_min) / tau) / sum_j exp(-(d_j - d_min) / tau)``, where ``d_i`` is
    the great-circle distance from the true location to class point ``i``.

    Args:
        true_latlon: True ``[lat, lon]`` degrees, shape (B, 2).
        centroids_latlon: Class points ``[lat, lon]`` degrees, shape (K, 2).
        tau_km: Temperature in km (> 0): the distance over which a target weight drops by e.

    Returns:
        Shape (B, K), rows summing to 1, largest at the class point nearest the truth.
    """
    if not tau_km > 0:
        raise ConfigError(f"label smoothing tau must be positive, got {tau_km}")
    lat = true_latlon[:, 0:1].to(centroids_latlon.dtype)
    lon = true_latlon[:, 1:2].to(centroids_latlon.dtype)
    d_km = distance.haversine_km(lat, lon, centroids_latlon[None, :, 0], centroids_latlon[None, :, 1])
    return torch.softmax(-(d_km - d_km.min(dim=1, keepdim=True).values) / tau_km, dim=1)
