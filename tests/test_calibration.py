"""Calibration maths on toy problems where the answer is known: temperature, ECE, conformal regions, geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoguess_utils.checkpoints.record import calibration_problem
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.geo import regions as geometry
from geoguess_utils.geo.distance import haversine_km
from geoguess_utils.tasks import calibration as cal

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _draw(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row, drawn from that row's probabilities."""
    return (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_temperature_scaling_recovers_a_known_temperature(true_temperature):
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 3.0, (20_000, 10))
    labels = _draw(_softmax(logits / true_temperature), rng)
    assert cal.fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.05)


def test_log_probabilities_are_valid_logits_for_the_temperature():
    rng = np.random.default_rng(2)
    logits = rng.normal(0.0, 2.0, (5_000, 8))
    labels = _draw(_softmax(logits / 1.7), rng)
    from_logits = cal.fit_temperature(logits, labels)
    from_log_p = cal.fit_temperature(np.log(_softmax(logits)), labels)
    assert from_log_p == pytest.approx(from_logits, rel=1e-4)


def test_ece_drops_after_calibrating_an_overconfident_model():
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, (20_000, 10))
    labels = _draw(_softmax(logits), rng)
    overconfident = _softmax(3.0 * logits)
    fitted = cal.fit_cells_calibration(overconfident, labels)
    assert fitted.temperature == pytest.approx(3.0, rel=0.05)
    assert fitted.stats["ece_before"] > 0.1
    assert fitted.stats["ece_after"] < 0.02
    assert fitted.stats["nll_after"] < fitted.stats["nll_before"]
    calibrated = cal.apply_temperature(overconfident, fitted.temperature)
    assert np.array_equal(calibrated.argmax(axis=1), overconfident.argmax(axis=1))  # the ranking stays
    assert cal.expected_calibration_error(calibrated, labels) == pytest.approx(fitted.stats["ece_after"])


def test_ece_and_reliability_table_on_a_hand_example():
    p = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    table = cal.reliability_table(p, labels)
    top = np.flatnonzero(table["count"])
    assert list(table["count"][top]) == [2, 2] and len(table["count"]) == cal.ECE_BINS
    assert list(table["accuracy"][top]) == [1.0, 0.5]
    # |1 - 0.55| * 2/4 + |0.5 - 0.95| * 2/4
    assert cal.expected_calibration_error(p, labels) == pytest.approx(0.45)


def test_the_torch_and_numpy_temperatures_agree():
    p = _softmax(np.random.default_rng(4).normal(size=(6, 5)))
    torch.testing.assert_close(
        cal.apply_temperature_torch(torch.from_numpy(p), 2.5), torch.from_numpy(cal.apply_temperature(p, 2.5))
    )


# ----------------------------------------------------------------------------- conformal


@pytest.mark.parametrize(
    ("n", "coverage", "rank"), [(9, 0.9, 9), (19, 0.95, 19), (100, 0.9, 91), (99, 0.8, 80), (8, 0.9, 9)]
)
def test_the_threshold_is_the_ceil_of_n_plus_one_times_c_th_score(n, coverage, rank):
    assert cal.conformal_rank(n, coverage) == rank
    scores = np.arange(1.0, n + 1)
    expected = float(rank) if rank <= n else math.inf
    assert cal.conformal_threshold(scores, coverage) == expected


def test_a_coverage_outside_zero_and_one_is_refused():
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="strictly between 0 and 1"):
            cal.check_coverage(bad)


def test_cell_scores_and_sets_on_a_hand_example():
    p = np.array([[0.5, 0.3, 0.15, 0.05]])
    assert cal.cell_set_scores(p, [0])[0] == pytest.approx(0.5)
    assert cal.cell_set_scores(p, [2])[0] == pytest.approx(0.95)
    assert cal.cell_set_scores(p, [3])[0] == pytest.approx(1.0)
    rounding = np.full((1, 10), 0.1)  # ten tenths add up to 1.0000000000000002 in floating point
    assert cal.cell_set_scores(rounding, [0])[0] == 1.0
    for threshold, members in [(0.5, [0]), (0.6, [0, 1]), (0.8, [0, 1]), (0.81, [0, 1, 2]), (math.inf, [0, 1, 2, 3])]:
        assert list(np.flatnonzero(cal.cell_set_mask(p, threshold)[0])) == members, threshold


def _dirichlet_problem(rng: np.random.Generator, n: int, k: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of a calibrated model and true classes drawn from them."""
    p = rng.dirichlet(np.full(k, 0.3), size=n)
    return p, _draw(p, rng)


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_conformal_cell_sets_cover_fresh_draws_at_the_nominal_rate(coverage):
    rng = np.random.default_rng(5)
    rates, within = [], []
    for _ in range(30):
        p_val, y_val = _dirichlet_problem(rng, 500)
        threshold = cal.conformal_threshold(np.sort(cal.cell_set_scores(p_val, y_val)), coverage)
        p_new, y_new = _dirichlet_problem(rng, 2_000)
        rates.append(cal.cell_set_mask(p_new, threshold)[np.arange(len(y_new)), y_new].mean())
        within.append((cal.cell_set_scores(p_new, y_new) <= threshold).mean())
    # the quantile itself is exact: a fresh score falls at or below it with probability c to c + 1/(n + 1)
    assert coverage - 0.01 <= np.mean(within) <= coverage + 0.01
    # a region also keeps the cell that crosses the threshold, so it covers at least that, a few points more
    assert coverage - 0.01 <= np.mean(rates) <= coverage + 0.06
    assert all(coverage - 0.06 < rate < coverage + 0.1 for rate in rates)  # one draw of 500 wobbles
    assert all(rate >= share for rate, share in zip(rates, within, strict=True))


def test_an_overconfident_model_gets_larger_sets_after_calibration_and_then_covers():
    rng = np.random.default_rng(6)
    logits = rng.normal(0.0, 2.0, (6_000, 25))
    labels = _draw(_softmax(logits), rng)
    overconfident = _softmax(3.0 * logits)
    val, new = slice(0, 3_000), slice(3_000, None)
    fitted = cal.fit_cells_calibration(overconfident[val], labels[val])
    rows = np.arange(3_000)
    # taken at its word, the overconfident model's 90% sets are too small and miss
    naive = cal.cell_set_mask(overconfident[new], 0.9)
    calibrated = cal.cell_set_mask(cal.apply_temperature(overconfident[new], fitted.temperature), fitted.threshold(0.9))
    assert naive[rows, labels[new]].mean() < 0.8
    assert calibrated.sum(axis=1).mean() > naive.sum(axis=1).mean() + 1
    assert 0.89 <= calibrated[rows, labels[new]].mean() <= 0.95  # at least c, a few points over (module docstring)


def test_disc_radius_covers_fresh_errors_at_the_nominal_rate():
    rng = np.random.default_rng(7)
    fitted = cal.fit_disc_calibration(rng.exponential(40.0, 1_000))
    fresh = rng.exponential(40.0, 100_000)
    for coverage in (0.8, 0.9, 0.95):
        assert abs((fresh <= fitted.threshold(coverage)).mean() - coverage) < 0.02
    assert fitted.threshold(0.9) == pytest.approx(40.0 * math.log(10), rel=0.1)


# ----------------------------------------------------------------------------- the stored form


def test_the_calibration_round_trips_through_plain_types():
    rng = np.random.default_rng(8)
    p, y = _dirichlet_problem(rng, 200, k=6)
    fitted = cal.fit_cells_calibration(p, y)
    plain = fitted.to_dict()
    saved = torch.load(_saved(plain), weights_only=True)
    again = cal.Calibration.from_dict(saved)
    assert again.kind == "cells" and again.temperature == fitted.temperature
    assert np.array_equal(again.scores, fitted.scores)
    assert again.threshold(0.9) == fitted.threshold(0.9)
    assert again.stats["ece_after"] == fitted.stats["ece_after"]


def _saved(value) -> object:
    import io

    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"scores": [0.3, 0.2]}, "ascending"),
        ({"scores": []}, "one or more"),
        ({"scores": [0.1, float("nan")]}, "finite"),
        ({"scores": [0.5, 1.5]}, "above 1"),
        ({"temperature": 0.0}, "temperature"),
        ({"kind": "ring"}, "kind"),
        ({"format": 7}, "format"),
    ],
)
def test_a_malformed_calibration_is_refused_naming_the_problem(change, said):
    good = cal.Calibration("cells", np.array([0.2, 0.5]), 1.5).to_dict()
    assert calibration_problem(good) is None
    with pytest.raises(CheckpointError, match=said):
        cal.Calibration.from_dict({**good, **change})


# ----------------------------------------------------------------------------- geometry


def test_a_geodesic_disc_has_the_radius_and_area_it_promises():
    from shapely.geometry import shape

    lat, lon, radius = 45.0, 16.0, 50.0
    disc = geometry.geodesic_disc(lat, lon, radius)
    ring = np.array(disc["coordinates"][0])
    assert disc["type"] == "Polygon" and np.array_equal(ring[0], ring[-1])
    assert np.allclose(haversine_km(lat, lon, ring[:, 1], ring[:, 0]), radius, rtol=0.005)
    area = geometry.polygon_areas_km2([shape(disc)], "EPSG:3766")[0]
    assert area == pytest.approx(geometry.disc_area_km2(radius), rel=0.01)


def test_cell_areas_and_their_union():
    from shapely.geometry import box, shape

    cells = [box(15.0, 45.0, 15.5, 45.5), box(15.5, 45.0, 16.0, 45.5)]
    areas = geometry.polygon_areas_km2(cells, "EPSG:3766")
    # half a degree: about 55.6 km north-south and 39.3 km east-west at 45.25 N
    assert areas == pytest.approx([55.6 * 39.1] * 2, rel=0.02)
    union = geometry.union_geojson(cells)
    assert union["type"] == "Polygon"
    assert shape(union).area == pytest.approx(0.5, rel=1e-9)  # one 1.0 x 0.5 degree rectangle
