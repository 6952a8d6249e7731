"""Measurements behind the course's chapters on distances, projections and the grid.

* How wrong each way of measuring distance is across Croatia, against the geodesic on
  the WGS84 ellipsoid (:func:`distance_table`, :func:`distortion_summary`,
  :func:`scale_error_ppm`).
* The grid built step by step (:func:`grid_steps`), the number of cells per spacing
  (:func:`cell_counts`) and the error floor that each spacing and centroid kind puts
  under any classifier (:func:`error_floor`).

Notebooks 02 and 03 first write each of these computations out by hand (NumPy, pyproj,
geopandas, shapely), run it on the course data and check it against the function here,
which the rest of the course then calls.

Functions here compute tables; :mod:`geoguess_utils.viz.projection_maps` and
:mod:`geoguess_utils.viz.cell_maps` draw them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.cells import square
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance, projection

KM_PER_DEGREE = distance.EARTH_RADIUS_KM * math.pi / 180.0
"""Length of one degree of a great circle on the mean-radius sphere, km (about 111.2)."""

DISTANCE_METHODS: tuple[str, ...] = ("degrees", "cosine_degrees", "chord_3d", "haversine", "projected")
"""Ways of measuring distance compared by :func:`distance_table`:

* ``degrees``: Euclidean distance on raw (lat, lon) degrees times :data:`KM_PER_DEGREE`;
* ``cosine_degrees``: the same with longitude differences shrunk by the cosine of the
  pair's mean latitude (an equirectangular approximation);
* ``chord_3d``: straight line through the Earth between the two points on the sphere;
* ``haversine``: great-circle distance on the sphere;
* ``projected``: Euclidean distance between the points projected to a Croatian CRS.
"""

DEFAULT_SPACINGS_DEG: tuple[float, ...] = (0.7, 0.5, 0.4, 0.3, 0.2)
"""Grid spacings the course compares, coarse to fine (notebook 03, sections 2 and 4)."""

FLOOR_KINDS: tuple[str, ...] = ("geometric", "clipped", "weighted")
"""Centroid kinds in the order the course introduces them (notebook 03, sections 3 and 4)."""


def sample_pairs(n_pairs: int, rng: np.random.Generator, variant: borders.Variant = "mainland") -> pd.DataFrame:
    """Random pairs of points, each point uniform by area inside Croatia.

    Used in notebook 02, section 3 ('How wrong is each method across Croatia?').

    Args:
        n_pairs: Number of pairs, >= 1.
        rng: Source of randomness.
        variant: Which Croatia the points lie in.

    Returns:
        DataFrame with columns ``lat1``, ``lon1``, ``lat2``, ``lon2`` (degrees), ``n_pairs`` rows.
    """
    if n_pairs < 1:
        raise ConfigError(f"need at least one pair, got {n_pairs}")
    lat, lon = borders.sample_points(2 * n_pairs, rng, variant)
    return pd.DataFrame({"lat1": lat[:n_pairs], "lon1": lon[:n_pairs], "lat2": lat[n_pairs:], "lon2": lon[n_pairs:]})


def _chord_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Straight-line distance through the sphere between two points, km."""

    def unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        phi, lam = np.radians(lat), np.radians(lon)
        return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)

    return distance.EARTH_RADIUS_KM * np.linalg.norm(unit(lat1, lon1) - unit(lat2, lon2), axis=-1)


def distance_table(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike, crs: str = projection.DEFAULT_CRS
) -> pd.DataFrame:
    """Distance between point pairs by every method in :data:`DISTANCE_METHODS`, against the geodesic.

    Used in notebook 02, sections 2 ('The haversine formula') and 3 ('How wrong is each method
    across Croatia?'), which first compute each method by hand (NumPy, pyproj) and check the result
    against this table.

    The reference is the geodesic on the WGS84 ellipsoid (``pyproj.Geod``), accurate to
    well under a millimetre.

    Args:
        lat1: Latitudes of the first points, degrees, shape (N,).
        lon1: Longitudes of the first points, degrees, shape (N,).
        lat2: Latitudes of the second points, degrees, shape (N,).
        lon2: Longitudes of the second points, degrees, shape (N,).
        crs: Projected CRS of the ``projected`` method.

    Returns:
        One row per pair: the coordinates, ``bearing_deg`` (direction of the line from
        the first point, 0 = north, 90 = east, folded into [0, 180)), ``geodesic_km``,
        and for each method ``<method>_km`` and ``<method>_rel_err`` (signed relative
        error ``(d - geodesic) / geodesic``; NaN where the points coincide).

    Raises:
        DataError: On non-finite coordinates or arrays of different lengths.
    """
    from pyproj import Geod

    arrays = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2)]
    if len({a.shape for a in arrays}) != 1:
        raise DataError(f"point pairs have different shapes: {[a.shape for a in arrays]}")
    if not all(np.isfinite(a).all() for a in arrays):
        raise DataError("point pairs contain non-finite coordinates")
    la1, lo1, la2, lo2 = arrays
    azimuth, _, geodesic_m = Geod(ellps="WGS84").inv(lo1, la1, lo2, la2)
    geodesic_km = np.asarray(geodesic_m) / 1000.0

    mean_lat = np.radians((la1 + la2) / 2.0)
    x1, y1 = projection.to_projected(la1, lo1, crs)
    x2, y2 = projection.to_projected(la2, lo2, crs)
    methods = {
        "degrees": np.hypot(la2 - la1, lo2 - lo1) * KM_PER_DEGREE,
        "cosine_degrees": np.hypot(la2 - la1, (lo2 - lo1) * np.cos(mean_lat)) * KM_PER_DEGREE,
        "chord_3d": _chord_km(la1, lo1, la2, lo2),
        "haversine": np.asarray(distance.haversine_km(la1, lo1, la2, lo2)),
        "projected": np.hypot(x2 - x1, y2 - y1) / 1000.0,
    }
    table = pd.DataFrame(
        {"lat1": la1, "lon1": lo1, "lat2": la2, "lon2": lo2, "bearing_deg": np.mod(np.asarray(azimuth), 180.0)}
    )
    table["geodesic_km"] = geodesic_km
    safe = np.where(geodesic_km > 0, geodesic_km, np.nan)
    for name, km in methods.items():
        table[f"{name}_km"] = km
        table[f"{name}_rel_err"] = (km - geodesic_km) / safe
    return table


def distortion_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Summarise :func:`distance_table` per method.

    Used in notebook 02, section 3 ('How wrong is each method across Croatia?'), checked there
    against the relative errors computed by hand.

    Args:
        table: Output of :func:`distance_table`.

    Returns:
        One row per method (index ``method``) with ``mean_abs_err_pct`` and
        ``max_abs_err_pct`` (relative errors in percent), ``mean_abs_err_km`` and
        ``max_abs_err_km``, sorted from worst to best mean relative error.
    """
    rows = []
    for name in DISTANCE_METHODS:
        rel = table[f"{name}_rel_err"].abs()
        err_km = (table[f"{name}_km"] - table["geodesic_km"]).abs()
        rows.append(
            {
                "method": name,
                "mean_abs_err_pct": 100.0 * float(rel.mean()),
                "max_abs_err_pct": 100.0 * float(rel.max()),
                "mean_abs_err_km": float(err_km.mean()),
                "max_abs_err_km": float(err_km.max()),
            }
        )
    summary = pd.DataFrame(rows).set_index("method")
    return summary.sort_values("mean_abs_err_pct", ascending=False)


def scale_error_ppm(lat: ArrayLike, lon: ArrayLike, crs: str = projection.DEFAULT_CRS) -> np.ndarray:
    """How much a projected CRS stretches short distances at each point, in parts per million.

    Used in notebook 02, section 4 ('The Croatia CRS: EPSG:3766'), checked there against the stretch
    measured by hand over steps of about 111 m.

    A conformal projection (both Croatian CRSs are) stretches every direction at a point
    by the same scale factor ``k``; a short distance measured in projected metres is
    ``k`` times the true one. The result is ``(k - 1) * 1e6``: +100 means 100 mm too
    long per km.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        crs: ``"EPSG:3766"`` or ``"EPSG:3765"``.

    Returns:
        float64 array of shape (N,).
    """
    from pyproj import Proj

    if crs not in projection.SUPPORTED_CRS:
        raise ConfigError(f"unsupported CRS {crs!r}; choose one of {', '.join(projection.SUPPORTED_CRS)}")
    factors = Proj(crs).get_factors(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return (np.asarray(factors.meridional_scale, dtype=np.float64) - 1.0) * 1e6


@dataclass
class GridSteps:
    """The five stages of turning Croatia into classes, for one spacing.

    Returned by :func:`grid_steps` (notebook 03, sections 1 and 2).

    Attributes:
        spacing_deg: Cell side, degrees.
        variant: Croatia variant the grid is built on.
        land: The variant's geometry (lon/lat degrees).
        box_cells: GeoDataFrame of every cell of the bounding box (``cell_id``, ``geometry``).
        intersecting: Cells that intersect Croatia (:func:`geoguess_utils.cells.square.build_grid`).
        with_data: The intersecting cells holding at least one training location, with ``n_train``.
        class_table: Classes with their centroids (:func:`geoguess_utils.cells.square.fit_class_table`).
    """

    spacing_deg: float
    variant: str
    land: Any
    box_cells: Any
    intersecting: Any
    with_data: Any
    class_table: pd.DataFrame


def grid_steps(
    train_lat: ArrayLike,
    train_lon: ArrayLike,
    spacing_deg: float = 0.3,
    variant: borders.Variant = "mainland",
    crs: str = projection.DEFAULT_CRS,
) -> GridSteps:
    """Build the grid and the classes, keeping every intermediate stage.

    Used in notebook 03, section 1 ('From Croatia to classes, in five steps'), after the same five
    steps taken by hand with geopandas, shapely and pyproj (checked against its stages and class
    table), and in section 2 ('How many classes?') for the figure of three spacings.

    Args:
        train_lat: Training latitudes, degrees, shape (N,).
        train_lon: Training longitudes, degrees, shape (N,).
        spacing_deg: Cell side, degrees.
        variant: Croatia variant.
        crs: Projected CRS for centroids.
    """
    cells = square.build_grid(spacing_deg, variant)
    table = square.fit_class_table(cells, train_lat, train_lon, crs, variant)
    counts = table.set_index("cell_id")["n_train"]
    with_data = cells[cells["cell_id"].isin(counts.index)].copy()
    with_data["n_train"] = with_data["cell_id"].map(counts).to_numpy()
    return GridSteps(
        spacing_deg=float(spacing_deg),
        variant=variant,
        land=borders.croatia(variant),
        box_cells=square.box_cells(spacing_deg, variant),
        intersecting=cells,
        with_data=with_data.reset_index(drop=True),
        class_table=table,
    )


def cell_counts(
    spacings: Iterable[float] = DEFAULT_SPACINGS_DEG,
    train_lat: ArrayLike | None = None,
    train_lon: ArrayLike | None = None,
    variant: borders.Variant = "mainland",
) -> pd.DataFrame:
    """How many cells each spacing gives, and how many of them become classes.

    Used in notebook 03, section 2 ('How many classes?').

    Args:
        spacings: Cell sides, degrees.
        train_lat: Training latitudes (degrees), or ``None`` to count cells only.
        train_lon: Training longitudes (degrees).
        variant: Croatia variant.

    Returns:
        One row per spacing: ``spacing_deg``, ``n_box_cells`` (the whole bounding box),
        ``n_cells`` (cells intersecting Croatia) and, with training locations,
        ``n_classes`` (cells holding at least one), ``min_train`` and ``median_train``
        (training locations per class).
    """
    rows = []
    for spacing in spacings:
        cells = square.build_grid(spacing, variant)
        row: dict[str, float | int] = {
            "spacing_deg": float(spacing),
            "n_box_cells": len(square.box_cells(spacing, variant)),
            "n_cells": len(cells),
        }
        if train_lat is not None and train_lon is not None:
            per_class = square.fit_class_table(cells, train_lat, train_lon, variant=variant)["n_train"]
            row.update(
                n_classes=len(per_class),
                min_train=int(per_class.min()),
                median_train=float(per_class.median()),
            )
        rows.append(row)
    return pd.DataFrame(rows)


def centroid_distances(class_table: pd.DataFrame, lat: ArrayLike, lon: ArrayLike) -> pd.DataFrame:
    """Distance from each location to the centroid of its class, for every centroid kind.

    Used by :func:`error_floor` (notebook 03, section 4 'The error floor') and by
    :func:`geoguess_utils.course.schemes.compare_schemes` (notebook 03, section 5).

    This is the error a classifier makes on a location when it picks the right class
    and predicts that class's centroid.

    Args:
        class_table: The classes with their class points and cells: ``GeoContext.cells_frame()``
            of any scheme, or the output of :func:`geoguess_utils.cells.square.fit_class_table`.
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).

    Returns:
        One row per location: ``class_index`` and ``<kind>_km`` for each kind in
        :data:`FLOOR_KINDS`.
    """
    from geoguess_utils.cells import frame as cell_frames

    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    classes = cell_frames.assign_to_cells(class_table, lat_a, lon_a)  # checks shapes and finiteness
    by_class = class_table.set_index("class_index").loc[classes]
    out = pd.DataFrame({"class_index": classes})
    for kind in FLOOR_KINDS:
        c_lat = by_class[f"{kind}_lat"].to_numpy()
        c_lon = by_class[f"{kind}_lon"].to_numpy()
        out[f"{kind}_km"] = distance.haversine_km(lat_a, lon_a, c_lat, c_lon)
    return out


def error_floor(
    train_lat: ArrayLike,
    train_lon: ArrayLike,
    spacings: Iterable[float] = DEFAULT_SPACINGS_DEG,
    eval_lat: ArrayLike | None = None,
    eval_lon: ArrayLike | None = None,
    variant: borders.Variant = "mainland",
    crs: str = projection.DEFAULT_CRS,
) -> pd.DataFrame:
    """Mean error of a perfect classifier, per spacing and centroid kind.

    Used in notebook 03, section 4 ('The error floor'), checked there against the floor computed by
    hand for the spacing of section 1.

    A classifier that always picks the right cell still predicts the cell's centroid,
    not the location; the mean distance between the two is a floor under its error.

    Args:
        train_lat: Training latitudes, degrees, shape (N,); the classes and the weighted
            centroids are fitted on these only.
        train_lon: Training longitudes, degrees, shape (N,).
        spacings: Cell sides, degrees.
        eval_lat: Held-out latitudes (degrees) to measure the floor on as well, or ``None``.
        eval_lon: Held-out longitudes (degrees).
        variant: Croatia variant.
        crs: Projected CRS for centroids.

    Returns:
        One row per spacing and point set (``points`` is ``"train"`` or ``"held-out"``):
        ``spacing_deg``, ``n_classes``, ``points``, ``n_points``, and ``<kind>_km``, the
        mean distance in km to each kind of centroid.
    """
    sets = [("train", train_lat, train_lon)]
    if eval_lat is not None and eval_lon is not None:
        sets.append(("held-out", eval_lat, eval_lon))
    rows = []
    for spacing in spacings:
        table = square.fit_class_table(square.build_grid(spacing, variant), train_lat, train_lon, crs, variant)
        for name, lat, lon in sets:
            dist = centroid_distances(table, lat, lon)
            row: dict[str, float | int | str] = {
                "spacing_deg": float(spacing),
                "n_classes": len(table),
                "points": name,
                "n_points": len(dist),
            }
            row.update({f"{kind}_km": float(dist[f"{kind}_km"].mean()) for kind in FLOOR_KINDS})
            rows.append(row)
    return pd.DataFrame(rows)
