"""Great-circle distances on a spherical Earth (NumPy and torch alike)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), in kilometres."""

_TINY = 1e-20  # keeps sqrt differentiable where two points coincide


def _is_tensor(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance on a sphere of radius :data:`EARTH_RADIUS_KM`.

    Works element-wise with broadcasting on NumPy arrays, Python floats, or torch
    tensors. With tensors the result stays on the same device and dtype and gradients
    flow, also where both points coincide.

    Args:
        lat1: Latitudes of the first points, degrees, any shape.
        lon1: Longitudes of the first points, degrees, same or broadcastable shape.
        lat2: Latitudes of the second points, degrees.
        lon2: Longitudes of the second points, degrees.

    Returns:
        Distances in kilometres, with the broadcast shape of the inputs: a NumPy
        array (or float) for NumPy input, a tensor when any input is a tensor.
    """
    if any(_is_tensor(v) for v in (lat1, lon1, lat2, lon2)):
        import torch

        ref = next(v for v in (lat1, lon1, lat2, lon2) if _is_tensor(v))
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        lat1, lon1, lat2, lon2 = (torch.as_tensor(v, dtype=dtype, device=ref.device) for v in (lat1, lon1, lat2, lon2))
        phi1, phi2 = torch.deg2rad(lat1), torch.deg2rad(lat2)
        dphi = phi2 - phi1
        dlam = torch.deg2rad(lon2 - lon1)
        a = torch.sin(dphi / 2) ** 2 + torch.cos(phi1) * torch.cos(phi2) * torch.sin(dlam / 2) ** 2
        a = torch.clamp(a, min=_TINY, max=1.0)
        return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(a))
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlam = np.radians(np.subtract(lon2, lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
