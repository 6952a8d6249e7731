"""The base of every static map: Croatia's outline on matplotlib axes, and saving figures."""

from __future__ import annotations

import io as _io
import os
from pathlib import Path
from typing import Any

import numpy as np

from geoguess_utils.geo import borders
from geoguess_utils.io import atomic_write_bytes

LAND_COLOUR = "#e9e4d4"
SEA_COLOUR = "#cfe3f2"
BORDER_COLOUR = "#555555"


def new_axes(ax=None, figsize: tuple[float, float] = (7.0, 6.5)):  # noqa: ANN001, ANN201 - matplotlib types
    """Return ``ax``, or a new figure's axes of ``figsize`` inches when it is ``None``."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    ax.set_facecolor(SEA_COLOUR)
    return fig, ax


def draw_croatia(ax, variant: borders.Variant = "full", neighbours: bool = True) -> None:  # noqa: ANN001
    """Draw Croatia (and, faintly, the surrounding land) on ``ax``."""
    import geopandas as gpd

    if neighbours:
        gpd.GeoSeries([borders.neighbours_land()]).plot(ax=ax, color="#f4f2ec", edgecolor="#bbbbbb", linewidth=0.4)
    gpd.GeoSeries([borders.croatia(variant)]).plot(ax=ax, color=LAND_COLOUR, edgecolor=BORDER_COLOUR, linewidth=0.7)
    lon0, lat0, lon1, lat1 = borders.croatia_bounds("full")
    ax.set_xlim(lon0 - 0.3, lon1 + 0.3)
    ax.set_ylim(lat0 - 0.3, lat1 + 0.3)


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 120) -> Path:  # noqa: ANN001
    """Render ``fig`` to PNG (or the format the suffix names) and write it atomically."""
    buffer = _io.BytesIO()
    suffix = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buffer, format=suffix, dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def equal_km_axes(ax, ylabel: bool = True) -> None:  # noqa: ANN001
    """Equal kilometres per unit at Croatia's mid latitude, and degree labels (geopandas resets both)."""
    ax.set_aspect(1 / np.cos(np.radians(44.5)))
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)" if ylabel else "")


def zoom_to(ax, geometry, margin: float = 0.25) -> None:  # noqa: ANN001
    """Limit ``ax`` to the bounds (degrees) of ``geometry`` plus ``margin`` degrees."""
    lon0, lat0, lon1, lat1 = geometry.total_bounds if hasattr(geometry, "total_bounds") else geometry.bounds
    ax.set_xlim(lon0 - margin, lon1 + margin)
    ax.set_ylim(lat0 - margin, lat1 + margin)


def cell_shapes(cells: Any) -> np.ndarray:
    """The polygon of each row: its ``geometry``, or the box of its square bounds (older tables).

    Args:
        cells: Frame with a ``geometry`` column of shapely polygons (EPSG:4326), or
            with the square scheme's ``lon_min``, ``lat_min``, ``lon_max``, ``lat_max``.

    Returns:
        Object array of shapely polygons, one per row.
    """
    from geoguess_utils.cells import square

    if "geometry" in cells.columns:
        return np.asarray(cells["geometry"].to_numpy(), dtype=object)
    return square.box_polygons(cells)
