import numpy as np
import pandas as pd
import pytest
import torch

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import distance


@pytest.fixture(scope="module")
def ctx(croatia_points):
    lat, lon = croatia_points
    return GeoContext.fit(lat[:800], lon[:800], spacing_deg=0.3)


def test_dict_round_trip_is_plain_and_exact(ctx, tmp_path):
    data = ctx.to_dict()
    path = tmp_path / "ctx.pt"
    torch.save({"ctx": data}, path)
    loaded = torch.load(path, weights_only=True)["ctx"]
    again = GeoContext.from_dict(loaded)
    assert again.fingerprint() == ctx.fingerprint()
    np.testing.assert_array_equal(again.centroids_latlon(), ctx.centroids_latlon())
    assert again.scaler == ctx.scaler


def test_enrich_adds_columns(ctx, croatia_points):
    lat, lon = croatia_points
    df = pd.DataFrame({"uuid": [f"u{i}" for i in range(len(lat))], "latitude": lat, "longitude": lon})
    out = ctx.enrich(df)
    for col in ("x_m", "y_m", "x_scaled", "y_scaled", "class_index", "centroid_lat", "centroid_lon"):
        assert col in out
    assert "x_m" not in df  # the input is not modified
    back_lat, back_lon = ctx.scaled_to_latlon(out.x_scaled, out.y_scaled)
    assert distance.haversine_km(lat, lon, back_lat, back_lon).max() < 1e-6
    centres = ctx.centroids_latlon()[out.class_index]
    np.testing.assert_array_equal(centres[:, 0], out.centroid_lat)


def test_centroid_kinds(ctx):
    kinds = {k: ctx.centroids_latlon(k) for k in ("weighted", "clipped", "geometric")}
    assert all(v.shape == (ctx.num_classes, 2) for v in kinds.values())
    assert not np.allclose(kinds["weighted"], kinds["geometric"])
    assert ctx.centroids_xy().shape == (ctx.num_classes, 2)
    with pytest.raises(ConfigError):
        ctx.centroids_latlon("median")


def test_fit_rejects_unknown_centroid(croatia_points):
    lat, lon = croatia_points
    with pytest.raises(ConfigError):
        GeoContext.fit(lat, lon, centroid="middle")


def test_from_dict_rejects_other_formats(ctx):
    data = ctx.to_dict()
    data["format"] = 99
    with pytest.raises(ConfigError, match="format"):
        GeoContext.from_dict(data)
    broken = ctx.to_dict()
    del broken["class_table"]["weighted_lat"]
    with pytest.raises(ConfigError):
        GeoContext.from_dict(broken)
