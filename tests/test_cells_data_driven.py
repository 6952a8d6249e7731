"""The data-driven cell schemes: balanced density cells and Croatia's counties."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.cells.data_driven import BalancedScheme, CountyScheme, county_names, kd_groups
from geoguess_utils.cells.scheme import get_scheme, list_schemes
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders


def _points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uneven points on land: a dense cluster around Zagreb and a thin spread elsewhere."""
    rng = np.random.default_rng(seed)
    lat, lon = borders.sample_points(n // 2, rng, "mainland")
    dense_lat = 45.81 + rng.normal(0, 0.05, n - n // 2)
    dense_lon = 15.98 + rng.normal(0, 0.07, n - n // 2)
    return np.concatenate([lat, dense_lat]), np.concatenate([lon, dense_lon])


def test_both_schemes_are_registered():
    assert {"balanced", "county", "county_split", "square"} <= set(list_schemes())
    assert get_scheme("balanced") is BalancedScheme and get_scheme("county") is CountyScheme


@pytest.mark.parametrize("n", [1, 7, 100, 513])
def test_kd_groups_partition_the_points_within_the_bounds(n):
    xy = np.random.default_rng(n).normal(size=(n, 2)) * 1000
    groups = kd_groups(xy, max_per_cell=20, min_per_cell=10)
    everything = np.sort(np.concatenate(groups))
    assert everything.tolist() == list(range(n))
    sizes = np.array([len(g) for g in groups])
    assert sizes.max() <= 20
    if n > 20:
        assert sizes.min() >= 10


def test_kd_groups_stop_on_identical_points():
    groups = kd_groups(np.zeros((50, 2)), max_per_cell=4, min_per_cell=2)
    assert len(groups) == 1 and len(groups[0]) == 50


def test_balanced_cells_follow_the_density_and_cover_every_training_point():
    lat, lon = _points(400)
    context = GeoContext.fit(lat, lon, scheme=BalancedScheme(max_per_cell=20, min_per_cell=10))
    counts = context.class_table["n_train"].to_numpy()
    assert counts.sum() == 400
    # Voronoi regions move a few points between neighbours, not many.
    assert counts.max() <= 30 and np.median(counts) >= 8
    areas = shapely.area(context.cell_polygons())
    zagreb = context.assign([45.81], [15.98])[0]
    assert areas[zagreb] < np.median(areas)  # the dense cluster gets small cells
    # every cell lies inside Croatia (clipped to the outline, up to the projection round trip)
    land = borders.croatia("mainland")
    cells = context.cell_polygons()
    outside = shapely.area(shapely.difference(cells, land)) / shapely.area(cells)
    assert outside.max() < 1e-3


def test_balanced_is_deterministic_and_round_trips():
    lat, lon = _points(200, seed=3)
    one = GeoContext.fit(lat, lon, scheme="balanced")
    two = GeoContext.fit(lat, lon, scheme="balanced")
    assert one.fingerprint() == two.fingerprint()
    back = GeoContext.from_dict(one.to_dict())
    assert back.fingerprint() == one.fingerprint()
    assert back.scheme.params() == {"max_per_cell": 24, "min_per_cell": 8, "crs": "EPSG:3766"}
    np.testing.assert_array_equal(back.assign(lat, lon), one.assign(lat, lon))


def test_county_cells_are_the_counties():
    names = county_names()
    assert len(names) == 21 and "Grad Zagreb" in names and "Istarska" in names
    lat, lon = borders.sample_points(3000, np.random.default_rng(1), "mainland")
    context = GeoContext.fit(lat, lon, scheme="county")
    table = context.class_table
    assert context.num_classes == 21
    assert sorted(table["county_index"]) == list(range(21))
    which = dict(zip(table["class_index"], table["county_index"], strict=True))
    checks = {"Grad Zagreb": (45.81, 15.98), "Istarska": (45.24, 13.94), "Dubrovacko-Neretvanska": (42.65, 18.09)}
    for name, (la, lo) in checks.items():
        assert names[which[int(context.assign([la], [lo])[0])]] == name


def test_counties_split_where_they_hold_many_training_points():
    lat, lon = _points(600, seed=2)
    whole = GeoContext.fit(lat, lon, scheme="county")
    split = GeoContext.fit(lat, lon, scheme=CountyScheme(max_per_cell=40, min_per_cell=10))
    assert split.num_classes > whole.num_classes
    table = split.class_table
    zagreb = county_names().index("Grad Zagreb")
    assert (table["county_index"] == zagreb).sum() > 1
    # a sub-cell never leaves its county
    counties = whole.cells_frame()
    for row, polygon in zip(table.itertuples(), split.cell_polygons(), strict=True):
        county = counties.geometry[counties["county_index"] == row.county_index].iloc[0]
        assert shapely.area(shapely.difference(polygon, county)) < 1e-3 * polygon.area
    assert GeoContext.from_dict(split.to_dict()).fingerprint() == split.fingerprint()


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="max_per_cell"):
        BalancedScheme(max_per_cell=1)
    with pytest.raises(ConfigError, match="must not exceed"):
        BalancedScheme(max_per_cell=10, min_per_cell=11)
    with pytest.raises(ConfigError, match="min_per_cell"):
        CountyScheme(min_per_cell=0)
    with pytest.raises(ConfigError, match="integer"):
        BalancedScheme(max_per_cell=2.5)


def test_scheme_parameters_come_from_params_by_name():
    lat, lon = borders.sample_points(400, np.random.default_rng(3), "mainland")
    default = GeoContext.fit(lat, lon, scheme="balanced")
    coarse = GeoContext.fit(lat, lon, scheme="balanced", scheme_params={"max_per_cell": 100, "min_per_cell": 30})
    assert coarse.scheme.params()["max_per_cell"] == 100 and coarse.scheme.params()["min_per_cell"] == 30
    assert coarse.num_classes < default.num_classes
    # the shared spacing_deg still reaches only the schemes that take it
    square = GeoContext.fit(lat, lon, scheme="square", spacing_deg=0.5, scheme_params={})
    assert square.scheme.params() == {"spacing_deg": 0.5}
    assert GeoContext.fit(lat, lon, scheme="square", scheme_params={"spacing_deg": 0.4}).spacing_deg == 0.4


def test_unknown_or_bad_scheme_parameters_are_refused_by_name():
    lat, lon = borders.sample_points(50, np.random.default_rng(4), "mainland")
    with pytest.raises(
        ConfigError, match=r"'balanced' has no parameter 'max_cells'; it takes max_per_cell, min_per_cell"
    ):
        GeoContext.fit(lat, lon, scheme="balanced", scheme_params={"max_cells": 40})
    with pytest.raises(ConfigError, match="'square' has no parameter 'max_per_cell'; it takes spacing_deg"):
        GeoContext.fit(lat, lon, scheme="square", scheme_params={"max_per_cell": 40})
    with pytest.raises(ConfigError, match="must not exceed"):
        GeoContext.fit(lat, lon, scheme="county_split", scheme_params={"max_per_cell": 10, "min_per_cell": 20})
    with pytest.raises(ConfigError, match="scheme instance"):
        GeoContext.fit(lat, lon, scheme=BalancedScheme(), scheme_params={"max_per_cell": 40})


def test_the_data_module_refuses_a_bad_scheme_parameter_before_reading(tmp_path):
    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CellSettings

    missing = tmp_path / "no_such_root"  # never read: the refusal comes first
    with pytest.raises(ConfigError, match="'county' has no parameter 'spacing'"):
        GeoDataModule(roots=[str(missing)], cells=CellSettings(scheme="county", params={"spacing": 1}))
