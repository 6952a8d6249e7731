import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geoguess_utils.cells import square
from geoguess_utils.data import layout
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance
from geoguess_utils.viz import webmap, webmap_html

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


def test_probability_layer_only_when_given(class_table):
    preds = _predictions()
    without = webmap.map_html(webmap.build_map(preds, class_table))
    assert "Probability over cells" not in without
    probs = np.random.default_rng(0).dirichlet(np.ones(len(class_table)), size=len(preds))
    page = webmap.map_html(webmap.build_map(preds, class_table, probs))
    worst = preds.uuid[preds.error_km.idxmax()]
    assert f"Probability over cells: {worst}" in page
    page = webmap.map_html(webmap.build_map(preds, class_table, probs, focus=3))
    assert "Probability over cells: loc-3" in page


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
