"""Training curves from a run's logged metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_training_curves(curves: Mapping[str, pd.DataFrame]) -> Figure:
    """Loss of each run (train and validation) and the validation mean error of all runs.

    Args:
        curves: ``{run name: output of read_metrics}``.

    Returns:
        The figure: one loss panel per run, then a shared km panel.
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("no training curves to plot")
    fig, axes = plt.subplots(1, len(curves) + 1, figsize=(4.6 * (len(curves) + 1), 3.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, table) in enumerate(curves.items()):
        ax = axes[0, i]
        colour = colours[i % len(colours)]
        for column, style, label in (("train/loss_epoch", "-", "train"), ("val/loss", "--", "validation")):
            if column in table:
                ax.plot(table.index, table[column], style, marker="o", color=colour, label=label)
        ax.set_title(f"{name}: loss")
        ax.set_xlabel("epoch")
        ax.legend()
        km = axes[0, -1]
        if "val/mean_km" in table:
            km.plot(table.index, table["val/mean_km"], marker="o", color=colour, label=name)
    km = axes[0, -1]
    km.set_title("validation: mean error")
    km.set_xlabel("epoch")
    km.set_ylabel("km")
    km.legend()
    for ax in axes[0]:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
