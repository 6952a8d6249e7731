"""Interactive map of predictions: a standalone folium (Leaflet) HTML page."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely

from geoguess_utils.cells import frame as cell_frames
from geoguess_utils.cells.scheme import geometry_to_plain
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance
from geoguess_utils.io import atomic_write_text
from geoguess_utils.viz import place_names, webmap_regions
from geoguess_utils.viz.webmap_html import (
    PROBABILITY_COLOURS,
    THUMBNAIL_COLUMNS,
    colour_scale,
    embed_assets,
    error_colours,
    escape,
    legend_control_js,
    legend_html,
    popup_html,
    row_thumbnails,
    short_id,
)

if TYPE_CHECKING:
    import folium

PREDICTION_COLUMNS: tuple[str, ...] = ("uuid", "true_lat", "true_lon", "pred_lat", "pred_lon")
"""Columns a predictions frame must have (``error_km`` is computed when absent)."""

CELL_COLUMNS: tuple[str, ...] = ("class_index", "geometry")
"""Columns the cells frame must have (``GeoContext.cells_frame()``); older class tables with
square bounds are accepted too (:func:`geoguess_utils.cells.frame.as_cells_frame`)."""

SEA_COLOUR = "#cfe3f2"
LAND_COLOUR = "#ede8da"
NEIGHBOUR_COLOUR = "#f6f4ee"

_PANES = {"land": 250, "cells": 380, "probability": 390, "region": 395, "lines": 410, "points": 420}
_PASSIVE_PANES = ("land", "region")  # drawn only: clicks go through them to what lies beneath
_LAND_BOX_DEG = (4.0, 36.0, 30.0, 52.0)  # lon_min, lat_min, lon_max, lat_max drawn as land
_TILES_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
_TILES_ATTRIBUTION = "&copy; OpenStreetMap contributors"


def check_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Validate a predictions frame and return a copy with ``error_km`` filled in.

    Args:
        predictions: Columns :data:`PREDICTION_COLUMNS`, optional ``error_km`` and
            optional :data:`THUMBNAIL_COLUMNS`.

    Raises:
        DataError: When columns are missing, the frame is empty, or a row has a
            non-finite coordinate (the message names the uuids).
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise DataError(f"predictions lack the columns {missing}; they need {list(PREDICTION_COLUMNS)}")
    if predictions.empty:
        raise DataError("there are no predictions to draw")
    frame = predictions.reset_index(drop=True).copy()
    frame["uuid"] = frame["uuid"].astype(str)
    coords = frame[["true_lat", "true_lon", "pred_lat", "pred_lon"]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(coords.to_numpy(dtype=np.float64)).all(axis=1)
    if bad.any():
        raise DataError(f"non-finite coordinates in the predictions for uuids {frame.loc[bad, 'uuid'].tolist()[:10]}")
    frame[coords.columns] = coords
    if "error_km" not in frame.columns:
        frame["error_km"] = distance.haversine_km(
            frame["true_lat"], frame["true_lon"], frame["pred_lat"], frame["pred_lon"]
        )
    frame["error_km"] = pd.to_numeric(frame["error_km"], errors="coerce")
    bad = ~np.isfinite(frame["error_km"].to_numpy(dtype=np.float64))
    if bad.any():
        raise DataError(f"non-finite error_km for uuids {frame.loc[bad, 'uuid'].tolist()[:10]}")
    return frame


def _cells(class_table: pd.DataFrame) -> pd.DataFrame:
    """The classes as a cells frame in class order (raises DataError naming what is missing)."""
    return cell_frames.as_cells_frame(class_table)


def _check_probabilities(probabilities: np.ndarray | None, n_rows: int, n_classes: int) -> np.ndarray | None:
    if probabilities is None:
        return None
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.shape != (n_rows, n_classes):
        raise DataError(
            f"probabilities have shape {probs.shape}, expected ({n_rows}, {n_classes}): one row per prediction, "
            f"one column per class"
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise DataError("probabilities must be finite and non-negative")
    return probs


def cell_errors(class_table: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Mean error of the locations whose true position falls in each cell.

    Args:
        class_table: A cells frame (:data:`CELL_COLUMNS`, e.g. ``GeoContext.cells_frame()``)
            or another table :func:`geoguess_utils.cells.frame.as_cells_frame` accepts.
        predictions: A frame accepted by :func:`check_predictions`.

    Returns:
        One row per class (in ``class_index`` order): ``class_index``, ``n`` (locations
        in the cell) and ``mean_error_km`` (NaN where ``n`` is 0).
    """
    cells = _cells(class_table)
    frame = check_predictions(predictions)
    classes = cell_frames.assign_to_cells(cells, frame["true_lat"], frame["true_lon"])
    stats = pd.DataFrame({"class_index": classes, "error_km": frame["error_km"]}).groupby("class_index")["error_km"]
    out = pd.DataFrame({"class_index": cells["class_index"].to_numpy()})
    out["n"] = out["class_index"].map(stats.size()).fillna(0).astype(np.int64)
    out["mean_error_km"] = out["class_index"].map(stats.mean())
    return out


def _resolve_focus(frame: pd.DataFrame, focus: int | str | None) -> int:
    """Row position of the location whose probabilities are drawn."""
    if focus is None:
        return int(np.argmax(frame["error_km"].to_numpy()))
    if isinstance(focus, (int, np.integer)) and not isinstance(focus, bool):
        if not 0 <= int(focus) < len(frame):
            raise ConfigError(f"focus row {focus} is out of range (0..{len(frame) - 1})")
        return int(focus)
    hits = np.flatnonzero(frame["uuid"].to_numpy() == str(focus))
    if hits.size == 0:
        raise ConfigError(f"focus uuid {focus!r} is not among the predictions")
    return int(hits[0])


@functools.lru_cache(maxsize=1)
def surrounding_land() -> shapely.Geometry:
    """Land of every country in a wide box around Croatia, simplified for drawing (cached).

    The box (lon 4 to 30, lat 36 to 52) is larger than anything the map shows at its
    usual zoom levels, so its edges stay out of sight.
    """
    table = borders.countries()
    box = shapely.box(*_LAND_BOX_DEG)
    near = table[table.intersects(box)]
    land = shapely.intersection(shapely.union_all(shapely.make_valid(near.geometry.values)), box)
    return land.simplify(0.02, preserve_topology=True)


@functools.lru_cache(maxsize=4)
def neighbouring_land(simplify_deg: float = 0.01) -> shapely.Geometry:
    """Land of the countries around Croatia, Croatia left out, simplified for drawing (cached).

    Drawn under Croatia's outline simplified to the same tolerance, it meets that outline
    without a strip of sea between them: before simplifying, it is grown into Croatia by
    2.5 times the tolerance (a part that Croatia's outline, drawn on top, hides); its
    coasts are not grown.

    Args:
        simplify_deg: Simplification tolerance, degrees (0.01 is about 1 km).

    Returns:
        A (Multi)Polygon in lon/lat degrees, within the box lon 4 to 30, lat 36 to 52
        (as :func:`surrounding_land`), coordinates rounded to 1e-4 degrees.
    """
    if not simplify_deg > 0:
        raise ValueError(f"simplify_deg must be positive, got {simplify_deg}")
    table = borders.countries()
    box = shapely.box(*_LAND_BOX_DEG)
    near = table[table.intersects(box) & (table["ISO_A3"] != "HRV")]
    land = shapely.intersection(shapely.union_all(shapely.make_valid(near.geometry.values)), box)
    into_croatia = shapely.intersection(shapely.buffer(land, 2.5 * simplify_deg, quad_segs=2), borders.croatia("full"))
    grown = shapely.union(land, into_croatia)
    return shapely.set_precision(shapely.simplify(grown, simplify_deg, preserve_topology=True), 1e-4)


def _cell_feature(row: pd.Series, properties: dict[str, object]) -> dict[str, object]:
    """A GeoJSON feature of one cell's polygon (lon/lat degrees) with ``properties``."""
    return {"type": "Feature", "geometry": geometry_to_plain(row["geometry"]), "properties": properties}


def _add_land(fmap: folium.Map) -> None:
    """Croatia and its neighbours as filled shapes, so the map reads without tiles."""
    import folium

    land = folium.FeatureGroup(name="Land outline (drawn offline)", show=True)
    for shape, fill, edge, weight in (
        (surrounding_land(), NEIGHBOUR_COLOUR, "#b8b8b8", 0.6),
        (borders.croatia("full").simplify(0.003, preserve_topology=True), LAND_COLOUR, "#555555", 1.0),
    ):
        style = {"fillColor": fill, "fillOpacity": 1.0, "color": edge, "weight": weight}
        folium.GeoJson(
            shape.__geo_interface__, style_function=lambda _, style=style: style, pane="land", interactive=False
        ).add_to(land)
    land.add_to(fmap)


def _cells_layer(features: list[dict[str, object]], fields: list[str], aliases: list[str], pane: str, **kwargs: object):  # noqa: ANN202 - folium.GeoJson
    import folium

    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        style_function=lambda f: {
            "fillColor": f["properties"]["fill"],
            "fillOpacity": f["properties"]["opacity"],
            "color": "#666666",
            "weight": 0.6,
        },
        tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases),
        pane=pane,
        **kwargs,
    )


def _add_cell_errors(fmap: folium.Map, table: pd.DataFrame, frame: pd.DataFrame) -> None:
    """The grid, each cell filled with the colour of its locations' mean error (fixed scale)."""
    per_cell = cell_errors(table, frame)
    colours = error_colours(per_cell["mean_error_km"].fillna(0.0).to_numpy())
    features = []
    for (_, row), (_, stats), colour in zip(table.iterrows(), per_cell.iterrows(), colours, strict=True):
        has_data = stats["n"] > 0
        properties = {
            "class_index": int(row["class_index"]),
            "n": int(stats["n"]),
            "mean_error": f"{stats['mean_error_km']:.1f} km" if has_data else "no location",
            "fill": colour if has_data else "#000000",
            "opacity": 0.55 if has_data else 0.0,
        }
        features.append(_cell_feature(row, properties))
    layer = _cells_layer(
        features,
        ["class_index", "n", "mean_error"],
        ["class", "locations", "mean error"],
        "cells",
        name="Cells: mean error",
        show=True,
    )
    layer.add_to(fmap)


def probability_layer_label(position: int, count: int, uuid: object, lat: float, lon: float) -> str:
    """The layer control's name of one location's probability layer (escaped).

    Args:
        position: The location's row in the predictions, from 0.
        count: How many locations the map draws.
        uuid: The location's uuid (shortened to its first characters).
        lat: The location's true latitude, degrees.
        lon: The location's true longitude, degrees.

    Returns:
        E.g. ``"Probability over cells: location 3 of 200, 12 km SE of Zadar (uuid 79617a69…)"``.
    """
    (place,) = place_names.place_labels([lat], [lon])
    return escape(f"Probability over cells: location {position + 1} of {count}, {place} (uuid {short_id(uuid)})")


def _add_probability_layer(
    fmap: folium.Map, table: pd.DataFrame, frame: pd.DataFrame, position: int, probs: np.ndarray
) -> None:
    """One location's class probabilities over the grid, as a layer that starts hidden."""
    import folium

    focus = frame.iloc[position]
    p_max = float(probs.max()) if probs.max() > 0 else 1.0
    colours = colour_scale(PROBABILITY_COLOURS, probs, p_max)
    uuid = escape(focus["uuid"])
    label = probability_layer_label(
        position, len(frame), focus["uuid"], float(focus["true_lat"]), float(focus["true_lon"])
    )
    layer = folium.FeatureGroup(name=label, show=False)
    features = [
        _cell_feature(
            row,
            {
                "class_index": int(row["class_index"]),
                "probability": f"{p:.3f}",
                "fill": colour,
                "opacity": 0.8 if p >= 0.01 * p_max else 0.1,
            },
        )
        for (_, row), p, colour in zip(table.iterrows(), probs, colours, strict=True)
    ]
    _cells_layer(features, ["class_index", "probability"], ["class", "probability"], "probability").add_to(layer)
    for lat, lon, label, fill in (
        (focus["true_lat"], focus["true_lon"], "true location", "#ffffff"),
        (focus["pred_lat"], focus["pred_lon"], "prediction", "#00c8ff"),
    ):
        folium.CircleMarker(
            [float(lat), float(lon)],
            radius=8,
            color="#000000",
            weight=2,
            fill=True,
            fill_color=fill,
            fill_opacity=1.0,
            tooltip=folium.Tooltip(f"{label} of {uuid} ({focus['error_km']:.1f} km)"),
            pane="points",
        ).add_to(layer)
    layer.add_to(fmap)


def _add_predictions(fmap: folium.Map, frame: pd.DataFrame, thumbnail_px: int | None) -> tuple[list[str], list[str]]:
    """Lines from true to predicted points, with one popup per location.

    Returns:
        One line per location whose views could not all be shown, saying why; and the
        JavaScript names of the locations' groups (line, points and popup), in row order.
    """
    import folium

    layer = folium.FeatureGroup(name="Predictions: true to predicted", show=True)
    colours = error_colours(frame["error_km"].to_numpy())
    use_thumbs = thumbnail_px is not None and any(c in frame.columns for c in THUMBNAIL_COLUMNS)
    unavailable: list[str] = []
    groups: list[str] = []
    for (_, row), colour in zip(frame.iterrows(), colours, strict=True):
        true_point = [float(row["true_lat"]), float(row["true_lon"])]
        pred_point = [float(row["pred_lat"]), float(row["pred_lon"])]
        group = folium.FeatureGroup(control=False)  # one popup shared by the line and both points
        label = f"{escape(row['uuid'])}: {row['error_km']:.1f} km"
        folium.PolyLine(
            [true_point, pred_point], color=colour, weight=2.5, opacity=0.85, tooltip=label, pane="lines"
        ).add_to(group)
        folium.CircleMarker(
            true_point,
            radius=3,
            color="#222222",
            weight=1.5,
            fill=True,
            fill_color="#ffffff",
            fill_opacity=1.0,
            pane="points",
        ).add_to(group)
        folium.CircleMarker(
            pred_point,
            radius=4,
            color="#333333",
            weight=1,
            fill=True,
            fill_color=colour,
            fill_opacity=1.0,
            tooltip=label,
            pane="points",
        ).add_to(group)
        found, problems = row_thumbnails(row, thumbnail_px) if use_thumbs and thumbnail_px else ({}, {})
        if problems:
            unavailable.append(f"{row['uuid']}: {'; '.join(problems.values())}")
        width = 4 * thumbnail_px + 40 if found and thumbnail_px else 320
        folium.Popup(popup_html(row, found, problems), max_width=width, lazy=True).add_to(group)
        group.add_to(layer)
        groups.append(group.get_name())
    layer.add_to(fmap)
    return unavailable, groups


def _add_legend(fmap: folium.Map, html: str) -> None:
    """The legend's HTML in the page, and the script (run after the map exists) that makes it a control."""
    from branca.element import Element, MacroElement
    from jinja2 import Template

    fmap.get_root().html.add_child(Element(html), name="legend")
    control = MacroElement()
    control._template = Template(
        "{% macro script(this, kwargs) %}{% raw %}" + legend_control_js(fmap.get_name()) + "{% endraw %}{% endmacro %}"
    )
    fmap.add_child(control, name="legend_control")


def build_map(
    predictions: pd.DataFrame,
    class_table: pd.DataFrame,
    probabilities: np.ndarray | None = None,
    focus: int | str | None = None,
    title: str = "Predictions",
    thumbnails: bool = True,
    thumbnail_px: int = 96,
    offline: bool = True,
    notes: Sequence[str] = (),
    regions: Sequence[dict[str, object]] | None = None,
) -> folium.Map:
    """Build the interactive map of predictions.

    Args:
        predictions: One row per location: ``uuid``, ``true_lat``, ``true_lon``,
            ``pred_lat``, ``pred_lon`` (degrees), optionally ``error_km`` (computed
            with the haversine formula when absent) and ``path_0`` ... ``path_270``
            (the four views, shown as thumbnails in the popup).
        class_table: The cells, with :data:`CELL_COLUMNS` (``GeoContext.cells_frame()``,
            or any table :func:`geoguess_utils.cells.frame.as_cells_frame` accepts),
            drawn coloured by the mean error of the locations that fall in them.
        probabilities: Optional (N, K) class probabilities, rows in the order of
            ``predictions``, columns in ``class_index`` order; adds a layer (off by
            default) showing one location's probability over the cells.
        focus: Which location the probability layer shows: a row position or a uuid;
            the location with the largest error when ``None``.
        title: Heading of the legend box (escaped).
        thumbnails: Embed the thumbnails when path columns are present.
        thumbnail_px: Longest side of each thumbnail, pixels.
        offline: Embed Leaflet and jQuery so the page works without internet; with
            ``False`` folium's usual CDN links are used.
        notes: Extra lines for the legend under the summary, e.g. what data the model
            was trained on (escaped).
        regions: Optional search regions, one GeoJSON Feature per row of ``predictions``
            (:meth:`geoguess_utils.tasks.regions.SearchRegions.features`; properties
            ``coverage``, ``area_km2`` and ``cells`` or ``radius_km``; geometry ``None`` when
            unbounded). Adds a layer, on at first, with the region of the ``focus`` location,
            replaced by that of each location clicked; each is simplified to
            :data:`~geoguess_utils.viz.webmap_regions.REGION_SIMPLIFY_DEG` to keep the page small.

    Errors are coloured on one fixed scale (:data:`~geoguess_utils.viz.webmap_html.ERROR_BINS_KM`,
    0-10-25-50-100-200-500+ km), stated in the legend, so colours compare across maps.

    Returns:
        A ``folium.Map``; write it with :func:`save_map`.

    Raises:
        DataError: On malformed predictions, class table or probabilities.
        ConfigError: On an unknown ``focus``, or when ``offline`` is asked for but the
            embedded libraries are not installed.
    """
    import folium
    from branca.element import Element

    frame = check_predictions(predictions)
    table = _cells(class_table)
    probs = _check_probabilities(probabilities, len(frame), len(table))
    region_features = None if regions is None else webmap_regions.check_regions(regions, len(frame))
    focus_row = _resolve_focus(frame, focus) if probs is not None or region_features is not None else None

    errors = frame["error_km"].to_numpy(dtype=np.float64)
    lon0, lat0, lon1, lat1 = borders.croatia_bounds("full")
    fmap = folium.Map(
        location=[(lat0 + lat1) / 2, (lon0 + lon1) / 2],
        zoom_start=7,
        tiles=None,
        control_scale=True,
        prefer_canvas=True,
    )
    if offline:
        embed_assets(fmap)
    fmap.get_root().header.add_child(
        Element(f"<style>.leaflet-container{{background:{SEA_COLOUR}}}</style>"), name="sea_background"
    )
    for pane, z_index in _PANES.items():
        folium.map.CustomPane(pane, z_index=z_index, pointer_events=pane not in _PASSIVE_PANES).add_to(fmap)

    folium.TileLayer(
        tiles=_TILES_URL,
        attr=_TILES_ATTRIBUTION,
        name="OpenStreetMap tiles (needs internet)",
        overlay=True,
        show=False,
        max_zoom=19,
    ).add_to(fmap)

    _add_land(fmap)
    _add_cell_errors(fmap, table, frame)
    if probs is not None and focus_row is not None:
        _add_probability_layer(fmap, table, frame, focus_row, probs[focus_row])
    unavailable, groups = _add_predictions(fmap, frame, thumbnail_px if thumbnails else None)
    region_key = None
    if region_features is not None and focus_row is not None:
        region_key = webmap_regions.add_regions(fmap, frame, region_features, groups, focus_row)
    if unavailable:
        warnings.warn(
            f"{len(unavailable)} locations have views that could not be shown in the map: " + " | ".join(unavailable),
            stacklevel=2,
        )

    summary = f"{len(frame)} locations, mean {errors.mean():.1f} km, median {np.median(errors):.1f} km"
    prob_max = float(probs[focus_row].max()) if probs is not None and focus_row is not None else None
    _add_legend(fmap, legend_html(title, summary, prob_max, notes, region_key))
    folium.LayerControl(collapsed=False).add_to(fmap)
    fmap.fit_bounds([[lat0, lon0], [lat1, lon1]])
    return fmap


def map_html(fmap: folium.Map) -> str:
    """The complete HTML page of a map, as text."""
    return fmap.get_root().render()


def save_map(fmap: folium.Map, path: str | os.PathLike[str]) -> Path:
    """Write the map as one standalone HTML file, atomically, and return its path."""
    return atomic_write_text(path, map_html(fmap))
