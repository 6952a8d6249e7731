"""Cell schemes side by side: how many classes, how full they are, and their error floor.

Notebook 03 compares the square grid with the data-driven schemes
(:mod:`geoguess_utils.cells.data_driven`) on the same training split; this module
computes the table, :func:`geoguess_utils.viz.scheme_maps.plot_schemes` draws the cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.course.analysis import centroid_distances
from geoguess_utils.errors import DataError

COMPARED_SCHEMES: tuple[str, ...] = ("square", "balanced", "county", "county_split")
"""Schemes the course compares, with their default parameters (square: 0.3 degrees)."""


def fit_schemes(
    train_lat: ArrayLike, train_lon: ArrayLike, schemes: Sequence[str] = COMPARED_SCHEMES, spacing_deg: float = 0.3
) -> dict[str, GeoContext]:
    """A context per scheme, each fitted on the same training locations.

    Used in notebook 03, section 5 ('Cells that follow the data').

    Args:
        train_lat: Training latitudes, degrees, shape (N,).
        train_lon: Training longitudes, degrees, shape (N,).
        schemes: Registered scheme names.
        spacing_deg: Cell side of the ``square`` scheme, degrees.

    Returns:
        Scheme name -> fitted :class:`GeoContext`, in ``schemes`` order.
    """
    if not schemes:
        raise DataError("name at least one cell scheme to compare")
    return {name: GeoContext.fit(train_lat, train_lon, spacing_deg=spacing_deg, scheme=name) for name in schemes}


def compare_schemes(
    contexts: dict[str, GeoContext],
    train_lat: ArrayLike,
    train_lon: ArrayLike,
    held_lat: ArrayLike,
    held_lon: ArrayLike,
) -> pd.DataFrame:
    """Class count, training locations per class and the error floor of each fitted scheme.

    Used in notebook 03, section 5 ('Cells that follow the data').

    The floor is the mean distance from a location to the weighted class point of its own
    cell: what a classifier that always picks the right cell would score.

    Args:
        contexts: Output of :func:`fit_schemes`.
        train_lat: The training latitudes the contexts were fitted on, degrees, shape (N,).
        train_lon: Their longitudes, degrees, shape (N,).
        held_lat: Held-out latitudes, degrees, shape (M,).
        held_lon: Held-out longitudes, degrees, shape (M,).

    Returns:
        One row per scheme: ``scheme``, ``classes``, ``min_per_class``,
        ``median_per_class``, ``max_per_class`` (training locations), ``floor_train_km``
        and ``floor_held_out_km`` (weighted class points, mean km).
    """
    rows = []
    for name, context in contexts.items():
        frame = context.cells_frame()
        counts = frame["n_train"].to_numpy()
        rows.append(
            {
                "scheme": name,
                "classes": context.num_classes,
                "min_per_class": int(counts.min()),
                "median_per_class": float(np.median(counts)),
                "max_per_class": int(counts.max()),
                "floor_train_km": float(centroid_distances(frame, train_lat, train_lon)["weighted_km"].mean()),
                "floor_held_out_km": float(centroid_distances(frame, held_lat, held_lon)["weighted_km"].mean()),
            }
        )
    return pd.DataFrame(rows)
