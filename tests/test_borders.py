import numpy as np
import pytest
import shapely

from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders

ZAGREB = (45.815, 15.982)
DUBROVNIK = (42.650, 18.094)
BRAC = (43.31, 16.63)  # the middle of an island
OPEN_ADRIATIC = (43.0, 15.5)
LJUBLJANA = (46.056, 14.506)


def test_variants_differ_by_islands():
    full = borders.croatia("full")
    main = borders.croatia("mainland")
    assert len(shapely.get_parts(main)) == 2  # the mainland and the Dubrovnik exclave
    assert len(shapely.get_parts(full)) > 10
    assert main.area < full.area
    assert borders.croatia("full") is full  # cached


def test_land_test_vectorised():
    lat = np.array([ZAGREB[0], DUBROVNIK[0], BRAC[0], OPEN_ADRIATIC[0], LJUBLJANA[0], np.nan])
    lon = np.array([ZAGREB[1], DUBROVNIK[1], BRAC[1], OPEN_ADRIATIC[1], LJUBLJANA[1], 16.0])
    assert borders.is_on_land(lat, lon, "mainland").tolist() == [True, True, False, False, False, False]
    assert borders.is_on_land(lat, lon, "full").tolist() == [True, True, True, False, False, False]


def test_tolerance_accepts_points_just_off_the_coast():
    lat, lon = 43.5080, 16.4300  # Split's waterfront; Natural Earth's coast is coarse here
    near = borders.distance_to_land_km([lat], [lon], "mainland")[0]
    assert 0 <= near < 3
    assert borders.is_on_land([lat], [lon], "mainland", tolerance_km=3.0)[0]
    assert not borders.is_on_land([OPEN_ADRIATIC[0]], [OPEN_ADRIATIC[1]], "mainland", tolerance_km=3.0)[0]


def test_nearest_land_point_moves_only_what_is_off_land():
    lat = np.array([ZAGREB[0], BRAC[0], OPEN_ADRIATIC[0], LJUBLJANA[0]])
    lon = np.array([ZAGREB[1], BRAC[1], OPEN_ADRIATIC[1], LJUBLJANA[1]])
    new_lat, new_lon = borders.nearest_land_point(lat, lon, "mainland")
    assert borders.is_on_land(new_lat, new_lon, "mainland").all()
    assert (new_lat[0], new_lon[0]) == ZAGREB
    moved_km = borders.distance_to_land_km(lat, lon, "mainland")
    from geoguess_utils.geo.distance import haversine_km

    actual = haversine_km(lat, lon, new_lat, new_lon)
    # The move is the distance to land plus the small inset, never a jump elsewhere.
    assert np.all(actual <= moved_km + 0.5)


def test_sample_points_are_on_land_and_seeded():
    a = borders.sample_points(300, np.random.default_rng(1))
    b = borders.sample_points(300, np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (300,)
    assert borders.is_on_land(*a, "mainland").all()


def test_neighbours_land_separates_sea():
    land = borders.neighbours_land()
    assert shapely.contains_xy(land, LJUBLJANA[1], LJUBLJANA[0])
    assert not shapely.contains_xy(land, OPEN_ADRIATIC[1], OPEN_ADRIATIC[0])


def test_unknown_variant():
    with pytest.raises(ConfigError, match="variant"):
        borders.croatia("islands")
