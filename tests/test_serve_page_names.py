"""The page's names and base map: cells named after places, land around Croatia, plain empty photo slots.

Through FastAPI's TestClient (no browser): ``/models/{name}/cells`` names every cell after
its nearest place and class point, computed once per model; ``/land`` is the land of the
countries around Croatia, which meets Croatia's outline without a strip of sea; the page's
static files show a placeholder, not an empty image, before a photo is chosen.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from _serve_helpers import app_client, build_models

from geoguess_utils.geo import borders, distance, places
from geoguess_utils.serve.app import STATIC_DIR
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.viz import place_names

fastapi_testclient = pytest.importorskip("fastapi.testclient")

LABEL = re.compile(r"(?:(?P<km>\d+) km (?P<dir>N|NE|E|SE|S|SW|W|NW) of )?(?P<place>.+)")
CELL_NAME = re.compile(r"(?P<label>.+) \((?P<lat>\d+\.\d\d)° N, (?P<lon>\d+\.\d\d)° E\)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("serve_names"))


@pytest.fixture(scope="module")
def client(served):
    _, models = served
    with app_client(models) as test_client:
        yield test_client


# ---------------------------------------------------------------------------- names of places and cells
def test_a_place_is_named_after_itself():
    table = places.croatian_places()
    labels = place_names.place_labels(table["latitude"], table["longitude"])
    same_spot = {  # a few places share their coordinates: any of their names will do
        (a, o): set(group["name"]) for (a, o), group in table.groupby(["latitude", "longitude"])
    }
    for label, lat, lon in zip(labels, table["latitude"], table["longitude"], strict=True):
        assert label in same_spot[(lat, lon)]
    assert place_names.place_labels([45.8131], [15.9775])[0].startswith("Zagreb")
    assert place_names.place_labels([42.6507], [18.0944]) == ["Dubrovnik"]


def test_a_point_away_from_places_is_named_by_distance_and_direction():
    lat, lon = [43.4, 44.3, 45.0], [14.6, 15.6, 13.2]  # the open Adriatic, the hills behind Zadar, off Istria
    table = places.croatian_places()
    for label, a, o in zip(place_names.place_labels(lat, lon), lat, lon, strict=True):
        match = LABEL.fullmatch(label)
        assert match and match["km"], label
        km_to_all = distance.haversine_km(a, o, table["latitude"].to_numpy(), table["longitude"].to_numpy())
        nearest = table.iloc[int(np.argmin(km_to_all))]
        assert match["place"] == nearest["name"]
        assert int(match["km"]) == round(float(km_to_all.min()))
        north = a - nearest["latitude"]
        east = (o - nearest["longitude"]) * np.cos(np.radians(a))
        bearing = np.degrees(np.arctan2(east, north)) % 360
        assert match["dir"] == place_names.compass_point([bearing])[0]
    assert place_names.compass_point([0, 22.4, 22.6, 90, 135, 180, 269, 315, 359.9, -90]) == [
        "N",
        "N",
        "NE",
        "E",
        "SE",
        "S",
        "W",
        "NW",
        "N",
        "W",
    ]


def test_cell_names_give_the_place_and_the_centre():
    names = place_names.cell_names([45.8131, 44.3], [15.9775, 15.6])
    for name, lat, lon in zip(names, [45.8131, 44.3], [15.9775, 15.6], strict=True):
        match = CELL_NAME.fullmatch(name)
        assert match, name
        assert (float(match["lat"]), float(match["lon"])) == pytest.approx((lat, lon), abs=0.005)
    assert names[0].startswith("Zagreb")
    with pytest.raises(ValueError, match="non-finite"):
        place_names.cell_names([np.nan], [15.0])


# ---------------------------------------------------------------------------- the cells the page lists
def test_cells_carry_names_computed_once_per_model(client, served, monkeypatch):
    _, models = served
    calls = []
    original = place_names.cell_names

    def counting(lat, lon):
        calls.append(len(lat))
        return original(lat, lon)

    monkeypatch.setattr(place_names, "cell_names", counting)
    context = load_task(models / "clf.ckpt").context
    first = client.get("/models/clf/cells").json()
    again = client.get("/models/clf/cells").json()
    assert first == again and calls == [context.num_classes]  # named once, then served from the cache
    points = context.centroids_latlon()
    expected = original(points[:, 0], points[:, 1])
    for feature, name, (lat, lon) in zip(first["features"], expected, points, strict=True):
        properties = feature["properties"]
        assert properties["name"] == name
        assert (properties["latitude"], properties["longitude"]) == pytest.approx((lat, lon))
        assert CELL_NAME.fullmatch(name) and not re.match(r"cell \d", name)
    assert len({feature["properties"]["name"] for feature in first["features"]}) == context.num_classes


# ---------------------------------------------------------------------------- the land around Croatia
def test_land_is_the_neighbouring_countries_and_meets_croatia(client):
    response = client.get("/land")
    assert response.status_code == 200 and len(response.content) < 200_000  # simplified
    land = shapely.geometry.shape(response.json())
    outline = shapely.geometry.shape(client.get("/outline").json())
    assert land.geom_type in ("Polygon", "MultiPolygon") and land.is_valid
    for lat, lon in [(46.05, 14.51), (44.77, 17.19), (46.07, 18.23), (43.11, 12.39), (42.44, 19.26), (44.82, 20.46)]:
        assert land.contains(shapely.Point(lon, lat)), (lat, lon)  # Ljubljana ... Podgorica, Belgrade
    for lat, lon in [(43.4, 14.6), (42.0, 17.0), (44.5, 13.2)]:  # the Adriatic stays sea
        assert not land.intersects(shapely.Point(lon, lat).buffer(0.02)), (lat, lon)
    assert not land.contains(shapely.Point(15.9775, 45.8131))  # Zagreb is drawn by Croatia's outline
    # along Croatia's land borders, the two shapes the page draws leave no sea between them
    region = shapely.box(12.0, 41.5, 21.0, 47.5)
    others = borders.countries()
    others = shapely.intersection(shapely.union_all(others[others["ISO_A3"] != "HRV"].geometry.values), region)
    border = shapely.intersection(borders.croatia("full").boundary, others.buffer(1e-3))
    points = shapely.points(shapely.get_coordinates(shapely.segmentize(border, 0.01)))
    assert len(points) > 1000
    drawn = shapely.union(land, outline)
    gaps_deg = shapely.distance(drawn, points)  # 0 where covered (up to rounding at the coast)
    assert gaps_deg.max() < 1e-6, f"{gaps_deg.max() * 111:.2f} km of sea between Croatia and a neighbour"
    inland = shapely.intersection(shapely.buffer(others, -0.05), shapely.box(13.0, 42.0, 20.0, 47.0))  # off the coasts
    assert shapely.covers(land, shapely.points(shapely.get_coordinates(inland.boundary)[::20])).all()
    assert client.get("/land").json() == response.json()  # served from the cache


# ---------------------------------------------------------------------------- the page's files
def test_empty_photo_slots_hold_a_placeholder_not_an_empty_image():
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == 4
    for tag in images:  # no image is shown before it has a picture
        assert re.search(r"\shidden[\s>]", tag) and "src=" not in tag, tag
    for heading in (0, 90, 180, 270):
        assert re.search(rf'<span id="empty-{heading}" class="empty">no photo yet</span>', html)
    css = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
    # the images' own display rule would otherwise override the hidden attribute
    assert re.search(r"\[hidden\]\s*\{\s*display:\s*none\s*!important;?\s*\}", css)
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert "img.hidden = false" in script and "empty.hidden = true" in script


def test_the_page_draws_the_land_and_names_the_cells():
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    assert '"/land"' in script and '"/outline"' in script
    assert "cell ${" not in script  # cells are no longer listed by number
    assert "properties.name" in script
    assert "tile.openstreetmap.org" in script and "if (event.target.checked)" in script  # tiles only when asked
