"""Maps of locations and their density per cell, and of the synthetic generator's densities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geoguess_utils.errors import ConfigError
from geoguess_utils.viz.basemap import cell_shapes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_locations_and_density(lat: np.ndarray, lon: np.ndarray, density: pd.DataFrame, title: str = "") -> Figure:
    """Two maps side by side: every location, and locations per 1,000 km² of each cell.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        density: Output of :func:`cell_density`.
        title: Figure title.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    from geoguess_utils.viz import basemap, cell_maps

    fig, (left, right) = plt.subplots(1, 2, figsize=(13.0, 5.8))
    cell_maps.plot_locations(lat, lon, title=f"{len(lat)} locations", ax=left, size=4)
    right.set_facecolor(basemap.SEA_COLOUR)
    basemap.draw_croatia(right)
    values = density["per_1000_km2"]
    vmax = float(np.nanpercentile(values, 95)) if values.notna().any() else 1.0
    draw_cells(right, density, values.to_numpy(), "viridis", 0.0, vmax, "locations per 1,000 km² of land")
    degree_axes(right)
    min_area = density.attrs.get("min_area_km2")
    blank = f"< {min_area:.0f} km²" if min_area is not None else "too little"
    right.set_title(f"density per cell (cells with {blank} of land left blank)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_density_samples(
    samples: Mapping[str, tuple[np.ndarray, np.ndarray]],
    measures: pd.DataFrame | None = None,
    title: str = "SYNTHETIC locations: the sample generator's two densities",
    size: float = 4.0,
) -> Figure:
    """Synthetic samples drawn with different densities, one map each, side by side.

    Args:
        samples: ``{density name: (lat, lon)}``, arrays of shape (N,) in degrees, e.g.
            :func:`geoguess_utils.course.exploration.draw_densities`.
        measures: Optional :func:`geoguess_utils.course.exploration.compare_densities`
            table; a sample whose name is in its index gets its index of dispersion and
            median distance to a place in its map's title.
        title: Figure title; it should say the locations are synthetic.
        size: Marker size, points².

    Returns:
        The figure, with one axes per sample.

    Raises:
        ConfigError: When ``samples`` is empty.
    """
    import matplotlib.pyplot as plt

    from geoguess_utils.viz import cell_maps

    if not samples:
        raise ConfigError("no sample to map: give at least one {density name: (lat, lon)}")
    fig, axes = plt.subplots(1, len(samples), figsize=(6.5 * len(samples), 6.0), squeeze=False)
    for ax, (name, (lat, lon)) in zip(axes[0], samples.items(), strict=True):
        heading = f"{name}: {len(lat)} SYNTHETIC locations"
        if measures is not None and name in measures.index:
            row = measures.loc[name]
            heading += (
                f"\nindex of dispersion {row['dispersion']:.2f}, "
                f"median {row['median_km_to_place']:.1f} km to the nearest place"
            )
        cell_maps.plot_locations(lat, lon, title=heading, ax=ax, size=size)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def degree_axes(ax) -> None:  # noqa: ANN001
    """Same kilometres per unit along both axes at Croatia's mid latitude, degree labels."""
    ax.set_aspect(1 / np.cos(np.radians(44.5)))
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")


def polygon_patches(shapes: np.ndarray) -> list:
    """One matplotlib patch per (Multi)Polygon, holes included, in lon/lat degrees."""
    import shapely
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    patches = []
    for shape in shapes:
        vertices, codes = [], []
        for part in shapely.get_parts(shape):
            for ring in (part.exterior, *part.interiors):
                xy = np.asarray(ring.coords)
                vertices.append(xy)
                codes.append([Path.MOVETO] + [Path.LINETO] * (len(xy) - 2) + [Path.CLOSEPOLY])
        patches.append(PathPatch(Path(np.concatenate(vertices), np.concatenate(codes))))
    return patches


def draw_cells(ax, cells: pd.DataFrame, values: np.ndarray, cmap: str, vmin: float, vmax: float, label: str) -> None:  # noqa: ANN001
    """Fill the cells' polygons with ``values`` (NaN: outline only) and add a colour bar."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection

    boxes = polygon_patches(cell_shapes(cells))
    has_value = np.isfinite(values)
    filled = PatchCollection(
        [b for b, keep in zip(boxes, has_value, strict=True) if keep], cmap=cmap, alpha=0.8, edgecolor="#444444"
    )
    filled.set_array(np.asarray(values, dtype=float)[has_value])
    filled.set_clim(vmin, max(vmax, vmin + 1e-9))
    filled.set_linewidth(0.4)
    ax.add_collection(filled)
    empty = PatchCollection(
        [b for b, keep in zip(boxes, has_value, strict=True) if not keep],
        facecolor="none",
        edgecolor="#999999",
        linewidth=0.4,
    )
    ax.add_collection(empty)
    plt.colorbar(filled, ax=ax, shrink=0.75, label=label)
