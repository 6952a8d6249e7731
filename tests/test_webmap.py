import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
import shapely
from _map_view import fitted_pixels
from PIL import Image

from geoguess_utils.cells import square
from geoguess_utils.data import layout
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance
from geoguess_utils.viz import place_names, webmap, webmap_html, webmap_regions

HOSTILE_UUID = "<script>alert(1)</script>\"'`${document.title='x'}`\\"


@pytest.fixture(scope="module")
def class_table():
    lat, lon = borders.sample_points(200, np.random.default_rng(5))
    return square.fit_class_table(square.build_grid(0.5), lat, lon)


def _predictions(n=12, seed=0):
    rng = np.random.default_rng(seed)
    lat, lon = borders.sample_points(n, rng)
    pred_lat = lat + rng.normal(0, 0.2, n)
    pred_lon = lon + rng.normal(0, 0.2, n)
    return pd.DataFrame(
        {
            "uuid": [f"loc-{i}" for i in range(n)],
            "true_lat": lat,
            "true_lon": lon,
            "pred_lat": pred_lat,
            "pred_lon": pred_lon,
            "error_km": distance.haversine_km(lat, lon, pred_lat, pred_lon),
        }
    )


def _write_views(folder, size=64):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i, heading in enumerate(layout.HEADINGS):
        path = folder / f"{heading}.jpg"
        Image.new("RGB", (size, size), (40 * i, 100, 200 - 40 * i)).save(path, quality=90)
        paths[f"path_{heading}"] = str(path)
    return paths


def test_escape_neutralises_html_and_template_strings():
    text = webmap_html.escape(HOSTILE_UUID)
    for raw in "<>\"'`$\\":
        assert raw not in text
    assert "&lt;script&gt;" in text


def test_hostile_strings_never_reach_the_page_raw(class_table, tmp_path):
    preds = _predictions()
    preds.loc[0, "uuid"] = HOSTILE_UUID
    hostile_path = str(tmp_path / "<img src=x onerror=alert(2)>.jpg")
    for column in webmap_html.THUMBNAIL_COLUMNS:
        preds[column] = hostile_path
    probs = np.full((len(preds), len(class_table)), 1.0 / len(class_table))
    with pytest.warns(UserWarning, match="could not be shown"):
        page = webmap.map_html(
            webmap.build_map(preds, class_table, probs, focus=HOSTILE_UUID, title="<b>title</b>`${1}`")
        )
    assert "<script>alert(1)</script>" not in page
    assert "<img src=x onerror" not in page
    assert "${document.title" not in page
    assert "`${1}`" not in page
    assert "<b>title</b>" not in page
    assert webmap_html.escape(HOSTILE_UUID) in page  # shown, as text
    assert "image unavailable" in page


def test_page_is_standalone(class_table):
    page = webmap.map_html(webmap.build_map(_predictions(), class_table, thumbnails=False))
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+stylesheet", page)
    assert "L.map(" in page and "jQuery" in page  # both libraries are embedded
    assert "Land outline (drawn offline)" in page
    assert "OpenStreetMap tiles (needs internet)" in page
    online = webmap.map_html(webmap.build_map(_predictions(), class_table, thumbnails=False, offline=False))
    assert re.search(r"<script[^>]+src=\"https://", online)


def test_popups_carry_four_small_thumbnails(class_table, tmp_path):
    preds = _predictions(3)
    for i in range(3):
        for column, path in _write_views(tmp_path / f"loc{i}", size=200).items():
            preds.loc[i, column] = path
    page = webmap.map_html(webmap.build_map(preds, class_table, thumbnail_px=48))
    uris = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", page)
    assert len(uris) == 12
    image = Image.open(io.BytesIO(base64.b64decode(uris[0])))
    assert max(image.size) == 48
    assert page.count("0&deg;") >= 3 and page.count("270&deg;") >= 3


def test_thumbnail_of_a_broken_file_names_it(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"bad\.jpg"):
        webmap_html.thumbnail_data_uri(bad)


def test_cell_errors_are_per_cell_means(class_table):
    preds = _predictions(30, seed=2)
    table = webmap.cell_errors(class_table, preds)
    classes = square.assign_classes(class_table, preds.true_lat, preds.true_lon)
    assert table.n.sum() == len(preds)
    for class_index in np.unique(classes):
        row = table[table.class_index == class_index].iloc[0]
        assert row.n == (classes == class_index).sum()
        assert row.mean_error_km == pytest.approx(preds.error_km[classes == class_index].mean())
    assert table[table.n == 0].mean_error_km.isna().all()


def test_error_km_is_computed_when_missing(class_table):
    preds = _predictions().drop(columns="error_km")
    checked = webmap.check_predictions(preds)
    expected = distance.haversine_km(preds.true_lat, preds.true_lon, preds.pred_lat, preds.pred_lon)
    np.testing.assert_allclose(checked.error_km, expected)


def _layer_names(page):
    """The names of the layers in the page's layer control (folium writes them as the keys of overlays)."""
    block = re.search(r"overlays\s*:\s*\{(.*?)\}", page, re.S)
    assert block, "no layer control in the page"
    return [json.loads(f'"{name}"') for name in re.findall(r'"((?:[^"\\]|\\.)+)"\s*:', block.group(1))]


def test_probability_layer_only_when_given(class_table):
    preds = _predictions()
    without = webmap.map_html(webmap.build_map(preds, class_table))
    assert "Probability over cells" not in without
    probs = np.random.default_rng(0).dirichlet(np.ones(len(class_table)), size=len(preds))
    page = webmap.map_html(webmap.build_map(preds, class_table, probs))
    worst = int(preds.error_km.idxmax())
    assert f"Probability over cells: location {worst + 1} of {len(preds)}, " in page
    page = webmap.map_html(webmap.build_map(preds, class_table, probs, focus=3))
    assert "Probability over cells: location 4 of 12, " in page and "(uuid loc-3)" in page


def test_probability_layer_is_named_for_people_not_by_its_uuid(class_table):
    """The layer control names the location by its row, its nearest place and a short uuid."""
    preds = _predictions()
    preds["uuid"] = [f"79617a69-a16d-407d-905e-90d81bd9f{i:03d}" for i in range(len(preds))]
    zagreb = 3
    preds.loc[zagreb, ["true_lat", "true_lon"]] = (45.8131, 15.9775)  # the centre of Zagreb
    probs = np.random.default_rng(0).dirichlet(np.ones(len(class_table)), size=len(preds))
    page = webmap.map_html(webmap.build_map(preds, class_table, probs, focus=preds.uuid[zagreb]))
    (label,) = [name for name in _layer_names(page) if name.startswith("Probability over cells")]
    (place,) = place_names.place_labels([45.8131], [15.9775])
    assert place.startswith("Zagreb")  # GeoNames calls the centre "Zagreb - Centar"
    assert label == f"Probability over cells: location 4 of 12, {place} (uuid 79617a69…)"
    assert preds.uuid[zagreb] not in label
    assert preds.uuid[zagreb] in page  # the full uuid stays in the points' tooltips
    elsewhere = webmap.probability_layer_label(0, 5, "abc", 44.3, 15.6)  # in the hills east of Zadar
    assert re.fullmatch(
        r"Probability over cells: location 1 of 5, \d+ km [NESW]{1,2} of [^()]+ \(uuid abc\)", elsewhere
    )
    assert webmap_html.short_id("123456789") == "123456789" and webmap_html.short_id("1234567890") == "12345678…"


def test_bad_inputs_are_refused(class_table):
    preds = _predictions()
    with pytest.raises(DataError, match="pred_lon"):
        webmap.build_map(preds.drop(columns="pred_lon"), class_table)
    broken = preds.copy()
    broken.loc[4, "pred_lat"] = np.nan
    with pytest.raises(DataError, match="loc-4"):
        webmap.build_map(broken, class_table)
    with pytest.raises(DataError, match="no predictions"):
        webmap.build_map(preds.iloc[:0], class_table)
    with pytest.raises(DataError, match="shape"):
        webmap.build_map(preds, class_table, np.ones((len(preds), len(class_table) + 1)))
    with pytest.raises(DataError, match="non-negative"):
        webmap.build_map(preds, class_table, -np.ones((len(preds), len(class_table))))
    probs = np.ones((len(preds), len(class_table)))
    with pytest.raises(ConfigError, match="nobody"):
        webmap.build_map(preds, class_table, probs, focus="nobody")
    with pytest.raises(ConfigError, match="out of range"):
        webmap.build_map(preds, class_table, probs, focus=len(preds))
    with pytest.raises(DataError, match="lat_max"):
        webmap.build_map(preds, class_table.drop(columns="lat_max"))


def test_save_map_writes_the_page_atomically(class_table, tmp_path):
    fmap = webmap.build_map(_predictions(), class_table)
    target = tmp_path / "maps" / "predictions.html"
    assert webmap.save_map(fmap, target) == target
    text = target.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert [p.name for p in target.parent.iterdir()] == ["predictions.html"]


@pytest.mark.parametrize(
    ("value", "expected"), [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0), (1.2, 2.0), (23.0, 25.0), (26.0, 50.0), (260.0, 500.0)]
)
def test_nice_ceiling(value, expected):
    assert webmap_html.nice_ceiling(value) == pytest.approx(expected)


# ---------------------------------------------------------------------------- the legend's place
SCALE_BAR_PX = 80
"""Room left under the legend for Leaflet's scale bar and the corner's margins, pixels (about 60 in practice)."""


def _croatia_points():
    coords = shapely.get_coordinates(borders.croatia("full"))
    return coords[:, 1], coords[:, 0]  # lat, lon of every vertex, islands included


def test_fitted_view_follows_leaflet():
    """At 1400 x 1000 the map is fitted at zoom 7 with Croatia in the middle, Dubrovnik in the lower right."""
    lat, lon = _croatia_points()
    x, y = fitted_pixels(1400, 1000, lat, lon)
    assert 400 < x.min() < x.max() < 1000 and 200 < y.min() < y.max() < 800
    (dx,), (dy,) = fitted_pixels(1400, 1000, [42.65], [18.09])
    assert dx > 700 and dy > 700  # Dubrovnik, where a legend in the bottom-right corner would cover it


@pytest.mark.parametrize(("width", "height"), [(1400, 1000), (1280, 800), (1366, 768), (1600, 900), (1920, 1080)])
def test_legend_covers_no_part_of_croatia(class_table, width, height):
    """The legend sits in a corner that shows no Croatian land at the fitted view, at its largest size."""
    probs = np.full((12, len(class_table)), 1.0 / len(class_table))
    fmap = webmap.build_map(_predictions(), class_table, probs, thumbnails=False, notes=["a long note " * 12])
    page = webmap.map_html(fmap)
    legend = re.search(rf'<div id="{webmap_html.LEGEND_ID}" hidden style="([^"]*)"', page)  # shown once placed
    assert legend, "the legend is missing"
    style = legend.group(1)
    assert "position:fixed" not in style  # a Leaflet control, stacked with the scale bar
    assert f"max-width:{webmap_html.LEGEND_MAX_WIDTH_PX}px" in style and "box-sizing:border-box" in style
    assert f"max-height:{webmap_html.LEGEND_MAX_HEIGHT_PX}px" in style and "overflow:auto" in style
    script = page.index(f'L.control({{position: "{webmap_html.LEGEND_CORNER}"}})')
    assert page.index(f"var {fmap.get_name()} = L.map(") < script  # run once the map exists
    assert f"legend.addTo({fmap.get_name()})" in page and "box.hidden = false;" in page
    assert webmap_html.LEGEND_CORNER == "bottomleft"
    box = shapely.box(
        0, height - SCALE_BAR_PX - webmap_html.LEGEND_MAX_HEIGHT_PX, 10 + webmap_html.LEGEND_MAX_WIDTH_PX, height
    )
    lat, lon = _croatia_points()
    x, _ = fitted_pixels(width, height, lat, lon)
    croatia_px = shapely.transform(
        borders.croatia("full"), lambda c: np.column_stack(fitted_pixels(width, height, c[:, 1], c[:, 0]))
    )
    assert not croatia_px.intersects(box)
    assert x.min() > box.bounds[2] + 20  # with room to spare


def test_legend_folds_away():
    """The legend is a <details> element, open at first, headed by the title."""
    html = webmap_html.legend_html("My <title>", "3 locations", 0.5, ["note"])
    assert re.search(r"<details open><summary[^>]*>My &lt;title&gt;</summary>", html)
    assert html.rstrip().endswith("</details></div>")
    with pytest.raises(ValueError):
        webmap_html.legend_control_js("map; alert(1)")


def _disc_regions(preds, radius_km=30.0, coverage=0.9):
    """One search region per prediction, as ``SearchRegions.features`` gives a disc's."""
    from geoguess_utils.geo import regions as geometry

    area = float(np.pi * radius_km**2)
    return [
        geometry.feature(
            geometry.geodesic_disc(lat, lon, radius_km),
            {"coverage": coverage, "area_km2": area, "radius_km": radius_km},
        )
        for lat, lon in zip(preds["pred_lat"], preds["pred_lon"], strict=True)
    ]


def _region_entries(page):
    match = re.search(r"var regions = (\[.*?\]);\s*var groups", page)
    assert match, "no region data in the page"
    return json.loads(match.group(1))


def test_region_layer_only_when_given(class_table):
    from geoguess_utils.geo import regions as geometry

    preds = _predictions()
    without = webmap.map_html(webmap.build_map(preds, class_table, thumbnails=False))
    assert "Search region" not in without and webmap_html.REGION_TEXT_ID not in without
    regions = _disc_regions(preds)
    regions[2] = geometry.feature(None, {"coverage": 0.9, "area_km2": None, "radius_km": None})  # unbounded
    page = webmap.map_html(webmap.build_map(preds, class_table, thumbnails=False, regions=regions, focus=4))
    assert "Search region (90 %) of the location clicked" in _layer_names(page)
    entries = _region_entries(page)
    assert len(entries) == 12 and entries[2]["feature"]["geometry"] is None and "unbounded" in entries[2]["text"]
    ring = np.asarray(entries[4]["feature"]["geometry"]["coordinates"][0])
    centre = (ring.min(axis=0) + ring.max(axis=0)) / 2
    assert centre == pytest.approx([preds["pred_lon"][4], preds["pred_lat"][4]], abs=0.01)
    assert 10 <= len(ring) < 73  # simplified (to about 1 km): fewer vertices than the disc
    # the legend starts with the focus location's region; the script then shows each location clicked
    text = "location 5 of 12 (uuid loc-4): 2,830 km², a disc of radius 30 km around the prediction"
    assert f'<span id="{webmap_html.REGION_TEXT_ID}">{text}</span>' in page and text == entries[4]["text"]
    assert "show(4);" in page and 'group.on("click"' in page
    assert "Click a line or point for its photos and search region." in page
    with pytest.raises(DataError, match="one GeoJSON Feature per prediction"):
        webmap.build_map(preds, class_table, thumbnails=False, regions=regions[:5])


def test_region_text_of_hostile_uuids_stays_text(class_table):
    preds = _predictions()
    preds.loc[0, "uuid"] = "</script>"  # short enough to be shown whole
    preds.loc[1, "uuid"] = "${x}`<b>"
    page = webmap.map_html(
        webmap.build_map(preds, class_table, thumbnails=False, regions=_disc_regions(preds), focus=0)
    )
    entries = _region_entries(page)
    assert entries[0]["text"].startswith("location 1 of 12 (uuid </script>):")  # shown as text
    assert entries[1]["text"].startswith("location 2 of 12 (uuid ${x}`<b>):")
    script = re.search(r"var regions = (\[.*?\]);", page).group(1)
    assert not any(raw in script for raw in "<>`$")  # only as \\uXXXX escapes in the script
    assert f'<span id="{webmap_html.REGION_TEXT_ID}">location 1 of 12 (uuid &lt;/script&gt;)' in page


@pytest.mark.parametrize(
    ("area", "text"),
    [
        (12634.2, "12,600 km²"),
        (56.34, "56.3 km²"),
        (0.4567, "0.457 km²"),
        (float("inf"), "unbounded"),
        (None, "unbounded"),
    ],
)
def test_area_text(area, text):
    assert webmap_regions.area_text(area).startswith(text)
