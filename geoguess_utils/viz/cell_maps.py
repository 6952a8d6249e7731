"""Static maps of cells: the grid, its progression, spacings, centroid kinds, error floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.geo import borders
from geoguess_utils.viz.basemap import cell_shapes, draw_croatia, equal_km_axes, new_axes, zoom_to


def plot_grid(cells: pd.DataFrame, title: str | None = None, variant: borders.Variant = "mainland", ax=None):  # noqa: ANN001, ANN201
    """Grid cells over Croatia.

    Args:
        cells: GeoDataFrame from :func:`geoguess_utils.cells.square.build_grid` (or a subset).
        title: Axes title; defaults to the cell count.
        variant: Croatia variant to draw underneath.
        ax: Existing axes to draw on; a new figure is made when ``None``.
    """
    fig, ax = new_axes(ax)
    draw_croatia(ax, variant)
    cells_outline(ax, cells, "#c0392b")
    equal_km_axes(ax)
    ax.set_title(title or f"{len(cells)} cells")
    return fig


def plot_locations(lat: ArrayLike, lon: ArrayLike, title: str = "", colour: str = "#1f77b4", ax=None, size: float = 3):  # noqa: ANN001, ANN201
    """Scatter of locations over Croatia."""
    fig, ax = new_axes(ax)
    draw_croatia(ax)
    ax.scatter(np.asarray(lon), np.asarray(lat), s=size, c=colour, alpha=0.7, linewidths=0)
    equal_km_axes(ax)
    ax.set_title(title)
    return fig


# Figures of the course's chapters on distances, projections and the grid.

KIND_COLOURS = {"geometric": "#7f7f7f", "clipped": "#c0392b", "weighted": "#1f6fb4"}
"""Colour of each centroid kind in every figure."""


def cells_outline(ax, cells, colour: str, linewidth: float = 0.6, fill: str | None = None, alpha: float = 1.0) -> None:  # noqa: ANN001
    """Draw the polygons of ``cells`` (a frame with ``geometry``) on ``ax``, outlined and optionally filled."""
    import geopandas as gpd

    shapes = gpd.GeoSeries(cells.geometry.to_numpy())  # no CRS: geopandas would relabel the axes
    if fill is not None:
        shapes.plot(ax=ax, color=fill, alpha=alpha, linewidth=0, aspect=None)
    shapes.boundary.plot(ax=ax, color=colour, linewidth=linewidth, aspect=None)


def plot_grid_progression(steps, lat: ArrayLike, lon: ArrayLike, point_size: float = 2.0):  # noqa: ANN001, ANN201
    """The five steps from Croatia to classes, side by side.

    1. Croatia; 2. the square grid over its bounding box; 3. the cells that intersect
    Croatia; 4. the cells holding training locations; 5. each class's centroid, moved
    onto land when it falls at sea or abroad.

    Args:
        steps: Output of :func:`geoguess_utils.course.analysis.grid_steps`.
        lat: Training latitudes (degrees) drawn in step 4, shape (N,).
        lon: Training longitudes (degrees), shape (N,).
        point_size: Marker size of the locations.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 5, figsize=(24, 5.6))
    table = steps.class_table
    titles = [
        "1. Croatia (mainland)",
        f"2. Grid of {steps.spacing_deg:g} deg: {len(steps.box_cells)} cells",
        f"3. Intersecting Croatia: {len(steps.intersecting)}",
        f"4. Holding training data: {len(steps.with_data)}",
        f"5. Centroids, clipped to land: {len(table)}",
    ]
    for i, ax in enumerate(axes):
        new_axes(ax)
        draw_croatia(ax, steps.variant)
        zoom_to(ax, steps.box_cells, margin=0.1)
        ax.set_title(titles[i], fontsize=12)
    cells_outline(axes[1], steps.box_cells, "#c0392b", 0.5)
    cells_outline(axes[2], steps.intersecting, "#c0392b", 0.6)
    dropped = steps.intersecting[~steps.intersecting["cell_id"].isin(steps.with_data["cell_id"])]
    cells_outline(axes[3], steps.with_data, "#c0392b", 0.6)
    if len(dropped):
        cells_outline(axes[3], dropped, "#999999", 0.6, fill="#999999", alpha=0.35)
    axes[3].scatter(np.asarray(lon), np.asarray(lat), s=point_size, color="#1f6fb4", alpha=0.6, linewidths=0)
    cells_outline(axes[4], steps.with_data, "#c0392b", 0.6)
    moved = (table["geometric_lat"] != table["clipped_lat"]) | (table["geometric_lon"] != table["clipped_lon"])
    axes[4].scatter(
        table["geometric_lon"][moved], table["geometric_lat"][moved], s=22, facecolors="none", edgecolors="#333333"
    )
    for _, row in table[moved].iterrows():
        axes[4].annotate(
            "",
            xy=(row["clipped_lon"], row["clipped_lat"]),
            xytext=(row["geometric_lon"], row["geometric_lat"]),
            arrowprops={"arrowstyle": "->", "color": "#333333", "linewidth": 0.8},
        )
    axes[4].scatter(table["clipped_lon"], table["clipped_lat"], s=12, color=KIND_COLOURS["clipped"], zorder=3)
    axes[4].legend(
        handles=[
            Line2D([], [], marker="o", linestyle="", color=KIND_COLOURS["clipped"], label="centroid on land"),
            Line2D(
                [], [], marker="o", linestyle="", markerfacecolor="none", color="#333333", label="was at sea/abroad"
            ),
        ],
        loc="lower left",
        fontsize=9,
    )
    if len(dropped):
        axes[3].legend(
            handles=[
                Line2D([], [], marker="s", linestyle="", color="#999999", alpha=0.5, label="no training data: dropped"),
                Line2D([], [], marker="o", linestyle="", color="#1f6fb4", label="training locations"),
            ],
            loc="lower left",
            fontsize=9,
        )
    for i, ax in enumerate(axes):
        equal_km_axes(ax, ylabel=i == 0)
    fig.tight_layout()
    return fig


def plot_grid_spacings(steps_list, ax_size: float = 5.0):  # noqa: ANN001, ANN201
    """The classes and their clipped centroids for several spacings, side by side.

    Args:
        steps_list: Outputs of :func:`geoguess_utils.course.analysis.grid_steps`, one per spacing.
        ax_size: Height of each panel, inches.
    """
    import matplotlib.pyplot as plt

    count = len(steps_list)
    fig, axes = plt.subplots(1, count, figsize=(ax_size * 1.05 * count, ax_size), squeeze=False)
    for ax, steps in zip(axes[0], steps_list, strict=True):
        new_axes(ax)
        draw_croatia(ax, steps.variant)
        cells_outline(ax, steps.with_data, "#c0392b", 0.6)
        table = steps.class_table
        ax.scatter(table["clipped_lon"], table["clipped_lat"], s=10, color=KIND_COLOURS["clipped"], zorder=3)
        ax.set_title(f"{steps.spacing_deg:g} deg: {len(table)} classes")
        equal_km_axes(ax, ylabel=ax is axes[0][0])
    fig.tight_layout()
    return fig


def plot_centroid_kinds(  # noqa: ANN201 - matplotlib Figure
    class_table: pd.DataFrame,
    lat: ArrayLike,
    lon: ArrayLike,
    bounds: tuple[float, float, float, float] | None = None,
    variant: borders.Variant = "mainland",
    ax=None,  # noqa: ANN001
):
    """Geometric, clipped and train-weighted centroids of each class, over the training points.

    Args:
        class_table: The classes with their class points and cells: ``GeoContext.cells_frame()``,
            or a table from :func:`geoguess_utils.cells.square.fit_class_table`.
        lat: Training latitudes, degrees, shape (N,).
        lon: Training longitudes, degrees, shape (N,).
        bounds: ``(lon_min, lat_min, lon_max, lat_max)`` to zoom to; all of Croatia when ``None``.
        variant: Croatia variant drawn underneath.
        ax: Existing axes; a new figure is made when ``None``.
    """
    import geopandas as gpd

    fig, ax = new_axes(ax)
    draw_croatia(ax, variant)
    boxes = gpd.GeoSeries(cell_shapes(class_table))
    boxes.boundary.plot(ax=ax, color="#c0392b", linewidth=0.6, alpha=0.7, aspect=None)
    ax.scatter(np.asarray(lon), np.asarray(lat), s=4, color="#555555", alpha=0.45, linewidths=0, label="training")
    ax.scatter(
        class_table["geometric_lon"],
        class_table["geometric_lat"],
        s=70,
        marker="s",
        facecolors="none",
        edgecolors="#333333",
        linewidths=1.0,
        zorder=4,
        label="geometric",
    )
    ax.scatter(
        class_table["clipped_lon"],
        class_table["clipped_lat"],
        s=22,
        marker="o",
        color=KIND_COLOURS["clipped"],
        zorder=3,
        label="clipped",
    )
    ax.scatter(
        class_table["weighted_lon"],
        class_table["weighted_lat"],
        s=34,
        marker="^",
        color=KIND_COLOURS["weighted"],
        edgecolors="white",
        linewidths=0.5,
        zorder=3,
        label="weighted",
    )
    if bounds is not None:
        ax.set_xlim(bounds[0], bounds[2])
        ax.set_ylim(bounds[1], bounds[3])
    equal_km_axes(ax)
    ax.legend(loc="lower left", fontsize=9)
    ax.set_title("Three kinds of class centroid")
    return fig


def plot_error_floor(floor: pd.DataFrame):  # noqa: ANN201 - matplotlib Figure
    """Mean distance to the class centroid against the number of classes, one panel per point set.

    Args:
        floor: Output of :func:`geoguess_utils.course.analysis.error_floor`.
    """
    import matplotlib.pyplot as plt

    groups = list(floor.groupby("points", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(6.2 * len(groups), 4.8), sharey=True, squeeze=False)
    styles = {
        "geometric": {"marker": "s", "linewidth": 3.0, "markersize": 7, "alpha": 0.6},
        "clipped": {"marker": "o", "linewidth": 1.6, "markersize": 5, "alpha": 1.0},
        "weighted": {"marker": "^", "linewidth": 1.6, "markersize": 6, "alpha": 1.0},
    }
    for ax, (points, part) in zip(axes[0], groups, strict=True):
        part = part.sort_values("n_classes")
        for kind in [k for k in KIND_COLOURS if f"{k}_km" in floor.columns]:
            ax.plot(part["n_classes"], part[f"{kind}_km"], color=KIND_COLOURS[kind], label=kind, **styles[kind])
        ax.set_xscale("log")
        ax.set_xticks(
            part["n_classes"].to_numpy(),
            [f"{n}\n({s:g} deg)" for n, s in zip(part["n_classes"], part["spacing_deg"], strict=True)],
        )
        ax.minorticks_off()
        ax.set_xlabel("number of classes (grid spacing)")
        ax.set_title(f"{points} locations (n = {int(part['n_points'].iloc[0])})")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(title="centroid")
    axes[0][0].set_ylabel("mean distance to the class centroid (km)")
    fig.suptitle("Error floor: the mean error of a classifier that always picks the right class")
    fig.tight_layout()
    return fig
