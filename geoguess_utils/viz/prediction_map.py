"""The interactive map of a set of predictions (what `geoguess map` writes and notebook 05 shows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from geoguess_utils.errors import ConfigError
from geoguess_utils.evaluation import Predictions, summarise

if TYPE_CHECKING:
    import folium


def prediction_map(
    predictions: Predictions,
    title: str = "Predictions",
    focus: int | str | None = None,
    thumbnail_px: int | None = 64,
    max_locations: int | None = 400,
    notes: Sequence[str] = (),
    search_regions: Any | None = None,
    coverage: float = 0.9,
) -> folium.Map:
    """The interactive map of :mod:`geoguess_utils.webmap` for a set of predictions.

    Lines join true and predicted points, coloured by error; popups show the uuid,
    the error and the four views; the grid is coloured by per-cell mean error; for a
    classifier, a layer (off at first) shows one location's probability over the cells.
    With ``search_regions``, a layer shows the search region of one location (the focus
    location at first, then each location clicked).

    Args:
        predictions: Labelled predictions.
        title: Heading of the legend.
        focus: Location of the probability layer (row position or uuid); the location
            with the median error when ``None``, a typical case rather than an outlier.
        thumbnail_px: Side of the embedded thumbnails; ``None`` embeds none (smaller file).
        max_locations: Draw at most this many locations (the first ones), which keeps
            the page small; ``None`` draws all.
        notes: Extra legend lines, e.g. what data the model was trained on.
        search_regions: The model's :class:`~geoguess_utils.tasks.regions.SearchRegions`
            (``SearchRegions.of_task(task)``, for a calibrated checkpoint), or ``None`` for no
            region layer. The regions of the locations drawn are computed here, from the
            predictions' (calibrated) probabilities, or their points for a disc.
        coverage: Nominal coverage of the regions, in ``(0, 1)``.

    Returns:
        The folium map (save it with :func:`geoguess_utils.viz.webmap.save_map`).
    """
    from geoguess_utils.viz import webmap

    summarise(predictions)
    table = predictions.table
    probabilities = predictions.probabilities
    if max_locations is not None and len(table) > max_locations:
        table = table.iloc[:max_locations]
        probabilities = None if probabilities is None else probabilities[:max_locations]
    if focus is None and (probabilities is not None or search_regions is not None):
        errors = table["error_km"].to_numpy()
        focus = int(np.argsort(errors)[len(errors) // 2])
    regions = None
    if search_regions is not None:
        latlon = table[["pred_lat", "pred_lon"]].to_numpy(dtype=np.float64)
        if search_regions.kind == "cells":
            if probabilities is None:
                raise ConfigError(
                    "a classifier's search regions need its class probabilities; these predictions have none"
                )
            columns = search_regions.table(coverage, probabilities=probabilities)
        else:
            columns = search_regions.table(coverage, latlon=latlon)
        regions = search_regions.features(columns, latlon=latlon, uuids=list(table["uuid"]))
    return webmap.build_map(
        table,
        predictions.class_table,
        probabilities=probabilities,
        focus=focus,
        title=title,
        thumbnails=thumbnail_px is not None,
        thumbnail_px=thumbnail_px or 64,
        notes=notes,
        regions=regions,
    )
