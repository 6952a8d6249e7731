"""The search region layer of the prediction map: the region of the location clicked last.

A calibrated checkpoint gives every location a search region (the cells, or a disc, that hold
the true place with the nominal probability; :mod:`geoguess_utils.tasks.regions`).
:func:`add_regions` embeds each drawn location's region, made light for drawing, and a short
script that shows the region of the location clicked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import shapely

from geoguess_utils.errors import DataError
from geoguess_utils.viz.webmap_html import REGION_CLASS, REGION_STYLE, REGION_TEXT_ID, short_id

if TYPE_CHECKING:
    import folium
    import pandas as pd

REGION_SIMPLIFY_DEG = 0.01
"""Tolerance (degrees, about 1 km) to which the map's search regions are simplified: the map
holds one per location drawn, so each is kept small (coordinates rounded to 1e-3 degrees; about
2 KB a location, against 4 to 10 KB for its thumbnails)."""


def area_text(area_km2: float | None) -> str:
    """A region's area for people: ``"12,600 km²"`` (three significant digits), ``"unbounded"`` for ``None`` or inf."""
    if area_km2 is None or not math.isfinite(float(area_km2)):
        return "unbounded (the validation split is too small for this coverage)"
    area = float(f"{float(area_km2):.3g}")
    return f"{area:,.0f} km²" if area >= 100 else f"{area:g} km²"


def check_regions(regions: Sequence[dict[str, object]], n_rows: int) -> list[dict[str, object]]:
    """Search regions as :meth:`geoguess_utils.tasks.regions.SearchRegions.features` gives them, one per row.

    Raises:
        DataError: Not one GeoJSON Feature per row.
    """
    out = list(regions)
    if len(out) != n_rows or not all(isinstance(f, dict) and f.get("type") == "Feature" for f in out):
        raise DataError(f"regions must be one GeoJSON Feature per prediction ({n_rows}), got {len(out)} items")
    return out


def region_caption(regions: Sequence[dict[str, object]]) -> str:
    """The name of the search region layer, e.g. ``"Search region (90 %) of the location clicked"``."""
    coverages = {float(f["properties"]["coverage"]) for f in regions if isinstance(f.get("properties"), dict)}
    shown = f" ({100 * coverages.pop():g} %)" if len(coverages) == 1 else ""
    return f"Search region{shown} of the location clicked"


def region_text(position: int, count: int, uuid: object, feature: dict[str, object]) -> str:
    """What the legend says of one location's region (not escaped).

    Returns:
        E.g. ``"location 3 of 200 (uuid 79617a69…): 12,600 km², 7 cells"``.
    """
    properties = feature.get("properties") or {}
    assert isinstance(properties, dict)
    area = properties.get("area_km2")
    detail = ""
    if isinstance(properties.get("cells"), list):
        detail = f", {len(properties['cells'])} cells"
    elif properties.get("radius_km") is not None:
        detail = f", a disc of radius {float(properties['radius_km']):.3g} km around the prediction"
    if area is None:
        return f"location {position + 1} of {count} (uuid {short_id(uuid)}): {area_text(None)}"
    return f"location {position + 1} of {count} (uuid {short_id(uuid)}): {area_text(float(area))}{detail}"


REGION_SLIVER_DEG2 = 1e-4
"""Holes smaller than this (square degrees, about 0.8 km²) are left out of a drawn region: slivers
between neighbouring cells whose edges do not quite meet, not cells left out."""


def simplified_region(geometry: dict[str, object], tolerance_deg: float, precision_deg: float) -> dict[str, object]:
    """A region's GeoJSON geometry made light for drawing: slivers filled, simplified, rounded.

    Args:
        geometry: A GeoJSON Polygon or MultiPolygon, lon/lat degrees.
        tolerance_deg: Simplification tolerance, degrees (topology kept).
        precision_deg: Grid the coordinates are rounded to, degrees.

    Returns:
        The GeoJSON geometry, with holes under :data:`REGION_SLIVER_DEG2` left out.
    """
    shape = shapely.geometry.shape(geometry)
    parts = []
    for part in getattr(shape, "geoms", [shape]):
        if isinstance(part, shapely.Polygon):
            holes = [ring for ring in part.interiors if shapely.Polygon(ring).area >= REGION_SLIVER_DEG2]
            parts.append(shapely.Polygon(part.exterior, holes))
    if parts:
        shape = shapely.union_all(parts)
    shape = shapely.set_precision(shapely.simplify(shape, tolerance_deg, preserve_topology=True), precision_deg)
    return json.loads(shapely.to_geojson(shape))


def _compact_geometry(geometry: dict[str, object] | None) -> dict[str, object] | None:
    """A region's geometry for the map: :func:`simplified_region` to :data:`REGION_SIMPLIFY_DEG`, 1e-3 degrees."""
    return None if geometry is None else simplified_region(geometry, REGION_SIMPLIFY_DEG, 1e-3)


def _script_json(value: object) -> str:
    """JSON that is safe inside a ``<script>`` element: ``< > & ` $`` only as unicode escapes in its strings."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=True)
    for raw in "<>&`$":
        text = text.replace(raw, f"\\u{ord(raw):04x}")
    return text


def region_script(map_name: str, layer: str, groups: Sequence[str], entries: Sequence[object], focus: int) -> str:
    """JavaScript that draws the search region of the location clicked last (the focus location at first).

    Args:
        map_name: The map's JavaScript name.
        layer: The JavaScript name of the search region's layer (a FeatureGroup in the layer control).
        groups: The JavaScript names of the locations' groups, in row order.
        entries: Per location, ``{"text", "feature"}`` (legend text and compact GeoJSON Feature).
        focus: The row drawn at first.
    """
    names = [map_name, layer, *groups]
    if not all(name.isidentifier() for name in names):
        raise ValueError("JavaScript names expected")
    return (
        "(function () {"
        f"  var regions = {_script_json(list(entries))};"
        f"  var groups = [{','.join(groups)}];"
        f"  var layer = {layer};"
        '  var renderer = L.svg({pane: "region"});'
        f"  var style = {_script_json(REGION_STYLE)};"
        "  function show(i) {"
        "    layer.clearLayers();"
        "    var entry = regions[i];"
        "    if (entry.feature.geometry) {"
        "      L.geoJSON(entry.feature, {"
        f"        renderer: renderer, interactive: false, className: {_script_json(REGION_CLASS)},"
        "        style: function () { return style; }"
        "      }).addTo(layer);"
        "    }"
        f"    var text = document.getElementById({_script_json(REGION_TEXT_ID)});"
        "    if (text) text.textContent = entry.text;"
        f"    {map_name}.geoguessRegionShown = i;"
        "  }"
        '  groups.forEach(function (group, i) { group.on("click", function () { show(i); }); });'
        f"  show({int(focus)});"
        "})();"
    )


def add_regions(
    fmap: folium.Map, frame: pd.DataFrame, regions: list[dict[str, object]], groups: Sequence[str], focus: int
) -> tuple[str, str]:
    """The search region layer: the focus location's region, then that of each location clicked.

    Returns:
        The legend's ``(caption, text)`` of the region on show at first.
    """
    import folium
    from branca.element import MacroElement
    from jinja2 import Template

    caption = region_caption(regions)
    layer = folium.FeatureGroup(name=caption, show=True)
    layer.add_to(fmap)
    entries = []
    for i, (uuid, feature) in enumerate(zip(frame["uuid"], regions, strict=True)):
        geometry = feature.get("geometry")
        compact = _compact_geometry(geometry if isinstance(geometry, dict) else None)
        entries.append(
            {
                "text": region_text(i, len(frame), uuid, feature),
                "feature": {"type": "Feature", "geometry": compact, "properties": {}},
            }
        )
    script = MacroElement()
    script._template = Template("{% macro script(this, kwargs) %}{{ this.code }}{% endmacro %}")
    script.code = region_script(fmap.get_name(), layer.get_name(), groups, entries, focus)
    fmap.add_child(script, name="search_regions")
    return caption[0].lower() + caption[1:], str(entries[focus]["text"])
