"""Square grid over Croatia and the class table a classifier predicts over.

The seed's recipe, step by step:

1. lay square cells of ``spacing_deg`` degrees over Croatia's bounding box, anchored
   at its lower-left corner (:func:`build_grid`);
2. keep the cells that intersect Croatia;
3. keep only cells that hold at least one *training* location (:func:`fit_class_table`);
4. give each kept cell a representative point: the centroid of the cell's part of
   Croatia (``geometric``), that centroid moved onto land when it falls at sea or
   abroad (``clipped``), and the mean training position in the cell (``weighted``);
5. give every location the class of the kept cell it falls in, or of the nearest kept
   cell when it falls in none (:func:`assign_classes`).

The same grid is the ``square`` cell scheme (:class:`SquareScheme`), which is how a
:class:`~geoguess_utils.cells.context.GeoContext` uses it; the functions above stay as
the course's step-by-step version of the recipe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from geoguess_utils.cells.scheme import CellScheme, class_points, finite_points, register_scheme
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, projection

BOX_COLUMNS: tuple[str, ...] = ("lon_min", "lat_min", "lon_max", "lat_max")
"""Bounds of a square cell, degrees: the columns the square scheme adds to a class table."""

CLASS_TABLE_COLUMNS = (
    "class_index",
    "cell_id",
    "lon_min",
    "lat_min",
    "lon_max",
    "lat_max",
    "n_train",
    "geometric_lat",
    "geometric_lon",
    "clipped_lat",
    "clipped_lon",
    "weighted_lat",
    "weighted_lon",
)


def box_cells(spacing_deg: float, variant: borders.Variant = "mainland"):  # noqa: ANN201 - GeoDataFrame
    """Every cell of the square grid over Croatia's bounding box, kept or not.

    Cells are anchored at the lower-left corner of the variant's bounds and numbered
    row by row from there, so a cell's ``cell_id`` is the same here and in
    :func:`build_grid`.

    Args:
        spacing_deg: Cell side in degrees (both latitude and longitude), > 0.
        variant: Croatia variant whose bounding box is covered.

    Returns:
        GeoDataFrame in EPSG:4326, one row per cell, with columns ``cell_id``,
        ``col``, ``row``, ``lon_min``, ``lat_min``, ``lon_max``, ``lat_max`` and the
        cell polygon as ``geometry``. ``attrs`` holds ``spacing_deg``, ``variant`` and
        the anchor ``origin_lon``/``origin_lat``.
    """
    import geopandas as gpd

    if not spacing_deg > 0:
        raise ConfigError(f"grid spacing must be positive, got {spacing_deg}")
    lon0, lat0, lon1, lat1 = borders.croatia(variant).bounds
    n_cols = int(np.ceil((lon1 - lon0) / spacing_deg))
    n_rows = int(np.ceil((lat1 - lat0) / spacing_deg))
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    lon_min = lon0 + cols * spacing_deg
    lat_min = lat0 + rows * spacing_deg
    frame = gpd.GeoDataFrame(
        {
            "cell_id": rows * n_cols + cols,
            "col": cols,
            "row": rows,
            "lon_min": lon_min,
            "lat_min": lat_min,
            "lon_max": lon_min + spacing_deg,
            "lat_max": lat_min + spacing_deg,
        },
        geometry=_boxes(lon_min, lat_min, lon_min + spacing_deg, lat_min + spacing_deg),
        crs="EPSG:4326",
    )
    frame.attrs.update(spacing_deg=float(spacing_deg), variant=variant, origin_lon=lon0, origin_lat=lat0)
    return frame


def _boxes(lon_min: ArrayLike, lat_min: ArrayLike, lon_max: ArrayLike, lat_max: ArrayLike) -> np.ndarray:
    """Axis-aligned boxes whose ring runs counter-clockwise from the south-west corner.

    Args:
        lon_min: West edges, degrees, shape (K,).
        lat_min: South edges, degrees, shape (K,).
        lon_max: East edges, degrees, shape (K,).
        lat_max: North edges, degrees, shape (K,).

    Returns:
        Object array of K shapely polygons.
    """
    x0, y0, x1, y1 = (np.asarray(v, dtype=np.float64).ravel() for v in (lon_min, lat_min, lon_max, lat_max))
    ring = np.stack([np.column_stack(corner) for corner in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))], axis=1)
    return np.asarray(shapely.polygons(ring), dtype=object)


def build_grid(spacing_deg: float, variant: borders.Variant = "mainland"):  # noqa: ANN201 - GeoDataFrame
    """Square cells of ``spacing_deg`` degrees that intersect Croatia.

    Args:
        spacing_deg: Cell side in degrees (both latitude and longitude), > 0.
        variant: Which Croatia the cells must intersect (``"mainland"`` or ``"full"``).

    Returns:
        The rows of :func:`box_cells` whose cell intersects the variant, same columns
        and ``attrs``, re-indexed from 0.
    """
    cells = box_cells(spacing_deg, variant)
    kept = cells[shapely.intersects(borders.croatia(variant), cells.geometry.values)].reset_index(drop=True)
    kept.attrs.update(cells.attrs)
    return kept


def _cell_index(boxes: pd.DataFrame, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Row of ``boxes`` holding each point (half-open cells), nearest row when in none.

    Args:
        boxes: Frame with ``lon_min``, ``lat_min``, ``lon_max``, ``lat_max`` (K rows).
        lat: Latitudes, degrees, shape (N,), finite.
        lon: Longitudes, degrees, shape (N,), finite.

    Returns:
        Row positions, int64 array of shape (N,).
    """
    bounds = np.column_stack([boxes[c].to_numpy(dtype=np.float64) for c in BOX_COLUMNS])
    return _box_index(bounds, lat, lon)


def _box_index(bounds: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Box holding each point (half-open), nearest box when in none.

    Args:
        bounds: ``[lon_min, lat_min, lon_max, lat_max]`` per box, degrees, shape (K, 4).
        lat: Latitudes, degrees, shape (N,), finite.
        lon: Longitudes, degrees, shape (N,), finite.

    Returns:
        Box positions, int64 array of shape (N,).
    """
    lo_x = bounds[None, :, 0]
    lo_y = bounds[None, :, 1]
    hi_x = bounds[None, :, 2]
    hi_y = bounds[None, :, 3]
    out = np.empty(len(lat), dtype=np.int64)
    chunk = 4096
    for start in range(0, len(lat), chunk):
        la = lat[start : start + chunk, None]
        lo = lon[start : start + chunk, None]
        # Distance to each box in degrees, longitude shrunk by cos(lat); zero inside.
        dx = np.maximum(np.maximum(lo_x - lo, lo - hi_x), 0.0) * np.cos(np.radians(la))
        dy = np.maximum(np.maximum(lo_y - la, la - hi_y), 0.0)
        inside = (lo >= lo_x) & (lo < hi_x) & (la >= lo_y) & (la < hi_y)
        dist = np.where(inside, -1.0, np.hypot(dx, dy))
        out[start : start + chunk] = np.argmin(dist, axis=1)
    return out


def fit_class_table(
    grid: pd.DataFrame,
    train_lat: ArrayLike,
    train_lon: ArrayLike,
    crs: str = projection.DEFAULT_CRS,
    variant: borders.Variant = "mainland",
) -> pd.DataFrame:
    """Turn grid cells into classes using training locations only.

    Args:
        grid: Output of :func:`build_grid`.
        train_lat: Latitudes of the training locations, degrees, shape (N,), N >= 1.
        train_lon: Longitudes of the training locations, degrees, shape (N,).
        crs: Projected CRS in which centroids and means are computed.
        variant: Which Croatia counts as land for clipping.

    Returns:
        DataFrame with the columns in :data:`CLASS_TABLE_COLUMNS`, one row per cell
        that holds at least one training location, ``class_index`` 0..K-1 in
        ``cell_id`` order.
    """
    lat, lon = finite_points(train_lat, train_lon, "training locations")
    if lat.size == 0:
        raise DataError("cannot build classes from an empty training split")
    which = _cell_index(grid, lat, lon)
    counts = np.bincount(which, minlength=len(grid))
    kept = grid.iloc[np.flatnonzero(counts)].copy()
    kept["n_train"] = counts[counts > 0]

    # the three class points, computed as every scheme computes them
    pos = np.searchsorted(kept.index.to_numpy(), which)
    points = class_points(kept.geometry.values, pos, lat, lon, crs, variant)
    n = points["n_train"].to_numpy()

    table = pd.DataFrame(
        {
            "class_index": np.arange(len(kept), dtype=np.int64),
            "cell_id": kept["cell_id"].to_numpy(dtype=np.int64),
            "lon_min": kept["lon_min"].to_numpy(),
            "lat_min": kept["lat_min"].to_numpy(),
            "lon_max": kept["lon_max"].to_numpy(),
            "lat_max": kept["lat_max"].to_numpy(),
            "n_train": n.astype(np.int64),
            "geometric_lat": points["geometric_lat"].to_numpy(),
            "geometric_lon": points["geometric_lon"].to_numpy(),
            "clipped_lat": points["clipped_lat"].to_numpy(),
            "clipped_lon": points["clipped_lon"].to_numpy(),
            "weighted_lat": points["weighted_lat"].to_numpy(),
            "weighted_lon": points["weighted_lon"].to_numpy(),
        }
    )
    return table


def assign_classes(class_table: pd.DataFrame, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Class index of each location: its kept cell, or the nearest kept cell.

    Args:
        class_table: Output of :func:`fit_class_table`.
        lat: Latitudes, degrees, shape (N,), finite.
        lon: Longitudes, degrees, shape (N,), finite.

    Returns:
        int64 array of shape (N,) with values in ``[0, K)``; each location gets
        exactly one class (cells are half-open, so a point on an edge is not shared).
    """
    lat_a, lon_a = finite_points(lat, lon, "locations to classify")
    rows = _cell_index(class_table, lat_a, lon_a)
    return class_table["class_index"].to_numpy(dtype=np.int64)[rows]


def box_polygons(table: pd.DataFrame) -> np.ndarray:
    """The square cell of each row of a frame with :data:`BOX_COLUMNS`, as shapely polygons.

    Args:
        table: K rows with ``lon_min``, ``lat_min``, ``lon_max``, ``lat_max`` (degrees),
            e.g. a class table written before cells were stored as polygons.

    Returns:
        Object array of K shapely boxes in EPSG:4326.

    Raises:
        DataError: When a bound column is missing or a box is empty or not finite.
    """
    missing = [c for c in BOX_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"square cells need the columns {list(BOX_COLUMNS)}; missing {missing}")
    bounds = np.column_stack([pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=np.float64) for c in BOX_COLUMNS])
    bad = np.flatnonzero(
        ~np.isfinite(bounds).all(axis=1) | (bounds[:, 2] <= bounds[:, 0]) | (bounds[:, 3] <= bounds[:, 1])
    )
    if bad.size:
        raise DataError(f"square cells at rows {bad[:10].tolist()} have non-finite or empty bounds")
    return _boxes(bounds[:, 0], bounds[:, 1], bounds[:, 2], bounds[:, 3])


@register_scheme("square")
class SquareScheme(CellScheme):
    """Square cells of ``spacing_deg`` degrees: the seed's grid as a cell scheme.

    Gives exactly the classes, class points and assignments of :func:`build_grid`,
    :func:`fit_class_table` and :func:`assign_classes`: cells are half-open boxes and
    a point outside every kept box goes to the nearest one (distance in degrees with
    longitude shrunk by ``cos(lat)``). Its class table carries :data:`BOX_COLUMNS`.
    """

    def __init__(self, spacing_deg: float = 0.3) -> None:
        """Square cells of ``spacing_deg`` degrees (> 0) on a side."""
        super().__init__()
        try:
            spacing = float(spacing_deg)
        except (TypeError, ValueError):
            raise ConfigError(f"grid spacing must be a number, got {spacing_deg!r}") from None
        if not spacing > 0:
            raise ConfigError(f"grid spacing must be positive, got {spacing_deg}")
        self.spacing_deg = spacing

    def params(self) -> dict[str, float]:
        """``{"spacing_deg": float}``."""
        return {"spacing_deg": self.spacing_deg}

    def build_cells(
        self, train_lat: np.ndarray, train_lon: np.ndarray, variant: borders.Variant
    ) -> tuple[np.ndarray, np.ndarray]:
        """The cells of :func:`build_grid` (they do not depend on the training points)."""
        grid = build_grid(self.spacing_deg, variant)
        return grid.geometry.to_numpy(), grid["cell_id"].to_numpy(dtype=np.int64)

    def locate(self, polygons: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Half-open box holding each point, nearest box when none does (as :func:`assign_classes`)."""
        return _box_index(shapely.bounds(np.asarray(polygons, dtype=object)), lat, lon)

    def cell_columns(self, polygons: np.ndarray) -> dict[str, np.ndarray]:
        """The bounds of each cell: ``lon_min``, ``lat_min``, ``lon_max``, ``lat_max``, degrees."""
        bounds = shapely.bounds(np.asarray(polygons, dtype=object))
        return {name: bounds[:, i] for i, name in enumerate(BOX_COLUMNS)}

    def set_cells(self, polygons: ArrayLike, cell_ids: ArrayLike) -> None:
        """Hold these cells, which must be axis-aligned boxes (the half-open rule reads their bounds)."""
        super().set_cells(polygons, cell_ids)
        shapes = self.polygons
        not_box = np.flatnonzero(~shapely.equals(shapes, shapely.envelope(shapes)))
        if not_box.size:
            self._polygons = self._cell_ids = None
            raise DataError(f"square cells at positions {not_box[:10].tolist()} are not axis-aligned boxes")
