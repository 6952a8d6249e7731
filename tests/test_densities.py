"""The comparison of the synthetic generator's two densities, and its map (notebook 01).

Figures are drawn with the Agg backend, which ``conftest.py`` selects.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from geoguess_utils.course import exploration
from geoguess_utils.datasets.synthetic import density, write
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import projection
from geoguess_utils.viz import location_maps

N = 1500


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return exploration.draw_densities(N, seed=4)


@pytest.fixture(scope="module")
def table(samples) -> pd.DataFrame:
    return exploration.compare_densities(samples=samples)


def test_one_row_per_density_with_the_documented_columns(samples, table):
    assert list(samples) == list(density.DENSITIES) == ["uniform", "settlements"]
    for lat, lon in samples.values():
        assert lat.shape == lon.shape == (N,)
    assert list(table.index) == ["uniform", "settlements"]
    assert table.index.name == "density"
    assert list(table.columns) == list(exploration.DENSITY_MEASURES)
    assert (table["locations"] == N).all()
    shares = table[["empty_cells", "densest_10pct_locations", "densest_10pct_land"]].to_numpy()
    assert ((shares >= 0) & (shares <= 1)).all()
    assert table.notna().all().all()


def test_the_numbers_separate_the_two_densities(table):
    uniform, settlements = table.loc["uniform"], table.loc["settlements"]
    assert 0.4 < uniform["dispersion"] < 2.0
    assert settlements["dispersion"] > 10 * uniform["dispersion"]
    assert uniform["empty_cells"] == 0.0  # 1,500 uniform locations reach every cell with 200 km² of land
    assert settlements["empty_cells"] > uniform["empty_cells"]
    # spread uniformly, the densest tenth of the cells holds about its share of the land
    assert abs(uniform["densest_10pct_locations"] - uniform["densest_10pct_land"]) < 0.06
    assert settlements["densest_10pct_locations"] > 2.5 * settlements["densest_10pct_land"]
    assert settlements["median_km_to_place"] < 0.4 * uniform["median_km_to_place"]


def test_same_seed_same_numbers_another_seed_others(samples, table):
    again = exploration.compare_densities(N, seed=4)
    pd.testing.assert_frame_equal(again, table)
    other = exploration.compare_densities(N, seed=5)
    assert not np.isclose(other.loc["settlements", "dispersion"], table.loc["settlements", "dispersion"])


def test_the_draw_is_the_one_make_sample_writes(tmp_path):
    drawn = exploration.draw_densities(4, seed=2)
    for name in density.DENSITIES:
        written = write.generate_dataset(tmp_path / name, 4, size=32, seed=2, workers=1, density=name)
        np.testing.assert_allclose(written["latitude"], drawn[name][0])
        np.testing.assert_allclose(written["longitude"], drawn[name][1])


def test_measures_of_a_known_layout():
    # every location at a GeoNames place: 0 km to the nearest one
    xy, _ = density.mainland_places()
    lat, lon = projection.to_latlon(xy[:, 0], xy[:, 1])
    np.testing.assert_allclose(exploration.km_to_nearest_place(lat, lon), 0.0, atol=1e-6)
    # all locations in one cell: every other large cell is empty, the index is huge
    one = np.full(200, 45.80), np.full(200, 16.00)
    measures = exploration.density_measures(*one)
    cells = exploration.cell_density(*one)
    big = cells[cells["land_km2"] >= exploration.DENSITY_MIN_AREA_KM2]
    assert measures["empty_cells"] == pytest.approx((len(big) - 1) / len(big))
    assert measures["densest_10pct_locations"] == 1.0
    assert measures["dispersion"] > 50


def test_the_map_has_one_axes_per_density_and_says_synthetic(samples, table):
    fig = location_maps.plot_density_samples(samples, table)
    try:
        assert isinstance(fig, Figure)
        assert len(fig.axes) == 2
        assert "SYNTHETIC" in fig._suptitle.get_text()
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[0].startswith("uniform") and titles[1].startswith("settlements")
        assert all("SYNTHETIC" in t and "index of dispersion" in t for t in titles)
        # each map shows its own sample's points
        offsets = [ax.collections[-1].get_offsets() for ax in fig.axes]
        assert [len(o) for o in offsets] == [N, N]
        np.testing.assert_allclose(offsets[1][:, 0], samples["settlements"][1])
    finally:
        plt.close(fig)


def test_the_map_refuses_no_sample():
    with pytest.raises(ConfigError, match="no sample"):
        location_maps.plot_density_samples({})
