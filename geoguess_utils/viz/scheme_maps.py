"""Maps of cell schemes side by side: each scheme's cells, class points and training locations."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from geoguess_utils.viz.basemap import draw_croatia, equal_km_axes, new_axes
from geoguess_utils.viz.cell_maps import KIND_COLOURS, cells_outline


def plot_schemes(contexts, train_lat: ArrayLike, train_lon: ArrayLike, ax_size: float = 4.5):  # noqa: ANN001, ANN201
    """One panel per fitted scheme: its cells (shaded by training count), weighted class points and the data.

    Args:
        contexts: Scheme name -> fitted :class:`~geoguess_utils.cells.context.GeoContext`
            (e.g. :func:`geoguess_utils.course.schemes.fit_schemes`).
        train_lat: Training latitudes, degrees, shape (N,).
        train_lon: Training longitudes, degrees, shape (N,).
        ax_size: Height of each panel, inches.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    count = len(contexts)
    fig, axes = plt.subplots(1, count, figsize=(ax_size * 1.1 * count, ax_size), squeeze=False)
    for ax, (name, context) in zip(axes[0], contexts.items(), strict=True):
        new_axes(ax)
        draw_croatia(ax, context.variant)
        frame = context.cells_frame()
        shares = frame["n_train"].to_numpy(dtype=np.float64)
        frame.assign(share=shares / shares.max()).plot(
            ax=ax, column="share", cmap="Blues", alpha=0.5, linewidth=0, aspect=None, vmin=0.0, vmax=1.0
        )
        cells_outline(ax, frame, "#c0392b", 0.5)
        ax.scatter(np.asarray(train_lon), np.asarray(train_lat), s=1.0, c="#333333", alpha=0.4, linewidths=0)
        ax.scatter(frame["weighted_lon"], frame["weighted_lat"], s=8, color=KIND_COLOURS["weighted"], zorder=3)
        ax.set_title(f"{name}: {context.num_classes} classes")
        equal_km_axes(ax, ylabel=ax is axes[0][0])
    fig.tight_layout()
    return fig
