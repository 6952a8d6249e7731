"""Decodings: how class probabilities become one point, and keeping points on land."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders

Decoder = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
"""``decoder(probabilities (B, K), class points (K, 2) km, top_k) -> points (B, 2) km``, in the projected plane."""

DECODINGS: dict[str, Decoder] = {}
"""Registered decodings by name; :func:`register_decoding` adds one."""


def register_decoding(name: str) -> Callable[[Decoder], Decoder]:
    """Register a decoding under ``name`` (a decorator); the CLI's ``--decoding`` choices come from here.

    A decoding maps class probabilities (B, K) and the class points in projected km (K, 2)
    to one point per location in projected km (B, 2); ``top_k`` is the task's
    ``median_top_k`` setting, which a decoding may use or ignore.
    """

    def add(function: Decoder) -> Decoder:
        if name in DECODINGS:
            raise ConfigError(f"a decoding named {name!r} is already registered")
        DECODINGS[name] = function
        return function

    return add


def get_decoding(name: str) -> Decoder:
    """The decoding registered as ``name``.

    Raises:
        ConfigError: Unknown name (the message lists the registered ones).
    """
    try:
        return DECODINGS[name]
    except KeyError:
        raise ConfigError(f"unknown decoding {name!r}; choose one of {', '.join(DECODINGS)}") from None


_LOGIT_LIMIT = 1.0e4


def weighted_geometric_median(
    points: torch.Tensor, weights: torch.Tensor, iterations: int = 200, tolerance: float = 1e-9
) -> torch.Tensor:
    """Weighted geometric median of point sets (Weiszfeld with the Vardi-Zhang step).

    Minimises ``sum_i w_i * ||y - x_i||`` per set, in the plane. In a conformal projection
    such as EPSG:3766 this is the point with the least weighted mean distance.

    Args:
        points: Shape (B, k, 2), any length unit.
        weights: Shape (B, k), non-negative; rows summing to zero count as uniform.
        iterations: Maximum number of iterations.
        tolerance: Stop when no estimate moves more than this (same unit as ``points``).

    Returns:
        Shape (B, 2), same dtype and unit as ``points``.
    """
    x = points
    w = weights.to(x.dtype).clamp_min(0)
    total = w.sum(dim=1, keepdim=True)
    w = torch.where(total > 0, w / total.clamp_min(torch.finfo(x.dtype).tiny), torch.full_like(w, 1.0 / w.shape[1]))
    scale = (x.amax(dim=(1, 2)) - x.amin(dim=(1, 2))).clamp_min(1.0)[:, None]
    same = 1e-12 * scale
    y = (w[..., None] * x).sum(dim=1)
    for _ in range(iterations):
        diff = x - y[:, None, :]
        dist = diff.norm(dim=2)
        at_point = dist <= same
        inv = torch.where(at_point, torch.zeros_like(dist), w / dist.clamp_min(torch.finfo(x.dtype).tiny))
        inv_sum = inv.sum(dim=1, keepdim=True)
        stuck = inv_sum <= 0  # every point coincides with y: y is the answer
        t = (inv[..., None] * x).sum(dim=1) / inv_sum.clamp_min(torch.finfo(x.dtype).tiny)
        r = (inv[..., None] * diff).sum(dim=1).norm(dim=1, keepdim=True)
        eta = (w * at_point).sum(dim=1, keepdim=True)
        share = torch.where(r > 0, (eta / r.clamp_min(torch.finfo(x.dtype).tiny)).clamp(max=1.0), torch.ones_like(r))
        new_y = (1 - share) * t + share * y
        new_y = torch.where(stuck, y, new_y)
        moved = (new_y - y).norm(dim=1).max()
        y = new_y
        if moved <= tolerance:
            break
    return y


def clip_to_land(
    lat: np.ndarray, lon: np.ndarray, fallback_latlon: tuple[float, float], variant: str = "mainland"
) -> tuple[np.ndarray, np.ndarray]:
    """Make predicted points finite and on Croatian land.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        fallback_latlon: Used where a coordinate is not finite (e.g. the training mean).
        variant: Croatia variant counting as land (see :mod:`geoguess_utils.geo.borders`).

    Returns:
        ``(lat, lon)`` float64 arrays, shape (N,), every point on land.
    """
    lat = np.array(lat, dtype=np.float64, ndmin=1)
    lon = np.array(lon, dtype=np.float64, ndmin=1)
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    lat[bad], lon[bad] = fallback_latlon
    return borders.nearest_land_point(lat, lon, variant=variant)


def finite_logits(outputs: torch.Tensor) -> torch.Tensor:
    """Logits (B, K) as float64 with NaN set to 0 and infinities clamped to a large finite value."""
    out = torch.nan_to_num(outputs.detach().to(torch.float64), nan=0.0, posinf=_LOGIT_LIMIT, neginf=-_LOGIT_LIMIT)
    return out.clamp(-_LOGIT_LIMIT, _LOGIT_LIMIT)


@register_decoding("weighted_mean")
def weighted_mean(probabilities: torch.Tensor, points_km: torch.Tensor, top_k: int) -> torch.Tensor:
    """The probability-weighted mean of every class point (the original design); ``top_k`` is unused."""
    return probabilities @ points_km


@register_decoding("geometric_median")
def geometric_median(probabilities: torch.Tensor, points_km: torch.Tensor, top_k: int) -> torch.Tensor:
    """The weighted geometric median of the ``top_k`` most probable class points."""
    k = min(int(top_k), probabilities.shape[1])
    top = probabilities.topk(k, dim=1)
    return weighted_geometric_median(points_km[top.indices], top.values)
