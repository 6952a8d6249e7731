"""The "where is this?" page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

The test starts ``geoguess serve`` on 127.0.0.1, opens the page, picks the four photos
of a synthetic location in the file inputs, clicks "Locate" and reads the predicted
coordinates from the page; they must be what ``geoguess predict`` gives for that
location. It then clicks "A random synthetic location" and checks the page shows the
true position and the error. Every resource the page loaded must come from the server
itself (the page works offline). A third test drops four photos, out of heading order, on the
drop zone and checks they are placed by their names. Without a browser the test is skipped, unless
``GEOGUESS_REQUIRE_BROWSER=1`` (set by ``.ci/run``), when it fails instead.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest
from _serve_helpers import build_models, sample_uuids, truth

from geoguess_utils.cli.predict import predict_roots
from geoguess_utils.serve.loadtest import start_server, stop_server

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("GEOGUESS_REQUIRE_BROWSER") == "1"


def _browser_or_skip():
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"browser test needs {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    _browser_or_skip()
    base = tmp_path_factory.mktemp("serve_browser")
    sample, models = build_models(base, locations=12)
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
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout_s=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.1).until(condition)


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
    assert len(browser.find_elements("css selector", "#top5 li")) == 5
    cells = browser.execute_script("return document.querySelectorAll('#map path.leaflet-interactive').length")
    assert cells >= 5  # the probability layer over the cells (and the marker) are drawn
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [r for r in resources if not r.startswith(server.url) and not r.startswith(("blob:", "data:"))]
    assert resources and not outside


@pytest.mark.slow
def test_random_synthetic_location_shows_the_truth(served, browser):
    sample, expected, server = served
    open_page(browser, server.url)
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
    sample, expected, server = served
    open_page(browser, server.url)
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
