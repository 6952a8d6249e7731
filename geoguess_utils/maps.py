"""Static matplotlib maps of Croatia: borders, grid cells, centroids and locations.

Every function returns a :class:`matplotlib.figure.Figure` and writes nothing; save a
figure with :func:`save_figure`, which writes atomically.
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils import borders
from geoguess_utils.io import atomic_write_bytes

LAND_COLOUR = "#e9e4d4"
SEA_COLOUR = "#cfe3f2"
BORDER_COLOUR = "#555555"


def _axes(ax=None, figsize: tuple[float, float] = (7.0, 6.5)):  # noqa: ANN001, ANN202 - matplotlib types
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.figure
    ax.set_facecolor(SEA_COLOUR)
    ax.set_aspect(1 / np.cos(np.radians(44.5)))  # equal km per unit at Croatia's mid latitude
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
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


def plot_grid(cells: pd.DataFrame, title: str | None = None, variant: borders.Variant = "mainland", ax=None):  # noqa: ANN001, ANN201
    """Grid cells over Croatia.

    Args:
        cells: GeoDataFrame from :func:`geoguess_utils.grid.build_grid` (or a subset).
        title: Axes title; defaults to the cell count.
        variant: Croatia variant to draw underneath.
        ax: Existing axes to draw on; a new figure is made when ``None``.
    """
    fig, ax = _axes(ax)
    draw_croatia(ax, variant)
    cells.boundary.plot(ax=ax, color="#c0392b", linewidth=0.6)
    ax.set_title(title or f"{len(cells)} cells")
    return fig


def plot_locations(lat: ArrayLike, lon: ArrayLike, title: str = "", colour: str = "#1f77b4", ax=None, size: float = 3):  # noqa: ANN001, ANN201
    """Scatter of locations over Croatia."""
    fig, ax = _axes(ax)
    draw_croatia(ax)
    ax.scatter(np.asarray(lon), np.asarray(lat), s=size, c=colour, alpha=0.7, linewidths=0)
    ax.set_title(title)
    return fig


def save_figure(fig, path: str | os.PathLike[str], dpi: int = 120) -> Path:  # noqa: ANN001
    """Render ``fig`` to PNG (or the format the suffix names) and write it atomically."""
    buffer = _io.BytesIO()
    suffix = Path(path).suffix.lstrip(".") or "png"
    fig.savefig(buffer, format=suffix, dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())
