"""The label-smoothing figure: its targets are the loss's own, and it draws them cell by cell."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.collections import PatchCollection

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.cells.scheme import CellScheme
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance
from geoguess_utils.geo.soft_targets import haversine_soft_targets
from geoguess_utils.viz import label_smoothing

ZAGREB = (45.815, 15.982)


@pytest.fixture(scope="module")
def context(croatia_points) -> GeoContext:
    lat, lon = croatia_points
    return GeoContext.fit(lat, lon, spacing_deg=0.3)


def test_tau_zero_is_one_hot_on_the_own_cell(context):
    weights = label_smoothing.smoothing_targets(context, *ZAGREB, taus_km=[0])[0.0]
    own = int(context.assign([ZAGREB[0]], [ZAGREB[1]])[0])
    assert weights.shape == (context.num_classes,)
    assert weights[own] == 1.0 and weights.sum() == 1.0


def test_soft_targets_are_the_loss_targets_and_spread_with_tau(context):
    targets = label_smoothing.smoothing_targets(context, *ZAGREB, taus_km=(10.0, 25.0, 100.0))
    points = torch.as_tensor(context.centroids_latlon(), dtype=torch.float64)
    expected = haversine_soft_targets(torch.tensor([ZAGREB], dtype=torch.float64), points, 25.0)[0].numpy()
    np.testing.assert_allclose(targets[25.0], expected)
    d_km = distance.haversine_km(ZAGREB[0], ZAGREB[1], points[:, 0].numpy(), points[:, 1].numpy())
    entropies = []
    for weights in targets.values():
        np.testing.assert_allclose(weights.sum(), 1.0)
        assert np.argmax(weights) == np.argmin(d_km)  # heaviest at the nearest class point
        order = np.argsort(d_km)
        assert np.all(np.diff(weights[order]) <= 1e-12)  # never heavier further away
        entropies.append(-(weights * np.log(np.clip(weights, 1e-300, None))).sum())
    assert entropies == sorted(entropies) and entropies[0] < entropies[-1]  # a larger tau spreads more


def test_figure_has_one_panel_per_tau_coloured_by_the_targets(context):
    taus = (0.0, 10.0, 25.0)
    fig = label_smoothing.plot_label_smoothing(context, *ZAGREB, taus_km=taus)
    try:
        targets = label_smoothing.smoothing_targets(context, *ZAGREB, taus_km=taus)
        maps = [ax for ax in fig.axes if any(isinstance(c, PatchCollection) for c in ax.collections)]
        assert len(maps) == len(taus)
        for ax, tau in zip(maps, taus, strict=True):
            cells = next(c for c in ax.collections if isinstance(c, PatchCollection) and c.get_array() is not None)
            np.testing.assert_allclose(np.asarray(cells.get_array()), targets[tau])
            assert ax.get_xlim()[0] < ZAGREB[1] < ax.get_xlim()[1]
            assert ax.get_ylim()[0] < ZAGREB[0] < ax.get_ylim()[1]
        assert "one-hot" in maps[0].get_title() and "10 km" in maps[1].get_title()
        assert "own cell 100%" in maps[0].get_title()
    finally:
        plt.close(fig)


class _NorthSouth(CellScheme):
    """Two cells, Croatia north and south of a parallel: not squares (not registered)."""

    def params(self) -> dict[str, float]:
        return {"split_lat": 45.0}

    def build_cells(self, train_lat, train_lon, variant):
        import shapely

        land = borders.croatia(variant)
        lon0, lat0, lon1, lat1 = land.bounds
        south = shapely.intersection(shapely.box(lon0 - 1, lat0 - 1, lon1 + 1, 45.0), land)
        north = shapely.intersection(shapely.box(lon0 - 1, 45.0, lon1 + 1, lat1 + 1), land)
        return np.array([south, north], dtype=object), np.array([1, 2])


def test_cells_of_any_scheme_are_drawn_as_their_polygons(croatia_points):
    lat, lon = croatia_points
    context = GeoContext.fit(lat, lon, scheme=_NorthSouth())
    fig = label_smoothing.plot_label_smoothing(context, *ZAGREB, taus_km=[0.0, 50.0], half_width_deg=None)
    try:
        maps = [ax for ax in fig.axes if ax.get_title()]
        targets = label_smoothing.smoothing_targets(context, *ZAGREB, taus_km=[0.0, 50.0])
        for ax, weights in zip(maps, targets.values(), strict=True):
            cells = next(c for c in ax.collections if isinstance(c, PatchCollection) and c.get_array() is not None)
            np.testing.assert_allclose(np.asarray(cells.get_array()), weights)
            drawn = [path.get_extents() for path in cells.get_paths()]
            for extent, shape in zip(drawn, context.cell_polygons(), strict=True):
                np.testing.assert_allclose([extent.x0, extent.y0, extent.x1, extent.y1], shape.bounds, atol=1e-9)
        assert targets[0.0].tolist() == [0.0, 1.0]  # Zagreb lies north of 45 degrees
    finally:
        plt.close(fig)


def test_whole_country_view(context):
    fig = label_smoothing.plot_label_smoothing(context, *ZAGREB, taus_km=[25.0], half_width_deg=None)
    try:
        (ax,) = [ax for ax in fig.axes if ax.get_title()]
        assert ax.get_xlim()[1] - ax.get_xlim()[0] > 5.0  # Croatia spans about 6 degrees of longitude
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"taus_km": [10.0, -1.0]}, ConfigError, ">= 0 km"),
        ({"taus_km": [float("nan")]}, ConfigError, ">= 0 km"),
        ({"taus_km": []}, ConfigError, "at least one"),
        ({"half_width_deg": 0.0}, ConfigError, "half_width_deg"),
    ],
)
def test_bad_settings_are_named(context, kwargs, error, words):
    with pytest.raises(error, match=words):
        label_smoothing.plot_label_smoothing(context, *ZAGREB, **kwargs)


@pytest.mark.parametrize(
    ("lat", "lon", "words"),
    [
        (float("nan"), 16.0, "finite"),
        (95.0, 16.0, "not a position in degrees"),
        (ZAGREB[1], ZAGREB[0], "swapped"),
        ("north", 16.0, "two numbers"),
    ],
)
def test_bad_locations_are_named(context, lat, lon, words):
    with pytest.raises(DataError, match=words):
        label_smoothing.smoothing_targets(context, lat, lon)
