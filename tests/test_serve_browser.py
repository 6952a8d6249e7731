"""The "where is this?" page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

The test starts ``geoguess serve`` on 127.0.0.1, opens the page, picks the four photos
of a synthetic location in the file inputs, clicks "Locate" and reads the predicted
coordinates from the page; they must be what ``geoguess predict`` gives for that
location. It then clicks "A random synthetic location" and checks the page shows the
true position and the error. Every resource the page loaded must come from the server
itself (the page works offline). A third test drops four photos, out of heading order, on the
drop zone and checks they are placed by their names. Another predicts from one photo (under its
heading, then of unknown heading) with a model that takes any views, and shows the server's
message for a model that needs all four. Others check the page before any photo is
chosen (plain placeholders, the land around Croatia drawn as land) and that the most probable
cells are listed by name. A calibrated model's search region is drawn as its own layer and its area
said in words; an uncalibrated model's answer says it has none. Without a browser the tests are
skipped, the reason saying what to install, unless ``GEOGUESS_REQUIRE_BROWSER=1`` (set by
``.ci/run``), when they fail instead.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import urllib.request
from pathlib import Path

import httpx
import pytest
from _browser import browser_or_skip, chromium_session, wait_for
from _serve_helpers import build_models, sample_uuids, truth
from test_serve_any_views import add_any_view_models
from test_serve_regions import add_calibrated_models

from geoguess_utils.cli.predict import predict_roots
from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.serve.loadtest import start_server, stop_server

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    browser_or_skip()
    base = tmp_path_factory.mktemp("serve_browser")
    sample, models = build_models(base, locations=12)
    add_any_view_models(sample, models)  # att.ckpt: takes one to four photos
    add_calibrated_models(sample, models, base / "cache")  # cal.ckpt: clf calibrated, with search regions
    expected = predict_roots(models / "clf.ckpt", [sample], cache_dir=base / "cache").set_index("uuid")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    server = start_server(models, ["--sample", str(sample)], timeout_s=120, env=env)
    try:
        yield sample, expected, server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser(served, tmp_path_factory):
    with chromium_session(tmp_path_factory) as driver:
        yield driver


def open_page(driver, url):
    driver.get(url + "/")
    wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")


@pytest.mark.slow
def test_upload_four_photos_and_read_the_prediction(served, browser):
    from selenium.webdriver.support.ui import Select

    sample, expected, server = served
    open_page(browser, server.url)
    Select(browser.find_element("id", "model")).select_by_value("clf")
    uuid = sample_uuids(sample)[2]
    for heading in (0, 90, 180, 270):
        browser.find_element("id", f"file-{heading}").send_keys(str(sample / "images" / uuid / f"{heading}.jpg"))
    for heading in (0, 90, 180, 270):  # each photo is shown under its heading
        assert browser.find_element("id", f"photo-{heading}").get_attribute("src").startswith("blob:")
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "status").text == "Done.")
    lat = float(browser.find_element("id", "lat").text)
    lon = float(browser.find_element("id", "lon").text)
    assert lat == pytest.approx(expected.loc[uuid, "latitude"], abs=2e-5)
    assert lon == pytest.approx(expected.loc[uuid, "longitude"], abs=2e-5)
    assert browser.find_element("id", "views-used").text == "4"
    items = [item.text for item in browser.find_elements("css selector", "#top5 li")]
    assert len(items) == 5
    names = {feature["properties"]["name"] for feature in _get_json(server.url + "/models/clf/cells")["features"]}
    for item in items:  # each cell by its name (nearest place, class point), not its number
        name, _, share = item.rpartition(": ")
        assert name in names and re.fullmatch(r"\d+\.\d\s%", share), item
        assert not re.match(r"cell \d", item)
    cells = browser.execute_script("return document.querySelectorAll('#map path.leaflet-interactive').length")
    assert cells >= 5  # the probability layer over the cells (and the marker) are drawn
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [r for r in resources if not r.startswith(server.url) and not r.startswith(("blob:", "data:"))]
    assert resources and not outside


@pytest.mark.slow
def test_random_synthetic_location_shows_the_truth(served, browser):
    from selenium.webdriver.support.ui import Select

    sample, expected, server = served
    open_page(browser, server.url)
    Select(browser.find_element("id", "model")).select_by_value("clf")  # expected holds clf's answers
    button = browser.find_element("id", "random")
    assert button.is_displayed()
    button.click()
    wait_for(browser, lambda d: d.find_element("id", "status").text == "Done.")
    uuid = browser.find_element("id", "photo-0").get_attribute("title").split("/")[0]
    assert uuid in sample_uuids(sample)
    lat, lon = (float(browser.find_element("id", name).text) for name in ("lat", "lon"))
    assert (lat, lon) == pytest.approx(tuple(expected.loc[uuid, ["latitude", "longitude"]]), abs=2e-5)
    true_lat, true_lon = truth(sample)[uuid]
    assert float(browser.find_element("id", "truth-lat").text) == pytest.approx(true_lat, abs=2e-5)
    km = float(browser.find_element("id", "error-km").text)
    rad = math.pi / 180
    h = (
        math.sin((true_lat - lat) * rad / 2) ** 2
        + math.cos(lat * rad) * math.cos(true_lat * rad) * math.sin((true_lon - lon) * rad / 2) ** 2
    )
    assert km == pytest.approx(2 * 6371.0088 * math.asin(math.sqrt(h)), abs=0.06)


@pytest.mark.slow
def test_dropped_photos_are_placed_by_their_names(served, browser):
    from selenium.webdriver.support.ui import Select

    sample, expected, server = served
    open_page(browser, server.url)
    Select(browser.find_element("id", "model")).select_by_value("clf")
    uuid = sample_uuids(sample)[5]
    script = """
        const [uuid, done] = [arguments[0], arguments[arguments.length - 1]];
        (async () => {
          const dropped = new DataTransfer();
          for (const h of ["270", "0", "180", "90"]) {  // not in heading order: the names decide
            const response = await fetch(`/sample/${uuid}/${h}`);
            dropped.items.add(new File([await response.blob()], `${h}.jpg`, { type: "image/jpeg" }));
          }
          document.getElementById("drop").dispatchEvent(
            new DragEvent("drop", { dataTransfer: dropped, bubbles: true, cancelable: true }));
          done(true);
        })().catch((error) => done(String(error)));
    """
    assert browser.execute_async_script(script, uuid) is True
    titles = [browser.find_element("id", f"photo-{h}").get_attribute("title") for h in (0, 90, 180, 270)]
    assert titles == ["0.jpg", "90.jpg", "180.jpg", "270.jpg"]
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "status").text == "Done.")
    lat, lon = (float(browser.find_element("id", name).text) for name in ("lat", "lon"))
    assert (lat, lon) == pytest.approx(tuple(expected.loc[uuid, ["latitude", "longitude"]]), abs=2e-5)


@pytest.mark.slow
def test_one_photo_is_enough_for_a_model_that_takes_any(served, browser):
    from selenium.webdriver.support.ui import Select

    sample, _, server = served
    open_page(browser, server.url)
    Select(browser.find_element("id", "model")).select_by_value("att")
    uuid = sample_uuids(sample)[4]
    photo = sample / "images" / uuid / "90.jpg"
    assert not browser.find_element("id", "locate").is_enabled()  # no photo yet
    browser.find_element("id", "file-90").send_keys(str(photo))
    wait_for(browser, lambda d: d.find_element("id", "locate").is_enabled())
    assert browser.find_element("id", "count").text == "1 of 4 photos chosen."
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "status").text == "Done.")
    assert browser.find_element("id", "views-used").text == "1"
    assert browser.find_element("id", "used").text == "From 1 of 4 photos (90°)."
    answer = httpx.post(
        f"{server.url}/models/att/predict", files={"90": ("90.jpg", photo.read_bytes(), "image/jpeg")}, timeout=60
    ).json()
    assert answer["views_used"] == 1
    lat, lon = (float(browser.find_element("id", name).text) for name in ("lat", "lon"))
    assert (lat, lon) == pytest.approx((answer["latitude"], answer["longitude"]), abs=1e-5)
    assert len(browser.find_elements("css selector", "#top5 li")) == 5

    # a model that concatenates the four views: the page shows the server's message
    Select(browser.find_element("id", "model")).select_by_value("clf")
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "status").get_attribute("class") == "error")
    assert "needs all four headings" in browser.find_element("id", "status").text
    assert not browser.find_element("id", "result").is_displayed()

    # one photo of unknown heading
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "empty-90").is_displayed()
    assert not browser.find_element("id", "locate").is_enabled()
    Select(browser.find_element("id", "model")).select_by_value("att")
    browser.find_element("id", "file-unknown").send_keys(str(photo))
    wait_for(browser, lambda d: d.find_element("id", "locate").is_enabled())
    assert len(browser.find_elements("css selector", "#loose img")) == 1
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "status").text == "Done.")
    assert browser.find_element("id", "used").text == "From 1 of 4 photos (heading unknown)."
    answer = httpx.post(
        f"{server.url}/models/att/predict", files={"photo": ("a.jpg", photo.read_bytes(), "image/jpeg")}, timeout=60
    ).json()
    assert answer["headings"] == ["unknown"]
    lat, lon = (float(browser.find_element("id", name).text) for name in ("lat", "lon"))
    assert (lat, lon) == pytest.approx((answer["latitude"], answer["longitude"]), abs=1e-5)


def _get_json(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def _pixel(png, x, y):
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").getpixel((round(x), round(y)))


def _colour(hex_colour):
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))


@pytest.mark.slow
def test_empty_photo_slots_show_a_plain_placeholder(served, browser):
    sample, _, server = served
    open_page(browser, server.url)
    for heading in (0, 90, 180, 270):  # before a photo is chosen: no image, a plain text placeholder
        image = browser.find_element("id", f"photo-{heading}")
        assert not image.is_displayed() and not image.get_attribute("src")
        empty = browser.find_element("id", f"empty-{heading}")
        assert empty.is_displayed() and empty.text == "no photo yet"
    broken = "return [...document.images].filter(i => i.getClientRects().length && !(i.complete && i.naturalWidth))"
    assert browser.execute_script(broken) == []  # no image shown without a picture in it
    uuid = sample_uuids(sample)[1]
    browser.find_element("id", "file-90").send_keys(str(sample / "images" / uuid / "90.jpg"))
    wait_for(browser, lambda d: d.find_element("id", "photo-90").is_displayed())
    assert browser.execute_script("return document.getElementById('photo-90').naturalWidth") > 0
    assert not browser.find_element("id", "empty-90").is_displayed()
    assert browser.find_element("id", "empty-0").is_displayed()  # the others still wait
    assert browser.execute_script(broken) == []


@pytest.mark.slow
def test_neighbouring_countries_are_land_and_the_sea_is_sea(served, browser):
    """Seen in the page itself: the countries around Croatia in the land colour, Croatia in its own, the sea blue."""
    _, _, server = served
    open_page(browser, server.url)
    places = {
        "Slovenia (Ljubljana)": ((46.05, 14.51), "#e2ded2"),
        "Bosnia and Herzegovina (Banja Luka)": ((44.77, 17.19), "#e2ded2"),
        "Hungary (Pecs)": ((46.07, 18.23), "#e2ded2"),
        "Italy (Perugia)": ((43.11, 12.39), "#e2ded2"),
        "Croatia (Zagreb)": ((45.81, 15.98), "#f4f1e8"),
        "the Adriatic": ((43.4, 14.6), "#a8c8e8"),
    }
    points = browser.execute_script(
        """
        const box = document.getElementById("map").getBoundingClientRect();
        return arguments[0].map(([lat, lon]) => {
          const p = map.latLngToContainerPoint([lat, lon]);
          return [box.left + p.x, box.top + p.y];
        });
        """,
        [list(point) for point, _ in places.values()],
    )
    png = browser.get_screenshot_as_png()
    for (name, (_, colour)), (x, y) in zip(places.items(), points, strict=True):
        found = _pixel(png, x, y)
        assert max(abs(a - b) for a, b in zip(found, _colour(colour), strict=True)) <= 6, (name, found, colour)


@pytest.mark.slow
def test_a_calibrated_model_draws_its_search_region(served, browser):
    from selenium.webdriver.support.ui import Select

    sample, _, server = served
    open_page(browser, server.url)
    assert "calibrated" in browser.find_element("css selector", "#model option[value='cal']").text
    Select(browser.find_element("id", "model")).select_by_value("cal")
    uuid = sample_uuids(sample)[3]
    for heading in (0, 90, 180, 270):
        browser.find_element("id", f"file-{heading}").send_keys(str(sample / "images" / uuid / f"{heading}.jpg"))
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "status").text == "Done.")
    text = browser.find_element("id", "region").text
    match = re.fullmatch(r"search region \(90\s%\): ([\d,.]+)\skm² \((\d+) cells?\)", text)
    assert match, text
    files = {str(h): (f"{h}.jpg", (sample / "images" / uuid / f"{h}.jpg").read_bytes(), "image/jpeg") for h in HEADINGS}
    answer = httpx.post(f"{server.url}/models/cal/predict", files=files, timeout=60).json()["region"]
    assert float(match.group(1).replace(",", "")) == pytest.approx(float(f"{answer['area_km2']:.3g}"))
    assert int(match.group(2)) == len(answer["geojson"]["properties"]["cells"])
    # drawn in its own pane, apart from the cells' probabilities, and named in the layer control
    region = browser.find_elements("css selector", "#map .leaflet-region-pane path.search-region")
    assert len(region) == 1 and region[0].get_attribute("d")
    assert region[0].get_attribute("stroke-dasharray") == "6 4" and region[0].get_attribute("fill") == "#3a7bff"
    cells = browser.find_elements("css selector", "#map .leaflet-overlay-pane path.leaflet-interactive")
    assert len(cells) >= 5 and not any("search-region" in (c.get_attribute("class") or "") for c in cells)
    names = [label.text for label in browser.find_elements("css selector", ".leaflet-control-layers-overlays label")]
    assert names == ["cell probabilities", "search region"]

    # a wider coverage asked for on the page: the answer on show is asked again, its region grows
    Select(browser.find_element("id", "coverage")).select_by_value("0.95")
    wait_for(browser, lambda d: d.find_element("id", "region").text.startswith("search region (95"))
    wider = re.search(r"([\d,.]+)\skm²", browser.find_element("id", "region").text).group(1)
    assert float(wider.replace(",", "")) >= float(match.group(1).replace(",", ""))

    # a model never calibrated: no region, and the page says why
    Select(browser.find_element("id", "model")).select_by_value("clf")
    browser.find_element("id", "locate").click()
    wait_for(browser, lambda d: d.find_element("id", "region").text.startswith("no search region"))
    assert browser.find_element("id", "region").text == (
        "no search region: the model is not calibrated (geoguess calibrate)"
    )
    assert browser.find_elements("css selector", "#map path.search-region") == []
