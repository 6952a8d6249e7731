"""Haversine label smoothing, drawn: the soft targets around one location over the grid cells.

With plain cross-entropy the target of a location is one-hot: all weight on its own
cell. Haversine label smoothing spreads the weight over the neighbouring cells, decaying
with the great-circle distance from the location to each class point on the scale
``tau`` (km). :func:`smoothing_targets` computes those targets with the loss's own
function; :func:`plot_label_smoothing` draws one panel per ``tau`` and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.viz.basemap import draw_croatia, equal_km_axes, new_axes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from geoguess_utils.cells.context import GeoContext

__all__ = ["MAX_DISTANCE_KM", "TARGET_CMAP", "plot_label_smoothing", "smoothing_targets"]

TARGET_CMAP = "YlOrRd"
"""Colour map of the target weights (pale: none, dark red: all of it)."""

MAX_DISTANCE_KM = 100.0
"""A location further than this from every class point is not one the context was fitted for."""


def _check_location(lat: float, lon: float) -> tuple[float, float]:
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"the location must be two numbers (latitude, longitude) in degrees, got {lat!r}, {lon!r}"
        ) from exc
    if not (np.isfinite(lat) and np.isfinite(lon)):
        raise DataError(f"the location must be finite, got latitude {lat}, longitude {lon}")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise DataError(f"latitude {lat} / longitude {lon} is not a position in degrees")
    return lat, lon


def smoothing_targets(
    context: GeoContext, lat: float, lon: float, taus_km: Sequence[float] = (0.0, 10.0, 25.0)
) -> dict[float, np.ndarray]:
    """The classification targets of one location for several smoothing temperatures.

    ``tau = 0`` is plain cross-entropy: a one-hot vector on the location's class (its
    cell, see :meth:`GeoContext.assign`). Any ``tau > 0`` gives the soft targets of
    :func:`geoguess_utils.geo.soft_targets.haversine_soft_targets` over the context's class
    points, exactly as the loss computes them.

    Args:
        context: Fitted context (its class table and class points).
        lat: Latitude of the location, degrees.
        lon: Longitude of the location, degrees.
        taus_km: Temperatures in km, each ``>= 0``.

    Returns:
        ``{tau: weights}``, each weights array float64 of shape (K,), summing to 1.

    Raises:
        ConfigError: A temperature is negative or not a number, or none is given.
        DataError: The location is not a finite position in degrees, or lies more than
            :data:`MAX_DISTANCE_KM` from every class point.
    """
    import torch

    from geoguess_utils.geo import distance
    from geoguess_utils.geo.soft_targets import haversine_soft_targets

    lat, lon = _check_location(lat, lon)
    taus = [float(t) for t in taus_km]
    if not taus:
        raise ConfigError("give at least one label-smoothing temperature (taus_km)")
    bad = [t for t in taus if not t >= 0]
    if bad:
        raise ConfigError(f"label-smoothing temperatures must be >= 0 km, got {bad}")
    points = torch.as_tensor(context.centroids_latlon(), dtype=torch.float64)
    truth = torch.tensor([[lat, lon]], dtype=torch.float64)
    nearest_km = float(distance.haversine_km(lat, lon, points[:, 0].numpy(), points[:, 1].numpy()).min())
    if nearest_km > MAX_DISTANCE_KM:
        raise DataError(
            f"latitude {lat}, longitude {lon} is {nearest_km:.0f} km from the nearest class point "
            f"(more than {MAX_DISTANCE_KM:g} km): not a location in the context's area "
            "(latitude and longitude swapped?)"
        )
    own = int(context.assign([lat], [lon])[0])
    out: dict[float, np.ndarray] = {}
    for tau in taus:
        if tau == 0:
            weights = np.zeros(context.num_classes)
            weights[own] = 1.0
        else:
            weights = haversine_soft_targets(truth, points, tau)[0].numpy()
        out[tau] = weights
    return out


def _panel_title(tau: float, weights: np.ndarray, own: int) -> str:
    name = "τ = 0: one-hot (plain cross-entropy)" if tau == 0 else f"τ = {tau:g} km"
    share = float(weights[own])
    spread = int(np.count_nonzero(weights >= 0.01))
    return f"{name}\nown cell {share:.0%}, {spread} cell{'s' if spread != 1 else ''} ≥ 1%"


def plot_label_smoothing(
    context: GeoContext,
    lat: float,
    lon: float,
    taus_km: Sequence[float] = (0.0, 10.0, 25.0),
    half_width_deg: float | None = 1.2,
    panel_in: float = 4.2,
) -> Figure:
    """One panel per temperature: each cell coloured by its target weight for one location.

    Args:
        context: Fitted context whose cells and class points are drawn.
        lat: Latitude of the location, degrees.
        lon: Longitude of the location, degrees.
        taus_km: Temperatures in km (``0`` is one-hot); one panel each, in this order.
        half_width_deg: Half the side of the window around the location, degrees;
            ``None`` shows the whole country.
        panel_in: Width of one panel, inches.

    Returns:
        The figure: ``len(taus_km)`` map panels sharing one colour bar (weight 0 to 1, on a
        square-root scale so that the small weights far out stay visible).
        Each panel's cell collection holds the weights in class order (``get_array()``).

    Raises:
        ConfigError: A temperature is negative, or ``half_width_deg`` is not positive.
        DataError: The location is not a finite position in degrees, or is far from every class point.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import PowerNorm

    from geoguess_utils.viz.location_maps import polygon_patches

    if half_width_deg is not None and not half_width_deg > 0:
        raise ConfigError(f"half_width_deg must be positive (or None for the whole country), got {half_width_deg}")
    targets = smoothing_targets(context, lat, lon, taus_km)
    lat, lon = float(lat), float(lon)
    own = int(context.assign([lat], [lon])[0])
    shapes = context.cell_polygons()  # (K,) polygons in class order, whatever the cell scheme
    points = context.centroids_latlon()
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)  # square-root scale: small weights stay visible
    fig, axes = plt.subplots(
        1, len(targets), figsize=(panel_in * len(targets) + 1.0, panel_in + 0.6), squeeze=False, layout="constrained"
    )
    cells = None
    for ax, (tau, weights) in zip(axes[0], targets.items(), strict=True):
        new_axes(ax)
        draw_croatia(ax, context.variant)  # type: ignore[arg-type]
        cells = PatchCollection(
            polygon_patches(shapes),
            cmap=TARGET_CMAP,
            norm=norm,
            alpha=0.85,
            edgecolor="#666666",
            linewidth=0.4,
            zorder=2,
        )
        cells.set_array(weights)
        ax.add_collection(cells)
        ax.scatter(points[:, 1], points[:, 0], s=4, c="#333333", linewidths=0, zorder=3, label="class points")
        ax.scatter([lon], [lat], s=160, marker="*", c="#1f6fb4", edgecolors="white", zorder=4, label="true location")
        equal_km_axes(ax, ylabel=ax is axes[0][0])
        if half_width_deg is not None:
            ax.set_xlim(lon - half_width_deg / np.cos(np.radians(lat)), lon + half_width_deg / np.cos(np.radians(lat)))
            ax.set_ylim(lat - half_width_deg, lat + half_width_deg)
        ax.set_title(_panel_title(tau, weights, own), fontsize=10)
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.colorbar(cells, ax=list(axes[0]), shrink=0.8, label="target weight of the cell (square-root scale)")
    fig.suptitle(f"Classification targets of the location at {lat:.3f}°N, {lon:.3f}°E", fontsize=11)
    return fig
