import numpy as np
import pandas as pd
import pytest

from geoguess_utils.cells import square
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, projection

# Cell counts reported for the original system's mainland grid.
SEED_COUNTS = {0.7: 31, 0.5: 55, 0.4: 75, 0.3: 115, 0.2: 231}


@pytest.mark.parametrize(("spacing", "expected"), SEED_COUNTS.items())
def test_cell_counts_match_the_seed(spacing, expected):
    cells = square.build_grid(spacing, "mainland")
    assert abs(len(cells) - expected) / expected <= 0.06


def test_grid_is_anchored_at_lower_left_and_square():
    cells = square.build_grid(0.5)
    lon0, lat0, _, _ = borders.croatia_bounds("mainland")
    assert cells.attrs["origin_lon"] == lon0 and cells.attrs["origin_lat"] == lat0
    np.testing.assert_allclose(((cells.lon_min - lon0) / 0.5) % 1, 0, atol=1e-9)
    np.testing.assert_allclose(cells.lon_max - cells.lon_min, 0.5)
    np.testing.assert_allclose(cells.lat_max - cells.lat_min, 0.5)
    assert cells.cell_id.is_unique
    # every cell really intersects Croatia
    assert cells.intersects(borders.croatia("mainland")).all()


def test_full_variant_has_more_cells():
    assert len(square.build_grid(0.3, "full")) > len(square.build_grid(0.3, "mainland"))


def test_bad_spacing():
    with pytest.raises(ConfigError):
        square.build_grid(0.0)


def _table(lat, lon, spacing=0.3):
    return square.fit_class_table(square.build_grid(spacing), lat, lon)


def test_class_table_keeps_only_cells_with_training_data(croatia_points):
    lat, lon = croatia_points
    few_lat, few_lon = lat[:60], lon[:60]
    table = _table(few_lat, few_lon)
    assert list(table.columns) == list(square.CLASS_TABLE_COLUMNS)
    assert (table.n_train >= 1).all()
    assert table.n_train.sum() == 60
    assert len(table) < len(square.build_grid(0.3))
    np.testing.assert_array_equal(table.class_index, np.arange(len(table)))


def test_clipped_centroids_are_on_land(croatia_points):
    lat, lon = croatia_points
    table = _table(lat, lon, spacing=0.2)
    assert borders.is_on_land(table.clipped_lat, table.clipped_lon, "mainland").all()
    at_sea = ~borders.is_on_land(table.geometric_lat, table.geometric_lon, "mainland")
    assert at_sea.any(), "some geometric centroids fall off land; the clipping must have moved them"
    on_land = ~at_sea
    np.testing.assert_allclose(table.clipped_lat[on_land], table.geometric_lat[on_land])


def test_weighted_centroid_is_the_projected_mean(croatia_points):
    lat, lon = croatia_points
    table = _table(lat, lon)
    classes = square.assign_classes(table, lat, lon)
    k = int(np.bincount(classes).argmax())
    x, y = projection.to_projected(lat[classes == k], lon[classes == k])
    want_lat, want_lon = projection.to_latlon(x.mean(), y.mean())
    assert abs(table.weighted_lat[k] - want_lat) < 1e-9
    assert abs(table.weighted_lon[k] - want_lon) < 1e-9


def test_every_location_gets_exactly_one_class(croatia_points):
    lat, lon = croatia_points
    table = _table(lat[:500], lon[:500])
    classes = square.assign_classes(table, lat, lon)
    assert classes.shape == lat.shape
    assert classes.min() >= 0 and classes.max() < len(table)
    # a training point lies inside the box of its class
    tr = square.assign_classes(table, lat[:500], lon[:500])
    rows = table.iloc[tr]
    assert ((lon[:500] >= rows.lon_min.values) & (lon[:500] < rows.lon_max.values)).all()
    # cells are half-open: a point on a cell's west edge belongs to that cell
    first = table.iloc[0]
    got = square.assign_classes(table, [first.lat_min + 0.01], [first.lon_min])
    assert got[0] == first.class_index


def test_location_outside_every_kept_cell_takes_the_nearest(croatia_points):
    lat, lon = croatia_points
    table = _table(lat, lon)
    far_east = square.assign_classes(table, [45.0], [25.0])[0]
    assert table.lon_max.iloc[far_east] == table.lon_max.max()


def test_weighted_centroids_ignore_validation_and_test_rows(croatia_points):
    lat, lon = croatia_points
    train = slice(0, 700)
    ctx = GeoContext.fit(lat[train], lon[train])
    frame = pd.DataFrame({"latitude": lat, "longitude": lon, "split": ["train"] * 700 + ["val"] * 300})
    refit = GeoContext.fit(frame.latitude[frame.split == "train"], frame.longitude[frame.split == "train"])
    assert refit.fingerprint() == ctx.fingerprint()
    # feeding extra rows would change it: the test above can fail
    leaky = GeoContext.fit(lat, lon)
    assert leaky.fingerprint() != ctx.fingerprint()


def test_non_finite_training_rows_are_refused():
    with pytest.raises(DataError, match="non-finite"):
        _table(np.array([45.0, np.nan]), np.array([16.0, 16.0]))
