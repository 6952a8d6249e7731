"""The folium map in a real headless Chromium: where the legend lands, measured in the page.

The map is written to a file and opened at the window sizes people use; the legend's box,
read from the page, must cover no part of Croatia (every vertex of its outline, islands
included, placed by Leaflet itself), stay clear of the scale bar and the layer control, and
fold away when its title is clicked. A map with search regions draws the region of the
location clicked (an SVG path in its own pane) and says its area in the legend. Leaflet's own placement is compared with
:func:`_map_view.fitted_pixels`, which the browser-free tests in ``test_webmap.py`` rely on.
Without a browser the tests are skipped, the reason saying what to install.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from _browser import browser_or_skip, chromium_session, wait_for
from _map_view import fitted_pixels, fitted_zoom

from geoguess_utils.cells import square
from geoguess_utils.geo import borders, distance
from geoguess_utils.geo import regions as geometry
from geoguess_utils.viz import webmap, webmap_html

DUBROVNIK = (42.65, 18.09)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """(path of the map's HTML, the map's JavaScript name): 200 locations, a probability layer, regions, long notes."""
    browser_or_skip()
    rng = np.random.default_rng(0)
    lat, lon = borders.sample_points(300, np.random.default_rng(5))
    class_table = square.fit_class_table(square.build_grid(0.5), lat, lon)
    n = 200
    lat, lon = borders.sample_points(n, rng)
    pred_lat, pred_lon = lat + rng.normal(0, 0.3, n), lon + rng.normal(0, 0.3, n)
    predictions = pd.DataFrame(
        {
            "uuid": [f"79617a69-a16d-407d-905e-90d81bd9f{i:03d}" for i in range(n)],
            "true_lat": lat,
            "true_lon": lon,
            "pred_lat": pred_lat,
            "pred_lon": pred_lon,
            "error_km": distance.haversine_km(lat, lon, pred_lat, pred_lon),
        }
    )
    probabilities = rng.dirichlet(np.ones(len(class_table)), size=n)
    fmap = webmap.build_map(
        predictions,
        class_table,
        probabilities,
        title="classification model, test split (synthetic)",
        thumbnails=False,
        notes=[  # what `geoguess map` writes for a synthetic model shown real photos: the legend at its largest
            "trained on: synthetic data, 1,600 training locations of 2,000 in synthetic",
            "warning: this model was trained on synthetic images only and is now predicting real photos; expect "
            "errors near or above the predict-the-mean baseline (train on real data for a meaningful result)",
        ],
        regions=_discs(predictions, 40.0),  # a search region layer and its legend line
    )
    path = webmap.save_map(fmap, tmp_path_factory.mktemp("webmap") / "map.html")
    return path, fmap.get_name()


def _discs(predictions, radius_km):
    """A disc region around each prediction, as ``SearchRegions.features`` gives them."""
    properties = {"coverage": 0.9, "area_km2": float(np.pi * radius_km**2), "radius_km": radius_km}
    return [
        geometry.feature(geometry.geodesic_disc(lat, lon, radius_km), dict(properties))
        for lat, lon in zip(predictions["pred_lat"], predictions["pred_lon"], strict=True)
    ]


@pytest.fixture(scope="module")
def browser(page, tmp_path_factory):
    with chromium_session(tmp_path_factory) as driver:
        yield driver


def _open(driver, path, map_name, width, height):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.get(path.as_uri())
    wait_for(driver, lambda d: d.execute_script(f"return typeof {map_name} !== 'undefined' && !!{map_name}._loaded"))
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [width, height]


def _rect(driver, selector):
    return driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [r.left, r.top, r.right, r.bottom];",
        selector,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("width", "height"), [(1400, 1000), (1280, 800), (1920, 1080)])
def test_legend_covers_no_part_of_croatia(page, browser, width, height):
    path, map_name = page
    _open(browser, path, map_name, width, height)
    assert browser.execute_script(f"return {map_name}.getZoom()") == fitted_zoom(width, height)
    coords = shapely.get_coordinates(borders.croatia("full"))
    points = np.array(
        browser.execute_script(
            f"return arguments[0].map(([lon, lat]) => {{ const p = {map_name}.latLngToContainerPoint([lat, lon]);"
            " return [p.x, p.y]; });",
            coords.tolist(),
        )
    )
    expected = np.column_stack(fitted_pixels(width, height, coords[:, 1], coords[:, 0]))
    # the browser-free tests' model of the view holds (Leaflet rounds its pixel origin: up to a pixel more)
    np.testing.assert_allclose(points, expected, atol=2.0)
    legend = _rect(browser, f"#{webmap_html.LEGEND_ID}")
    assert legend[2] - legend[0] <= webmap_html.LEGEND_MAX_WIDTH_PX + 0.5
    assert legend[3] - legend[1] <= webmap_html.LEGEND_MAX_HEIGHT_PX + 0.5
    assert legend[2] - legend[0] > 150 and legend[3] - legend[1] > 150  # drawn, with its content
    box = shapely.box(*legend)
    outline = shapely.transform(borders.croatia("full"), lambda c: points)  # the same vertices, in the same order
    assert not outline.intersects(box), "the legend covers part of Croatia"
    (x,), (y,) = fitted_pixels(width, height, [DUBROVNIK[0]], [DUBROVNIK[1]])
    assert not box.contains(shapely.Point(x, y))
    scale = _rect(browser, ".leaflet-control-scale")
    assert legend[3] <= scale[1]  # stacked above the scale bar, not over it
    layers = shapely.box(*_rect(browser, ".leaflet-control-layers"))
    assert not layers.intersects(box)


@pytest.mark.slow
def test_legend_folds_away_when_its_title_is_clicked(page, browser):
    path, map_name = page
    _open(browser, path, map_name, 1400, 1000)
    zoom = browser.execute_script(f"return {map_name}.getZoom()")
    opened = _rect(browser, f"#{webmap_html.LEGEND_ID}")
    browser.find_element("css selector", f"#{webmap_html.LEGEND_ID} summary").click()
    wait_for(
        browser,
        lambda d: not d.execute_script(f"return document.querySelector('#{webmap_html.LEGEND_ID} details').open"),
    )
    folded = _rect(browser, f"#{webmap_html.LEGEND_ID}")
    assert folded[3] - folded[1] < 40 < opened[3] - opened[1]
    assert browser.execute_script(f"return {map_name}.getZoom()") == zoom  # the click did not reach the map


PLACES = {"Zagreb": (45.81, 15.98), "Osijek": (45.55, 18.69), "Split": (43.51, 16.44), "Zadar": (44.12, 15.23)}


@pytest.fixture(scope="module")
def region_page(tmp_path_factory):
    """(path, map name): four locations far apart, each with a disc region; Zadar's is unbounded."""
    browser_or_skip()
    lat, lon = np.array(list(PLACES.values())).T
    predictions = pd.DataFrame(
        {"uuid": list(PLACES), "true_lat": lat, "true_lon": lon, "pred_lat": lat + 0.1, "pred_lon": lon + 0.1}
    )
    regions = _discs(predictions, 25.0)
    regions[3] = geometry.feature(None, {"coverage": 0.9, "area_km2": None, "radius_km": None})
    class_table = square.fit_class_table(square.build_grid(0.5), lat, lon)
    fmap = webmap.build_map(predictions, class_table, focus=0, thumbnails=False, regions=regions)
    return webmap.save_map(fmap, tmp_path_factory.mktemp("regions") / "map.html"), fmap.get_name()


def _region_paths(driver):
    return driver.execute_script(
        f"return [...document.querySelectorAll('.leaflet-region-pane path.{webmap_html.REGION_CLASS}')]"
        ".map(p => { const r = p.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; });"
    )


@pytest.mark.slow
def test_the_region_of_the_location_clicked_is_drawn(region_page, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    path, map_name = region_page
    _open(browser, path, map_name, 1400, 1000)
    text = browser.find_element("id", webmap_html.REGION_TEXT_ID)
    assert text.text == "location 1 of 4 (uuid Zagreb): 1,960 km², a disc of radius 25 km around the prediction"
    assert len(_region_paths(browser)) == 1  # the focus location's, at first
    container = browser.find_element("id", map_name)
    for index, name in ((2, "Split"), (3, "Zadar"), (1, "Osijek")):
        lat, lon = PLACES[name]
        x, y = browser.execute_script(
            f"const p = {map_name}.latLngToContainerPoint([arguments[0], arguments[1]]); return [p.x, p.y];",
            lat + 0.1,
            lon + 0.1,
        )
        size = container.size
        ActionChains(browser).move_to_element_with_offset(
            container, round(x - size["width"] / 2), round(y - size["height"] / 2)
        ).click().perform()
        wait_for(browser, lambda d, i=index: d.execute_script(f"return {map_name}.geoguessRegionShown") == i)
        assert text.text.startswith(f"location {index + 1} of 4 (uuid {name}): ")
        paths = _region_paths(browser)
        if name == "Zadar":  # unbounded: nothing to draw, and the legend says so
            assert paths == [] and "unbounded" in text.text
            browser.execute_script(f"{map_name}.closePopup();")
            continue
        (box,) = paths
        left, top = (container.location[k] for k in ("x", "y"))
        assert box[0] < left + x < box[2] and box[1] < top + y < box[3]  # around the point clicked
        browser.execute_script(f"{map_name}.closePopup();")  # its popup would cover the next point
