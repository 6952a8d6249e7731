"""The ablation as a figure: each variant's test mean error against the 2022 recipe's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BETTER_COLOUR = "#2b8a3e"
WORSE_COLOUR = "#c92a2a"
RECIPE_COLOUR = "#495057"


def plot_ablation(results: Mapping[str, pd.DataFrame], constant_km: Mapping[str, float] | None = None) -> Figure:
    """One panel per ablation run: mean ± sd of the test mean error of each variant, km.

    Bars below the recipe's mean are drawn green, those above it red, the recipe grey; a
    dashed line marks the recipe and a dotted one the best constant guess.

    Args:
        results: ``{panel title: summary}``, each summary with one row per variant and the
            columns ``variant``, ``mean_km`` and ``mean_km_sd`` (km), the recipe's row named
            ``recipe`` (see :func:`geoguess_utils.course.ablation.load_ablation`).
        constant_km: ``{panel title: mean error of the best constant guess, km}``, optional.

    Returns:
        The figure, one horizontal bar chart per panel.

    Raises:
        ValueError: No panel, or a summary without a ``recipe`` row.
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("no ablation results to plot")
    heights = [max(2.5, 0.38 * len(table) + 1.2) for table in results.values()]
    fig, axes = plt.subplots(
        len(results), 1, figsize=(9.0, sum(heights)), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    for ax, (title, table) in zip(axes[:, 0], results.items(), strict=True):
        recipe_rows = table.loc[table["variant"] == "recipe", "mean_km"]
        if recipe_rows.empty:
            raise ValueError(f"{title}: the summary has no 'recipe' row to compare with")
        recipe = float(recipe_rows.iloc[0])
        means = table["mean_km"].to_numpy(dtype=np.float64)
        spreads = table["mean_km_sd"].fillna(0.0).to_numpy(dtype=np.float64)
        colours = [
            RECIPE_COLOUR if name == "recipe" else (BETTER_COLOUR if mean < recipe else WORSE_COLOUR)
            for name, mean in zip(table["variant"], means, strict=True)
        ]
        rows = np.arange(len(table))
        ax.barh(rows, means, xerr=spreads, color=colours, alpha=0.85, capsize=3)
        ax.set_yticks(
            rows, [f"{name}  ({mean / recipe:.2f}×)" for name, mean in zip(table["variant"], means, strict=True)]
        )
        ax.invert_yaxis()
        ax.axvline(recipe, color=RECIPE_COLOUR, linestyle="--", linewidth=1.2, label=f"recipe {recipe:.1f} km")
        constant = None if constant_km is None else constant_km.get(title)
        if constant is not None and np.isfinite(constant):
            ax.axvline(
                constant, color="#1c7ed6", linestyle=":", linewidth=1.5, label=f"best constant {constant:.1f} km"
            )
        ax.set_xlabel("test mean error, km (mean ± sd over seeds)")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
