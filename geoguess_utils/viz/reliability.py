"""Reliability diagrams: how often the top cell is right against how sure the model said it was."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_reliability(tables: Mapping[str, Mapping[str, np.ndarray]], title: str | None = None) -> Figure:
    """Accuracy against confidence per bin, one line per table (e.g. before and after calibration).

    Args:
        tables: ``{label: table}``; each table holds arrays of shape (bins,): ``lower`` and
            ``upper`` (bin edges in [0, 1]), ``count`` (locations), ``confidence`` (mean top
            probability) and ``accuracy`` (share whose top cell is the true one), NaN in
            empty bins (as :func:`geoguess_utils.tasks.calibration.reliability_table` gives).
        title: Title of the upper panel.

    Returns:
        The figure: the reliability curves over the diagonal (perfect calibration), and the
        locations per confidence bin below.
    """
    import matplotlib.pyplot as plt

    if not tables:
        raise ValueError("no reliability table to plot")
    fig, (curve, counts) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    curve.plot([0, 1], [0, 1], color="#888888", linestyle="--", linewidth=1, label="perfectly calibrated")
    for i, (label, table) in enumerate(tables.items()):
        lower, upper = np.asarray(table["lower"], float), np.asarray(table["upper"], float)
        count = np.asarray(table["count"], float)
        confidence, accuracy = np.asarray(table["confidence"], float), np.asarray(table["accuracy"], float)
        full = count > 0
        curve.plot(confidence[full], accuracy[full], marker="o", linewidth=1.8, label=label)
        width = (upper - lower) / (len(tables) + 0.5)
        counts.bar(lower + width * (i + 0.25), count, width=width, align="edge", label=label, alpha=0.8)
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1)
    curve.set_ylabel("accuracy of the top cell")
    curve.set_title(title or "reliability (equal-width confidence bins)")
    curve.legend(loc="upper left", fontsize=8)
    counts.set_xlabel("confidence (probability of the top cell)")
    counts.set_ylabel("locations")
    for ax in (curve, counts):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
