"""The cells frame: classes as polygons, which is all that code outside ``cells`` reads.

:meth:`GeoContext.cells_frame <geoguess_utils.cells.context.GeoContext.cells_frame>`
makes one; :func:`as_cells_frame` also accepts a plain class table written before
cells were polygons (square bounds only) and turns it into one, so maps, figures and
per-cell errors need not know which scheme made the cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from geoguess_utils.errors import DataError

CELL_FRAME_COLUMNS: tuple[str, ...] = ("class_index", "n_train", "geometry")
"""Columns of :meth:`GeoContext.cells_frame`; readers need only ``class_index`` and ``geometry``."""

CELLS_CRS = "EPSG:4326"

SCHEME_ATTR = "cell_scheme"
"""Key of ``frame.attrs`` naming the scheme that made the cells: ``{"name": str, "params": dict}``."""


def as_cells_frame(table: pd.DataFrame):  # noqa: ANN201 - GeoDataFrame
    """The classes of ``table`` as a GeoDataFrame of polygons, sorted by ``class_index``.

    Args:
        table: A cells frame (``class_index`` and a ``geometry`` column of polygons in
            EPSG:4326, e.g. :meth:`GeoContext.cells_frame`), or a class table with
            ``class_index`` and the square scheme's ``lon_min``, ``lat_min``,
            ``lon_max``, ``lat_max`` (the layout before cells were stored as polygons).

    Returns:
        A GeoDataFrame in EPSG:4326 with every column of ``table``, index 0..K-1.

    Raises:
        DataError: When ``table`` is empty, lacks ``class_index``, has repeated class
            indices, has a cell that is not a (Multi)Polygon, or has neither polygons
            nor complete square bounds.
    """
    import geopandas as gpd

    from geoguess_utils.cells import square

    if "class_index" not in table.columns:
        raise DataError(f"the class table lacks the column 'class_index'; it has {list(table.columns)}")
    if table.empty:
        raise DataError("the class table is empty")
    if not table["class_index"].is_unique:
        raise DataError("the class table repeats class indices")
    frame = pd.DataFrame(table).sort_values("class_index").reset_index(drop=True)
    if "geometry" in frame.columns:
        geometry = np.asarray(frame["geometry"].to_numpy(), dtype=object)
        bad = [
            int(k)
            for k, shape in zip(frame["class_index"], geometry, strict=True)
            if not isinstance(shape, (shapely.Polygon, shapely.MultiPolygon)) or shape.is_empty
        ]
        if bad:
            raise DataError(f"the cells of classes {bad[:10]} are not non-empty Polygons or MultiPolygons")
    elif all(c in frame.columns for c in square.BOX_COLUMNS):
        geometry = square.box_polygons(frame)
    else:
        missing = [c for c in square.BOX_COLUMNS if c not in frame.columns]
        raise DataError(
            f"the class table has no cell polygons: it needs a 'geometry' column, or the square bounds "
            f"{list(square.BOX_COLUMNS)} (missing {missing})"
        )
    crs = getattr(table, "crs", None) or CELLS_CRS
    out = gpd.GeoDataFrame(frame.drop(columns="geometry", errors="ignore"), geometry=list(geometry), crs=crs)
    out.attrs.update(table.attrs)
    return out


def _locator(frame: pd.DataFrame, boxes_only: bool):  # noqa: ANN202 - a function (polygons, lat, lon) -> positions
    """The rule placing points in these cells: the making scheme's, the square grid's, or the generic one."""
    from geoguess_utils.cells import square
    from geoguess_utils.cells.scheme import get_scheme, locate_in_polygons

    made_by = frame.attrs.get(SCHEME_ATTR)
    if isinstance(made_by, dict) and "name" in made_by:
        return get_scheme(made_by["name"])(**dict(made_by.get("params", {}))).locate
    if boxes_only:
        return square.SquareScheme().locate
    return locate_in_polygons


def assign_to_cells(cells: pd.DataFrame, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Class index of each point from a cells frame alone (scheme-independent).

    Points go to the cell holding them and to the nearest cell otherwise. The rule is
    the one of the scheme that made the cells when ``cells.attrs`` names it (as
    :meth:`GeoContext.cells_frame` does), the square grid's half-open boxes for a class
    table given by its square bounds, and
    :func:`geoguess_utils.cells.scheme.locate_in_polygons` otherwise.

    Args:
        cells: Output of :func:`as_cells_frame` (or anything it accepts).
        lat: Latitudes, degrees, shape (N,), finite.
        lon: Longitudes, degrees, shape (N,), finite.

    Returns:
        int64 array of shape (N,) of ``class_index`` values.
    """
    from geoguess_utils.cells import square
    from geoguess_utils.cells.scheme import finite_points

    frame = as_cells_frame(cells)
    boxes_only = "geometry" not in cells.columns and all(c in cells.columns for c in square.BOX_COLUMNS)
    lat_a, lon_a = finite_points(lat, lon, "locations to place in cells")
    rows = _locator(frame, boxes_only)(frame.geometry.to_numpy(), lat_a, lon_a)
    return frame["class_index"].to_numpy(dtype=np.int64)[np.asarray(rows, dtype=np.int64)]
