"""Geometry of search regions: areas of cells, their union as GeoJSON, and geodesic discs.

Polygons come and go in lon/lat degrees (EPSG:4326, GeoJSON's order); areas are measured
in a projected CRS (metres) and given in km². Nothing here knows about models or cells'
classes: :mod:`geoguess_utils.tasks.regions` puts the pieces together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geoguess_utils.geo import projection

DISC_VERTICES = 72
"""Vertices of a disc's polygon (one every 5 degrees of azimuth)."""


def polygon_areas_km2(polygons: Sequence[Any], crs: str) -> np.ndarray:
    """Area of each polygon measured in a projected CRS.

    Args:
        polygons: Shapely polygons or multipolygons in lon/lat degrees, length K.
        crs: Projected CRS whose plane measures the areas, e.g. ``"EPSG:3766"``.

    Returns:
        Areas in km², shape (K,) float64.
    """
    import shapely

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = projection.to_projected(coords[:, 1], coords[:, 0], crs)
        return np.column_stack([x, y])

    projected = shapely.transform(np.asarray(list(polygons), dtype=object), project)
    return np.asarray(shapely.area(projected), dtype=np.float64) / 1e6


def union_geojson(polygons: Sequence[Any]) -> dict[str, Any]:
    """The union of polygons as a GeoJSON geometry (``Polygon`` or ``MultiPolygon``, lon/lat degrees).

    Args:
        polygons: Shapely polygons in lon/lat degrees; one or more.
    """
    import shapely
    from shapely.geometry import mapping

    return _plain(mapping(shapely.union_all(np.asarray(list(polygons), dtype=object))))


def disc_area_km2(radius_km: float) -> float:
    """Area of a disc, ``pi r^2`` in km² (flat: not clipped to land or to the border; ``inf`` for ``r = inf``)."""
    return math.pi * float(radius_km) ** 2


def geodesic_disc(lat: float, lon: float, radius_km: float, vertices: int = DISC_VERTICES) -> dict[str, Any]:
    """The points within ``radius_km`` of a centre on the WGS84 ellipsoid, as a GeoJSON ``Polygon``.

    Args:
        lat: Centre latitude, degrees.
        lon: Centre longitude, degrees.
        radius_km: Geodesic radius, km (finite, >= 0).
        vertices: Points on the ring (the ring closes on its first point).

    Returns:
        ``{"type": "Polygon", "coordinates": [[[lon, lat], ...]]}`` in degrees; not clipped to land.
    """
    from pyproj import Geod

    azimuths = np.linspace(0.0, 360.0, vertices, endpoint=False)
    ring_lon, ring_lat, _ = Geod(ellps="WGS84").fwd(
        np.full(vertices, float(lon)), np.full(vertices, float(lat)), azimuths, np.full(vertices, radius_km * 1000.0)
    )
    ring = [[float(x), float(y)] for x, y in zip(ring_lon, ring_lat, strict=True)]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def feature_collection(features: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A GeoJSON ``FeatureCollection`` of ``features``."""
    return {"type": "FeatureCollection", "features": list(features)}


def feature(geometry: dict[str, Any] | None, properties: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON ``Feature`` (``geometry`` ``None`` for a region without bounds)."""
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (what ``json`` writes anyway, and what a GeoJSON reader returns)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
