"""The web map's error colours: one fixed, binned scale stated in the legend."""

import re

import numpy as np
import pandas as pd
import pytest

from geoguess_utils.cells import square
from geoguess_utils.geo import borders, distance
from geoguess_utils.viz import webmap, webmap_html


@pytest.fixture(scope="module")
def class_table():
    lat, lon = borders.sample_points(200, np.random.default_rng(5))
    return square.fit_class_table(square.build_grid(0.5), lat, lon)


def _predictions(spread_deg, n=40, seed=0):
    rng = np.random.default_rng(seed)
    lat, lon = borders.sample_points(n, rng)
    pred_lat, pred_lon = lat + rng.normal(0, spread_deg, n), lon + rng.normal(0, spread_deg, n)
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


def test_bins_have_closed_lower_and_open_top_edges():
    values = np.array([0.0, 9.99, 10.0, 24.9, 25.0, 99.0, 100.0, 199.9, 200.0, 499.0, 500.0, 5000.0])
    assert webmap_html.error_bin(values).tolist() == [0, 0, 1, 1, 2, 3, 4, 4, 5, 5, 6, 6]
    assert len(webmap_html.ERROR_COLOURS) == len(webmap_html.ERROR_BINS_KM)
    assert webmap_html.error_bin_labels() == [
        "0-10 km",
        "10-25 km",
        "25-50 km",
        "50-100 km",
        "100-200 km",
        "200-500 km",
        "500+ km",
    ]


def test_same_error_same_colour_whatever_the_other_errors():
    """A demo-like run (errors up to ~200 km) and a real-like one (up to ~500 km) share the scale."""
    probe = np.array([5.0, 40.0, 150.0, 300.0])
    demo_like = np.concatenate([probe, np.linspace(0, 200, 50)])
    real_like = np.concatenate([probe, np.linspace(0, 600, 50)])
    assert webmap_html.error_colours(demo_like)[:4] == webmap_html.error_colours(real_like)[:4]
    # large errors are never green: 300 km is in the second-to-last (red) bin on both
    assert webmap_html.error_colours(np.array([300.0]))[0] == webmap_html.ERROR_COLOURS[5]


def test_map_legend_states_the_fixed_scale_and_notes(class_table):
    small = webmap.map_html(webmap.build_map(_predictions(0.1), class_table, thumbnails=False))
    large = webmap.map_html(
        webmap.build_map(_predictions(2.0, seed=1), class_table, thumbnails=False, notes=["trained on <real> data"])
    )
    for page in (small, large):
        assert "fixed scale" in page
        for label in webmap_html.error_bin_labels():
            assert label in page
    assert "trained on &lt;real&gt; data" in large and "trained on" not in small
    # every colour drawn on either map is one of the fixed bins' colours
    for page in (small, large):
        drawn = set(re.findall(r'"fillColor": "(#[0-9a-f]{6})"', page))
        assert drawn and drawn <= set(webmap_html.ERROR_COLOURS) | {"#000000", "#ede8da", "#f6f4ee", "#ffffff"}


def test_real_like_errors_reach_the_red_bins(class_table):
    frame = _predictions(2.0, seed=1)
    bins = webmap_html.error_bin(frame["error_km"].to_numpy())
    assert bins.max() >= 5  # errors of hundreds of km are drawn red, not green
    page = webmap.map_html(webmap.build_map(frame, class_table, thumbnails=False))
    assert webmap_html.ERROR_COLOURS[int(bins.max())] in page
