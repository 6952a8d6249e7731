"""Great-circle metrics: values, names, accumulation over batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoguess_utils.evaluation import metric_names, summarise_km
from geoguess_utils.geo import distance
from geoguess_utils.tasks.metrics import HaversineMetrics


def _offsets_north(lat: np.ndarray, lon: np.ndarray, km: np.ndarray) -> np.ndarray:
    """Points ``km`` due north of (lat, lon): a meridian arc is exact on the sphere."""
    return np.column_stack([lat + np.degrees(km / distance.EARTH_RADIUS_KM), lon])


def test_metric_names_are_stable():
    assert metric_names() == ["mean_km", "median_km", "acc_1_km", "acc_25_km", "acc_200_km", "acc_750_km"]


def test_known_distances_over_two_batches():
    km = np.array([0.5, 10.0, 30.0, 150.0, 300.0, 800.0])
    lat = np.full(6, 43.5)
    lon = np.linspace(15.0, 18.0, 6)
    true = np.column_stack([lat, lon])
    pred = _offsets_north(lat, lon, km)
    metric = HaversineMetrics()
    metric.update(torch.from_numpy(pred[:4]), torch.from_numpy(true[:4]))
    metric.update(torch.from_numpy(pred[4:]), torch.from_numpy(true[4:]))
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["mean_km"] == pytest.approx(km.mean(), rel=1e-6)
    assert out["median_km"] == pytest.approx(np.median(km), rel=1e-6)  # (30 + 150) / 2
    assert out["acc_1_km"] == pytest.approx(1 / 6)
    assert out["acc_25_km"] == pytest.approx(2 / 6)
    assert out["acc_200_km"] == pytest.approx(4 / 6)
    assert out["acc_750_km"] == pytest.approx(5 / 6)


def test_reset_forgets_previous_batches():
    metric = HaversineMetrics()
    true = torch.tensor([[45.0, 16.0]], dtype=torch.float64)
    metric.update(torch.tensor([[46.0, 16.0]], dtype=torch.float64), true)
    metric.reset()
    metric.update(true.clone(), true)
    assert float(metric.compute()["mean_km"]) == pytest.approx(0.0, abs=1e-3)


def test_matches_the_numpy_summary(rng):
    true = np.column_stack([rng.uniform(42.5, 46.4, 200), rng.uniform(13.6, 19.4, 200)])
    pred = np.column_stack([rng.uniform(42.5, 46.4, 200), rng.uniform(13.6, 19.4, 200)])
    metric = HaversineMetrics()
    metric.update(torch.from_numpy(pred), torch.from_numpy(true))
    out = metric.compute()
    summary = summarise_km(distance.haversine_km(pred[:, 0], pred[:, 1], true[:, 0], true[:, 1]))
    assert summary["count"] == 200
    assert float(out["mean_km"]) == pytest.approx(summary["mean_km"], rel=1e-6)
    assert float(out["median_km"]) == pytest.approx(summary["median_km"], rel=1e-6)
    for t in (1, 25, 200, 750):
        assert float(out[f"acc_{t}_km"]) == pytest.approx(summary[f"acc_{t}_km"])


def test_bad_shapes_and_empty_input():
    metric = HaversineMetrics()
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        metric.update(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="no distances"):
        summarise_km([])
