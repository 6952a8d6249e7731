"""Figures of the pictures themselves: one location's four views, quadruplets side by side.

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` and writes
nothing; save one with :func:`save_figure` (atomic). Views are RGB uint8 arrays of
shape (H, W, 3), keyed by camera heading in degrees (0, 90, 180, 270).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geoguess_utils.viz.basemap import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "HEADING_NAMES",
    "plot_location_views",
    "plot_quadruplets",
    "save_figure",
    "synthetic_samples_figure",
    "write_synthetic_samples_figure",
]

HEADING_NAMES: dict[int, str] = {0: "N", 90: "E", 180: "S", 270: "W"}
"""Compass letter of each camera heading."""

SYNTHETIC_CAPTION = "SYNTHETIC procedural Croatia (drawn from real geography, not photographs)"


def _heading_label(heading: int) -> str:
    return f"{heading}° ({HEADING_NAMES.get(int(heading), '?')})"


def plot_location_views(views: Mapping[int, np.ndarray], title: str | None = None, panel_in: float = 2.4) -> Figure:
    """One location's views in a row, each labelled with its heading.

    Args:
        views: ``{heading: uint8 (H, W, 3)}``, drawn in increasing heading order.
        title: Figure title (e.g. the uuid and coordinates).
        panel_in: Width of one panel, inches.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    headings = sorted(views)
    fig, axes = plt.subplots(1, len(headings), figsize=(panel_in * len(headings), panel_in + 0.5), squeeze=False)
    for ax, heading in zip(axes[0], headings, strict=True):
        ax.imshow(views[heading])
        ax.set_title(_heading_label(heading), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_quadruplets(
    rows: Sequence[tuple[str, Mapping[int, np.ndarray]]], title: str | None = None, panel_in: float = 1.9
) -> Figure:
    """Several locations, one per row, their views in heading order across the columns.

    Args:
        rows: ``(label, {heading: uint8 (H, W, 3)})`` per location; the label is
            written to the left of its row. A heading some location lacks is a "no photo" panel.
        title: Figure title.
        panel_in: Side of one panel, inches.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("plot_quadruplets needs at least one location")
    headings = sorted({heading for _, views in rows for heading in views})
    fig, axes = plt.subplots(
        len(rows), len(headings), figsize=(panel_in * len(headings) + 1.6, panel_in * len(rows) + 0.6), squeeze=False
    )
    for r, (label, views) in enumerate(rows):
        for c, heading in enumerate(headings):
            ax = axes[r, c]
            if heading in views:
                ax.imshow(views[heading])
            else:  # a view this location does not have
                ax.text(0.5, 0.5, "no photo", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(_heading_label(heading), fontsize=10)
            if c == 0:
                ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def synthetic_samples_figure(size: int = 128, seed: int = 0) -> Figure:
    """Synthetic quadruplets at one example point of every landscape zone.

    Args:
        size: Image side in pixels.
        seed: Seed of weather and scenery.

    Returns:
        The figure (see :data:`geoguess_utils.datasets.synthetic.scene.EXAMPLE_PLACES`).
    """
    from geoguess_utils.datasets.synthetic import render

    rows = [(label, views) for label, views in render.render_examples(size=size, seed=seed)]
    return plot_quadruplets(rows, title=SYNTHETIC_CAPTION)


def write_synthetic_samples_figure(path: str | os.PathLike[str], size: int = 128, seed: int = 0) -> Path:
    """Draw :func:`synthetic_samples_figure` and save it at ``path`` (PNG).

    Returns:
        The path written.
    """
    import matplotlib.pyplot as plt

    target = Path(path)
    fig = synthetic_samples_figure(size=size, seed=seed)
    try:
        return save_figure(fig, target)
    finally:
        plt.close(fig)
