"""HTML pieces of the web map: escaping, thumbnails, embedded assets, legend and popups."""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import os
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import HEADINGS, IMAGE_FORMATS
from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
from geoguess_utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    import folium

THUMBNAIL_COLUMNS: tuple[str, ...] = tuple(f"path_{h}" for h in HEADINGS)
"""Optional image path columns, one per heading."""

ERROR_BINS_KM: tuple[float, ...] = (0.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0)
"""Lower edges (km) of the error bins; the last bin (500 km and more) is open-ended.

The scale is fixed, so a colour means the same error on every map, whatever the data."""

ERROR_COLOURS: tuple[str, ...] = ("#1a9641", "#77c35c", "#c4e687", "#fee08b", "#fdae61", "#d7191c", "#7f0000")
"""One colour per bin of :data:`ERROR_BINS_KM`, from the smallest errors to the open top bin."""

PROBABILITY_COLOURS: tuple[str, ...] = ("#f2f0f7", "#bcbddc", "#807dba", "#54278f", "#2d004b")
"""Colour stops of the probability scale, from 0 to the largest probability."""

LEGEND_ID = "geoguess-legend"
"""The ``id`` of the legend's element in the page."""

REGION_TEXT_ID = "geoguess-region-text"
"""The ``id`` of the legend's text about the search region on show (its location and area)."""

REGION_CLASS = "geoguess-region"
"""CSS class of the search region's SVG path in the map."""

REGION_STYLE: dict[str, object] = {
    "color": "#1f5fd6",
    "weight": 2.5,
    "dashArray": "6 4",
    "fillColor": "#3a7bff",
    "fillOpacity": 0.15,
}
"""Leaflet style of a search region: a dashed blue outline over a faint fill, unlike the cells' colours."""

LEGEND_CORNER = "bottomleft"
"""Leaflet corner of the legend. Fitted to Croatia, the map shows the Adriatic and Italy
there: Croatia's islands and Dubrovnik lie towards the bottom right, its north-east
(Slavonia) towards the top right, where the layer control is."""

LEGEND_MAX_WIDTH_PX = 300
"""Widest the legend gets, pixels, padding included."""

LEGEND_MAX_HEIGHT_PX = 380
"""Tallest the legend gets, pixels, padding included; it scrolls beyond."""


def escape(value: object) -> str:
    """Text made safe for HTML and for the JavaScript template strings folium writes.

    Besides ``& < > " '`` this escapes the backtick, ``$`` and backslash, which folium's
    popup and tooltip code would otherwise interpret inside a JavaScript template string.

    Args:
        value: Anything; converted with ``str``.
    """
    text = html.escape(str(value), quote=True)
    return text.replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;")


def thumbnail_data_uri(
    path: str | os.PathLike[str], size_px: int = 96, quality: int = 70, max_pixels: int = DEFAULT_MAX_PIXELS
) -> str:
    """A small JPEG of an image as a ``data:`` URI, for embedding in the page.

    Args:
        path: Image file (JPEG, PNG, GIF, BMP, TIFF or WebP).
        size_px: Longest side of the thumbnail, pixels.
        quality: JPEG quality, 1 to 95.
        max_pixels: Refuse larger images before decoding them (decompression bombs).

    Returns:
        ``"data:image/jpeg;base64,..."``.

    Raises:
        DataError: When the file is missing, too large or cannot be decoded; the message names it.
    """
    from PIL import Image

    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            if image.width * image.height > max_pixels:
                raise DataError(
                    f"cannot make a thumbnail of {path}: {image.width}x{image.height} pixels exceeds the limit of "
                    f"{max_pixels} pixels (possible decompression bomb)"
                )
            image.draft("RGB", (size_px, size_px))
            small = image.convert("RGB")
            small.thumbnail((size_px, size_px))
    except DataError:
        raise
    except Exception as exc:  # any failure to decode a file from the dataset
        raise DataError(f"cannot make a thumbnail of {path}: {exc}") from exc
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=int(quality))
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def colour_scale(stops: Sequence[str], values: np.ndarray, vmax: float) -> list[str]:
    """Hex colours of ``values`` on a linear scale from 0 to ``vmax`` (clamped)."""
    from matplotlib.colors import LinearSegmentedColormap, to_hex

    cmap = LinearSegmentedColormap.from_list("scale", list(stops))
    scaled = np.clip(np.asarray(values, dtype=np.float64) / max(vmax, 1e-12), 0.0, 1.0)
    return [to_hex(c) for c in cmap(scaled)]


def error_bin(values_km: np.ndarray) -> np.ndarray:
    """Index into :data:`ERROR_BINS_KM` of each error.

    Args:
        values_km: Errors in km, any shape; negative values count as 0.

    Returns:
        Integer array of the same shape, 0 .. ``len(ERROR_BINS_KM) - 1``; bin ``i``
        holds errors from ``ERROR_BINS_KM[i]`` (included) up to the next edge (excluded).
    """
    edges = np.asarray(ERROR_BINS_KM[1:], dtype=np.float64)
    return np.searchsorted(edges, np.asarray(values_km, dtype=np.float64), side="right")


def error_colours(values_km: np.ndarray) -> list[str]:
    """Hex colour of each error (km) on the fixed binned scale, shape (N,) -> N colours."""
    return [ERROR_COLOURS[i] for i in error_bin(np.ravel(values_km))]


def error_bin_labels() -> list[str]:
    """Legend labels of the error bins: ``"0-10 km"``, ..., ``"500+ km"``."""
    edges = [f"{edge:g}" for edge in ERROR_BINS_KM]
    return [f"{low}-{high} km" for low, high in itertools.pairwise(edges)] + [f"{edges[-1]}+ km"]


def nice_ceiling(value: float) -> float:
    """Smallest of 1, 2, 2.5, 5 times a power of ten that is >= ``value`` (1 for values <= 0)."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10.0 * power


def _asset_text(package: str, *parts: str) -> str:
    try:
        return resources.files(package).joinpath("data", *parts).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            f"the offline map needs the packages xstatic-leaflet and xstatic-jquery "
            f"(pip install xstatic-leaflet xstatic-jquery), or pass offline=False to load Leaflet from the internet "
            f"({exc})"
        ) from exc


def _asset_data_uri(package: str, *parts: str) -> str:
    data = resources.files(package).joinpath("data", *parts).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def embed_assets(fmap: folium.Map) -> None:
    """Replace folium's CDN links with Leaflet and jQuery embedded in the page."""
    from branca.element import Element

    leaflet_js = _asset_text("xstatic.pkg.leaflet", "leaflet.js")
    leaflet_css = _asset_text("xstatic.pkg.leaflet", "leaflet.css")
    for image in ("layers.png", "layers-2x.png", "marker-icon.png"):
        leaflet_css = leaflet_css.replace(
            f"url(images/{image})", f"url({_asset_data_uri('xstatic.pkg.leaflet', 'images', image)})"
        )
    jquery_js = _asset_text("xstatic.pkg.jquery", "jquery.min.js")
    fmap.default_js = []
    fmap.default_css = []
    header = fmap.get_root().header
    # "</" never occurs in these libraries' source in a way that would end the tag early; check anyway.
    for name, code in (("leaflet.js", leaflet_js), ("jquery.min.js", jquery_js)):
        if "</script" in code.lower():
            raise ConfigError(f"{name} cannot be embedded: it contains a closing script tag")
    header.add_child(Element(f"<style>{leaflet_css}</style>"), name="leaflet_css_inline")
    header.add_child(Element(f"<script>{leaflet_js}</script>"), name="leaflet_js_inline")
    header.add_child(Element(f"<script>{jquery_js}</script>"), name="jquery_js_inline")


def _gradient_bar(stops: Sequence[str], vmax: float, unit: str, caption: str, top_label: str) -> str:
    labels = [f"0{unit}", f"{vmax / 2.0:.3g}{unit}", top_label]
    return (
        f'<div style="margin-top:6px">{escape(caption)}</div>'
        f'<div style="height:10px;width:200px;border:1px solid #777;'
        f'background:linear-gradient(to right,{",".join(stops)})"></div>'
        '<div style="display:flex;justify-content:space-between;width:202px;font-size:11px">'
        + "".join(f"<span>{escape(label)}</span>" for label in labels)
        + "</div>"
    )


def _error_key() -> str:
    """The fixed error scale as coloured swatches, one per bin, with their ranges."""
    swatches = "".join(
        f'<div style="display:flex;align-items:center;gap:4px"><span style="display:inline-block;width:14px;'
        f'height:10px;background:{colour};border:1px solid #777"></span>{escape(label)}</div>'
        for colour, label in zip(ERROR_COLOURS, error_bin_labels(), strict=True)
    )
    return (
        '<div style="margin-top:6px">error (line, prediction, cell mean); fixed scale, the same on every map</div>'
        f'<div style="display:grid;grid-template-columns:repeat(2,auto);column-gap:10px;font-size:11px">{swatches}'
        "</div>"
    )


def _region_key(caption: str, text: str) -> str:
    """The legend's line of the search region: its swatch, caption and the text of the region on show."""
    colour = REGION_STYLE["color"]
    swatch = (
        '<span style="display:inline-block;width:14px;height:10px;vertical-align:middle;'
        f'background:rgba(58,123,255,0.15);border:2px dashed {colour}"></span>'
    )
    return (
        f'<div style="margin-top:6px">{swatch} {escape(caption)}: <span id="{REGION_TEXT_ID}">{escape(text)}</span>'
        "</div>"
    )


def legend_html(
    title: str,
    summary: str,
    prob_max: float | None,
    notes: Sequence[str] = (),
    region: tuple[str, str] | None = None,
) -> str:
    """The map legend as HTML: title, summary line, colour key and notes.

    The title heads a ``<details>`` element, open at first, so a click on it folds the
    legend away; its size is capped at :data:`LEGEND_MAX_WIDTH_PX` by
    :data:`LEGEND_MAX_HEIGHT_PX` (it scrolls beyond). :func:`legend_control_js` places it.

    Args:
        title: Heading of the legend (escaped).
        summary: Summary line (escaped).
        prob_max: Top of the probability scale, or ``None`` without a probability layer.
        notes: Extra lines (escaped).
        region: ``(caption, text)`` of the search region layer, e.g. ``("search region (90 %)
            of the location clicked", "location 3 of 200 (uuid 79617a69…): 12,600 km²")``; the
            text sits in the element :data:`REGION_TEXT_ID`, which the map's script rewrites.
    """
    key = (
        '<div style="margin-top:4px">'
        '<span style="display:inline-block;width:9px;height:9px;border-radius:50%;background:#fff;'
        'border:1.5px solid #222"></span> true location &nbsp;'
        '<span style="display:inline-block;width:10px;height:10px;border-radius:50%;background:#fdae61;'
        'border:1px solid #333"></span> prediction</div>'
    )
    parts = [
        f"<div>{escape(summary)}</div>",
        *(f'<div style="color:#444">{escape(note)}</div>' for note in notes),
        key,
        _error_key(),
    ]
    if prob_max is not None:
        parts.append(
            _gradient_bar(
                PROBABILITY_COLOURS,
                prob_max,
                "",
                "probability per cell (optional layer, its prediction in cyan)",
                f"{prob_max:.3g}",
            )
        )
    if region is not None:
        parts.append(_region_key(*region))
    click = "its photos and search region" if region is not None else "its photos"
    parts.append(f'<div style="margin-top:6px;color:#555">Click a line or point for {click}.</div>')
    return (
        f'<div id="{LEGEND_ID}" hidden style="box-sizing:border-box;max-width:{LEGEND_MAX_WIDTH_PX}px;'
        f"max-height:{LEGEND_MAX_HEIGHT_PX}px;overflow:auto;background:rgba(255,255,255,0.92);"
        "padding:8px 10px;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,0.35);"
        'font-family:sans-serif;font-size:12px;line-height:1.35">'
        f'<details open><summary style="cursor:pointer;font-weight:bold;font-size:13px">{escape(title)}</summary>'
        + "".join(parts)
        + "</details></div>"
    )


def legend_control_js(map_name: str) -> str:
    """JavaScript that moves the legend (:func:`legend_html`) into a Leaflet control in :data:`LEGEND_CORNER`.

    Leaflet stacks the controls of one corner, so the legend sits above the scale bar
    instead of over it; clicks and scrolling on the legend do not move the map. Until
    then the legend is hidden: left in the page's flow under the full-height map, it would
    add a scroll bar that narrows the map while Leaflet fits it to Croatia.

    Args:
        map_name: The JavaScript variable of the map (``folium.Map.get_name()``).
    """
    if not map_name.isidentifier():
        raise ValueError(f"{map_name!r} is not a JavaScript variable name")
    return (
        "(function () {"
        f'  var legend = L.control({{position: "{LEGEND_CORNER}"}});'
        "  legend.onAdd = function () {"
        f'    var box = document.getElementById("{LEGEND_ID}");'
        '    box.classList.add("leaflet-control");'
        "    box.hidden = false;"
        "    L.DomEvent.disableClickPropagation(box);"
        "    L.DomEvent.disableScrollPropagation(box);"
        "    return box;"
        "  };"
        f"  legend.addTo({map_name});"
        "})();"
    )


def popup_html(row: pd.Series, thumbnails: dict[int, str | None], problems: dict[int, str]) -> str:
    """One location's popup as HTML: uuid, error and its four views (or why a view is missing)."""
    cells = []
    for heading in HEADINGS:
        if thumbnails.get(heading):
            body = f'<img src="{thumbnails[heading]}" style="display:block;width:100%" alt="view {heading}">'
        elif heading in problems:
            body = f'<div style="color:#a00;font-size:10px">image unavailable: {escape(problems[heading])}</div>'
        else:
            continue
        cells.append(f'<td style="vertical-align:top;padding:1px;width:25%">{body}<div>{heading}&deg;</div></td>')
    images = (
        f'<table style="border-collapse:collapse;margin-top:4px"><tr>{"".join(cells)}</tr></table>' if cells else ""
    )
    return (
        '<div style="font-family:sans-serif;font-size:12px">'
        f"<div><b>uuid</b> {escape(row['uuid'])}</div>"
        f"<div><b>error</b> {row['error_km']:.1f} km</div>"
        f"<div>true {row['true_lat']:.4f}, {row['true_lon']:.4f} &middot; "
        f"predicted {row['pred_lat']:.4f}, {row['pred_lon']:.4f}</div>"
        f"{images}</div>"
    )


def row_thumbnails(row: pd.Series, size_px: int) -> tuple[dict[int, str | None], dict[int, str]]:
    """One location's views as ``size_px`` JPEG data URLs by heading, and the problems of those that failed."""
    found: dict[int, str | None] = {}
    problems: dict[int, str] = {}
    for heading, column in zip(HEADINGS, THUMBNAIL_COLUMNS, strict=True):
        if column not in row.index:
            continue
        value = row[column]
        if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "":
            problems[heading] = "no path given"
            continue
        try:
            found[heading] = thumbnail_data_uri(str(value), size_px)
        except DataError as exc:
            problems[heading] = str(exc)
    return found, problems


def short_id(uuid: object, length: int = 8) -> str:
    """The first ``length`` characters of an identifier, with "…" when it is longer (not escaped)."""
    text = str(uuid)
    return text if len(text) <= length + 1 else text[:length] + "…"
