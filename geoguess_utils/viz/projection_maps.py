"""Figures of the projection chapter: distance errors and scale error."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.viz.basemap import draw_croatia, equal_km_axes, new_axes

METHOD_COLOURS = {
    "degrees": "#c0392b",
    "cosine_degrees": "#e67e22",
    "chord_3d": "#8e44ad",
    "haversine": "#1f6fb4",
    "projected": "#27ae60",
}
"""Colour of each distance method in every figure."""


def plot_distance_errors(table: pd.DataFrame):  # noqa: ANN201 - matplotlib Figure
    """How far each distance method is from the geodesic, over random pairs in Croatia.

    Left: the absolute relative error of every method (log scale). Right: the signed
    error of Euclidean distance on degrees against the direction of the pair, which
    shows that east-west distances come out far too long.

    Args:
        table: Output of :func:`geoguess_utils.course.analysis.distance_table`.
    """
    import matplotlib.pyplot as plt

    methods = [column.removesuffix("_rel_err") for column in table.columns if column.endswith("_rel_err")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.1, 1]})
    values = [100.0 * table[f"{m}_rel_err"].abs().clip(lower=1e-7).to_numpy() for m in methods]
    try:  # matplotlib >= 3.10 names the direction; older versions only know ``vert``
        parts = left.boxplot(values, orientation="horizontal", whis=(0, 100), patch_artist=True, widths=0.6)
    except TypeError:
        parts = left.boxplot(values, vert=False, whis=(0, 100), patch_artist=True, widths=0.6)
    for patch, method in zip(parts["boxes"], methods, strict=True):
        patch.set_facecolor(METHOD_COLOURS[method])
        patch.set_alpha(0.55)
    left.set_yticks(range(1, len(methods) + 1), [m.replace("_", " ") for m in methods])
    left.set_xscale("log")
    left.set_xlabel("|distance - geodesic| / geodesic  (%)")
    left.set_title(f"Error against the WGS84 geodesic ({len(table)} random pairs)")
    left.grid(axis="x", which="both", alpha=0.3)

    for method in ("degrees", "cosine_degrees"):
        right.scatter(
            table["bearing_deg"],
            100.0 * table[f"{method}_rel_err"],
            s=4,
            alpha=0.5,
            color=METHOD_COLOURS[method],
            label=method.replace("_", " "),
        )
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_xticks([0, 45, 90, 135, 180], ["N-S", "NE-SW", "E-W", "SE-NW", "N-S"])
    right.set_xlabel("direction of the pair")
    right.set_ylabel("(distance - geodesic) / geodesic  (%)")
    right.set_title("Degrees treat a degree of longitude like one of latitude")
    right.legend(markerscale=3, loc="upper left")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_scale_error(lat: ArrayLike, lon: ArrayLike, ppm: ArrayLike, crs: str, ax=None):  # noqa: ANN001, ANN201
    """Map of how much a projected CRS stretches distances, in parts per million.

    Args:
        lat: Latitudes of the sample points, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        ppm: Scale error at each point from :func:`geoguess_utils.course.analysis.scale_error_ppm`.
        crs: Name of the CRS, for the title.
        ax: Existing axes; a new figure is made when ``None``.
    """
    fig, ax = new_axes(ax)
    draw_croatia(ax, "full")
    values = np.asarray(ppm, dtype=np.float64)
    limit = float(np.abs(values).max()) if values.size else 1.0
    dots = ax.scatter(
        np.asarray(lon), np.asarray(lat), c=values, s=9, cmap="RdBu_r", vmin=-limit, vmax=limit, linewidths=0
    )
    equal_km_axes(ax)
    fig.colorbar(dots, ax=ax, shrink=0.8, label="scale error (mm per km)")
    ax.set_title(f"{crs}: projected distance vs true distance")
    return fig
