"""Where synthetic locations lie: uniform by area, or dense where real Street View coverage is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.spatial import cKDTree

from geoguess_utils.datasets.synthetic import density, scene, write
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders, projection
from geoguess_utils.geo.places import croatian_places

N = 3000


def _km_to_nearest_place(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    places = croatian_places()
    tree = cKDTree(places[["x_m", "y_m"]].to_numpy())
    x, y = projection.to_projected(lat, lon)
    return tree.query(np.column_stack([x, y]))[0] / 1000.0


@pytest.fixture(scope="module")
def drawn() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {name: density.sample_locations(N, np.random.default_rng(5), name) for name in density.DENSITIES}


def test_same_seed_same_locations_and_another_seed_others(drawn):
    lat, lon = density.sample_locations(N, np.random.default_rng(5), "settlements")
    np.testing.assert_array_equal(lat, drawn["settlements"][0])
    np.testing.assert_array_equal(lon, drawn["settlements"][1])
    other = density.sample_locations(N, np.random.default_rng(6), "settlements")
    assert not np.array_equal(other[0], lat)


def test_uniform_is_the_original_sampler(drawn):
    lat, lon = borders.sample_points(N, np.random.default_rng(5), variant="mainland")
    np.testing.assert_array_equal(drawn["uniform"][0], lat)
    np.testing.assert_array_equal(drawn["uniform"][1], lon)


def test_every_location_is_on_the_mainland(drawn):
    for lat, lon in drawn.values():
        assert lat.shape == lon.shape == (N,)
        assert borders.is_on_land(lat, lon, variant="mainland").all()


def test_settlements_cluster_around_places_and_uniform_does_not(drawn):
    share = {name: {} for name in drawn}
    for name, (lat, lon) in drawn.items():
        km = _km_to_nearest_place(lat, lon)
        share[name] = {radius: float((km <= radius).mean()) for radius in (5, 10)}
    # Uniform points: about a third lie within 5 km of a GeoNames place and 70 % within 10 km.
    assert share["uniform"][5] < 0.45 and share["uniform"][10] < 0.8
    assert share["settlements"][5] > 0.85 and share["settlements"][10] > 0.97
    assert share["settlements"][5] > 2 * share["uniform"][5]


def test_settlements_favour_the_coast_and_avoid_the_mountains(drawn):
    sea = scene.sea_geometry()
    coastal, lika = {}, {}
    for name, (lat, lon) in drawn.items():
        x, y = projection.to_projected(lat, lon)
        coastal[name] = float((shapely.distance(sea, shapely.points(np.column_stack([x, y]))) <= 10_000).mean())
        lika[name] = float(((lat > 44.2) & (lat < 45.0) & (lon > 15.0) & (lon < 16.0)).mean())
    assert coastal["settlements"] > 1.5 * coastal["uniform"]
    assert lika["settlements"] < 0.6 * lika["uniform"]


def test_unknown_density_is_refused_before_anything_is_written(tmp_path: Path):
    with pytest.raises(ConfigError, match="density 'roads'"):
        write.generate_dataset(tmp_path / "x", 3, size=32, density="roads")  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_make_sample_with_settlement_density(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from geoguess_utils import cli

    out = tmp_path / "dense"
    args = ["make-sample", "--out", str(out), "--locations", "5", "--size", "32", "--seed", "3"]
    assert cli.main([*args, "--density", "settlements"]) == 0
    assert "settlements density" in capsys.readouterr().out
    table = pd.read_csv(out / "data.csv")
    lat, lon = density.sample_locations(5, np.random.default_rng([3, 0]), "settlements")
    np.testing.assert_allclose(table["latitude"], lat)
    np.testing.assert_allclose(table["longitude"], lon)
    assert (table["source"] == "synthetic").all()
    assert len(list((out / "images").iterdir())) == 5
    uniform = write.generate_dataset(tmp_path / "uniform", 5, size=32, seed=3)
    assert not np.allclose(uniform["latitude"], table["latitude"])
