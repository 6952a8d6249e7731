import numpy as np
import pytest
import torch
from pyproj import Geod

from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import distance, projection


def _pairs(croatia_points, rng):
    lat, lon = croatia_points
    i = rng.integers(0, len(lat), 1500)
    j = rng.integers(0, len(lat), 1500)
    keep = i != j
    return lat[i[keep]], lon[i[keep]], lat[j[keep]], lon[j[keep]]


def test_radius_constant():
    assert distance.EARTH_RADIUS_KM == 6371.0088


def test_haversine_matches_wgs84_geodesic(croatia_points, rng):
    lat1, lon1, lat2, lon2 = _pairs(croatia_points, rng)
    assert len(lat1) >= 1000
    _, _, metres = Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)
    ours = distance.haversine_km(lat1, lon1, lat2, lon2)
    rel = np.abs(ours - metres / 1000) / (metres / 1000)
    assert rel.max() < 0.005


def test_haversine_known_distance():
    # Zagreb to Split, about 260 km as the bird flies.
    d = distance.haversine_km(45.8150, 15.9819, 43.5081, 16.4402)
    assert 255 < d < 262
    assert distance.haversine_km(45.0, 16.0, 45.0, 16.0) == 0.0


def test_haversine_numpy_and_torch_agree(croatia_points, rng):
    lat1, lon1, lat2, lon2 = _pairs(croatia_points, rng)
    ours = distance.haversine_km(lat1, lon1, lat2, lon2)
    tensors = [torch.tensor(v, dtype=torch.float64) for v in (lat1, lon1, lat2, lon2)]
    theirs = distance.haversine_km(*tensors)
    assert isinstance(theirs, torch.Tensor)
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-9, atol=1e-9)


def test_haversine_broadcasts():
    lat = np.array([[45.0], [44.0]])
    out = distance.haversine_km(lat, 16.0, np.array([45.0, 46.0, 43.0]), 16.0)
    assert out.shape == (2, 3)


def test_haversine_gradients_flow_including_identical_points():
    lat1 = torch.tensor([45.0, 44.0, 43.5], requires_grad=True)
    lon1 = torch.tensor([16.0, 15.0, 16.4], requires_grad=True)
    lat2 = torch.tensor([45.0, 45.0, 43.6])
    lon2 = torch.tensor([16.0, 16.0, 16.5])
    d = distance.haversine_km(lat1, lon1, lat2, lon2)
    d.sum().backward()
    assert torch.isfinite(lat1.grad).all() and torch.isfinite(lon1.grad).all()
    assert lat1.grad[1] < 0  # moving the first point north shrinks the distance to a point north of it
    assert d[0].item() < 0.01


def test_projection_round_trip_below_one_millimetre(croatia_points):
    lat, lon = croatia_points
    for crs in projection.SUPPORTED_CRS:
        x, y = projection.to_projected(lat, lon, crs)
        lat2, lon2 = projection.to_latlon(x, y, crs)
        error_m = distance.haversine_km(lat, lon, lat2, lon2) * 1000
        assert error_m.max() < 1e-3


def test_projected_units_are_metres():
    x, _ = projection.to_projected([45.0, 45.0], [16.0, 16.01])
    assert 700 < abs(x[1] - x[0]) < 900  # 0.01 deg of longitude at 45N is about 787 m


@pytest.mark.parametrize("crs", projection.SUPPORTED_CRS)
def test_planar_distance_matches_geodesic(croatia_points, rng, crs):
    lat1, lon1, lat2, lon2 = _pairs(croatia_points, rng)
    x1, y1 = projection.to_projected(lat1, lon1, crs)
    x2, y2 = projection.to_projected(lat2, lon2, crs)
    planar = np.hypot(x2 - x1, y2 - y1)
    _, _, geodesic = Geod(ellps="GRS80").inv(lon1, lat1, lon2, lat2)
    far = geodesic > 1000  # relative error is meaningless for coincident points
    rel = np.abs(planar[far] - geodesic[far]) / geodesic[far]
    limit = 0.001 if crs == "EPSG:3766" else 0.002
    assert rel.max() < limit


def test_unknown_crs_is_refused():
    with pytest.raises(ConfigError, match="EPSG:4326"):
        projection.to_projected(45.0, 16.0, "EPSG:4326")


def test_scaler_round_trip_and_range(croatia_points):
    lat, lon = croatia_points
    x, y = projection.to_projected(lat, lon)
    scaler = projection.MinMaxScaler.fit(x, y)
    xs, ys = scaler.transform(x, y)
    assert xs.min() == 0 and xs.max() == 1 and ys.min() == 0 and ys.max() == 1
    xb, yb = scaler.inverse_transform(xs, ys)
    np.testing.assert_allclose(xb, x, atol=1e-6)
    np.testing.assert_allclose(yb, y, atol=1e-6)
    again = projection.MinMaxScaler.from_dict(scaler.to_dict())
    assert again == scaler
    assert all(type(v) is float for v in scaler.to_dict().values())


def test_scaler_is_fitted_on_what_it_is_given_only(croatia_points):
    lat, lon = croatia_points
    x, y = projection.to_projected(lat, lon)
    train = projection.MinMaxScaler.fit(x[:500], y[:500])
    xs, _ = train.transform(x[500:], y[500:])
    assert train == projection.MinMaxScaler.fit(x[:500], y[:500])
    assert train.x_max == x[:500].max()
    assert (xs > 1).any() or (xs < 0).any() or xs.size == 0 or train.x_max >= x.max()


def test_scaler_refuses_empty_or_nan():
    with pytest.raises(ValueError):
        projection.MinMaxScaler.fit([], [])
    with pytest.raises(ValueError):
        projection.MinMaxScaler.fit([1.0, np.nan], [1.0, 2.0])
