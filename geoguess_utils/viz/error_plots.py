"""Figures of prediction errors: their distribution and their mean per cell."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geoguess_utils import evaluation
from geoguess_utils.evaluation import Predictions
from geoguess_utils.viz.location_maps import degree_axes, draw_cells

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_error_distribution(runs: Mapping[str, Predictions | pd.DataFrame], max_km: float | None = None) -> Figure:
    """Histogram of the errors and the share of locations within each distance, per model.

    Args:
        runs: ``{model name: predictions}``.
        max_km: Right end of both panels; the largest error by default.

    Returns:
        The figure (two panels).
    """
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no predictions to plot")
    tables = {name: p.table if isinstance(p, Predictions) else p for name, p in runs.items()}
    top = max_km or max(float(t["error_km"].max()) for t in tables.values())
    bins = np.linspace(0.0, top, 31)
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    for name, table in tables.items():
        errors = np.sort(table["error_km"].to_numpy(dtype=np.float64))
        hist.hist(errors, bins=bins, histtype="step", linewidth=1.8, label=f"{name} (mean {errors.mean():.0f} km)")
        share = np.arange(1, len(errors) + 1) / len(errors)
        cdf.step(errors, share, where="post", linewidth=1.8, label=name)
    for threshold in evaluation.THRESHOLDS_KM:
        if 0.02 * top <= threshold <= top:  # a line hugging the axis would say nothing
            cdf.axvline(threshold, color="#888888", linestyle=":", linewidth=1)
            cdf.text(threshold, 1.01, f"{threshold} km", ha="center", va="bottom", fontsize=8, color="#555555")
    hist.set_xlabel("error (km)")
    hist.set_ylabel("locations")
    hist.set_title("error distribution")
    hist.legend()
    cdf.set_xlim(0, top)
    cdf.set_ylim(0, 1.0)
    cdf.set_xlabel("distance (km)")
    cdf.set_ylabel("share of locations within the distance")
    cdf.set_title("cumulative share", pad=16)
    cdf.legend(loc="lower right")
    for ax in (hist, cdf):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_cell_errors(cells: Mapping[str, pd.DataFrame], vmax_km: float | None = None) -> Figure:
    """Maps of the grid cells coloured by the mean error of the locations inside them, one per model.

    Args:
        cells: ``{model name: output of per_cell_errors}``.
        vmax_km: Top of the shared colour scale; the largest cell mean by default.

    Returns:
        The figure, one map per model on one colour scale.
    """
    import matplotlib.pyplot as plt

    from geoguess_utils.viz import basemap

    if not cells:
        raise ValueError("no cell errors to plot")
    means = np.concatenate([c["mean_error_km"].to_numpy(dtype=np.float64) for c in cells.values()])
    top = vmax_km or (float(np.nanmax(means)) if np.isfinite(means).any() else 1.0)
    fig, axes = plt.subplots(1, len(cells), figsize=(6.6 * len(cells), 5.8), squeeze=False)
    for ax, (name, table) in zip(axes[0], cells.items(), strict=True):
        ax.set_facecolor(basemap.SEA_COLOUR)
        basemap.draw_croatia(ax)
        values = table["mean_error_km"].to_numpy(dtype=np.float64)
        draw_cells(ax, table, values, "RdYlGn_r", 0.0, top, "mean error in the cell (km)")
        degree_axes(ax)
        ax.set_title(f"{name}: mean error per cell ({int(table['n'].sum())} locations)")
    fig.tight_layout()
    return fig
