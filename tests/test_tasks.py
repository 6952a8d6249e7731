"""Task logic on random tensors: heads, losses, label smoothing, decoding, geometric median."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _training_helpers import use_tiny_backbone
from scipy.optimize import minimize

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.geo import borders, distance, projection
from geoguess_utils.geo.soft_targets import haversine_soft_targets
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.decoding import weighted_geometric_median
from geoguess_utils.tasks.regression import RegressionTask


@pytest.fixture(autouse=True)
def _tiny_backbone(monkeypatch):
    """Every test here is about heads, losses and decoding: a two-layer backbone stands in for the real one."""
    use_tiny_backbone(monkeypatch)


@pytest.fixture(scope="module")
def context(croatia_points) -> GeoContext:
    lat, lon = croatia_points
    return GeoContext.fit(lat[:600], lon[:600], spacing_deg=0.5)


@pytest.fixture(scope="module")
def batch(croatia_points, context) -> dict:
    lat, lon = croatia_points[0][600:606], croatia_points[1][600:606]
    xs, ys = context.scaler.transform(*projection.to_projected(lat, lon))
    torch.manual_seed(0)
    return {
        "images": torch.randn(6, 4, 3, 32, 32),
        "class_index": torch.as_tensor(context.assign(lat, lon)),
        "xy_scaled": torch.as_tensor(np.column_stack([xs, ys]), dtype=torch.float32),
        "latlon": torch.as_tensor(np.column_stack([lat, lon])),
        "uuid": [f"u{i}" for i in range(6)],
    }


def _task(cls, context, **kwargs):
    task = cls(backbone="efficientnet_lite0", pretrained=False, **kwargs)
    task.configure_context(context, image_size=32)
    return task


def _on_land(latlon: torch.Tensor, variant: str) -> bool:
    points = latlon.numpy()
    return bool(np.isfinite(points).all() and borders.is_on_land(points[:, 0], points[:, 1], variant).all())


def test_classification_head_shapes_loss_and_gradients(context, batch):
    task = _task(ClassificationTask, context)
    assert torch.count_nonzero(task.net.head[-1].weight) == 0  # starts at the class prior
    with torch.no_grad():
        task.net.head[-1].weight.normal_(std=0.01)  # as after a few steps: gradients reach the backbone
    logits = task(batch["images"])
    assert logits.shape == (6, context.num_classes)
    loss = task.loss(logits, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert task.net.head[-1].weight.grad is not None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.net.backbone.parameters())
    latlon = task.decode(logits)
    assert latlon.shape == (6, 2) and latlon.dtype == torch.float64
    assert _on_land(latlon, context.variant)


def test_regression_head_shapes_and_loss(context, batch):
    task = _task(RegressionTask, context)
    out = task(batch["images"])
    assert out.shape == (6, 2)
    loss = task.loss(out, batch)
    expected = ((out.float() - batch["xy_scaled"]) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    assert _on_land(task.decode(out), context.variant)


def test_regression_decodes_exact_targets_back_to_the_truth(context, batch):
    task = _task(RegressionTask, context)
    latlon = task.decode(batch["xy_scaled"].double())
    true = batch["latlon"]
    km = distance.haversine_km(latlon[:, 0], latlon[:, 1], true[:, 0], true[:, 1])
    assert km.max() < 0.5  # points already on land come back unchanged (float32 targets: metres off)


def test_initial_predictions_sit_at_the_training_mean(context, batch):
    """Output biases start at the class frequencies / the training mean, not at zero."""
    reg = _task(RegressionTask, context)
    cls = _task(ClassificationTask, context)
    zero_features = torch.zeros(1, reg.net.head[-1].in_features)
    lat, lon = context.centroids_latlon("weighted").T
    n = context.class_table["n_train"].to_numpy(dtype=float)
    mean = (n @ lat / n.sum(), n @ lon / n.sum())
    for task in (reg, cls):
        with torch.no_grad():
            latlon = task.decode(task.net.head(zero_features))[0]
        assert float(distance.haversine_km(latlon[0], latlon[1], *mean)) < 15.0


@pytest.mark.parametrize("cls", [ClassificationTask, RegressionTask])
def test_predictions_are_finite_and_on_land_for_any_output(cls, context):
    task = _task(cls, context)
    width = task.num_outputs(context)
    outputs = torch.stack(
        [
            torch.full((width,), float("nan")),
            torch.full((width,), float("inf")),
            torch.full((width,), -float("inf")),
            torch.full((width,), 1e30),
            torch.tensor([(-1) ** i * 1e38 for i in range(width)]),
            torch.randn(width) * 1e6,
        ]
    )
    outputs[1, 0] = float("nan")
    latlon = task.decode(outputs)
    assert latlon.shape == (6, 2)
    assert _on_land(latlon, context.variant)
    if cls is ClassificationTask:
        task.decoding = "geometric_median"
        assert _on_land(task.decode(outputs), context.variant)


def test_confident_logits_decode_to_that_class_point(context):
    task = _task(ClassificationTask, context)
    k = context.num_classes
    chosen = [0, k // 2, k - 1]
    logits = torch.full((3, k), -20.0)
    logits[torch.arange(3), chosen] = 20.0
    expected = context.centroids_latlon()[chosen]
    for decoding in ("weighted_mean", "geometric_median"):
        task.decoding = decoding
        latlon = task.decode(logits).numpy()
        km = distance.haversine_km(latlon[:, 0], latlon[:, 1], expected[:, 0], expected[:, 1])
        # class points at sea are moved onto the nearest land: allow a little
        assert km.max() < 10.0, decoding


def test_soft_targets_properties(context):
    centroids = torch.as_tensor(context.centroids_latlon(), dtype=torch.float64)
    true = torch.tensor([[45.81, 15.98], [43.51, 16.44], [45.55, 18.69]], dtype=torch.float64)
    d = distance.haversine_km(true[:, 0:1], true[:, 1:2], centroids[None, :, 0], centroids[None, :, 1])
    nearest = d.argmin(dim=1)
    q = haversine_soft_targets(true, centroids, tau_km=25.0)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(3, dtype=q.dtype))
    assert torch.equal(q.argmax(dim=1), nearest)
    for row in range(3):  # weight falls with distance, exactly as exp(-(d_i - d_j) / tau)
        order = d[row].argsort()
        assert torch.all(q[row][order][1:] <= q[row][order][:-1] + 1e-12)
        i, j = order[0], order[3]
        ratio = q[row, j] / q[row, i]
        torch.testing.assert_close(ratio, torch.exp(-(d[row, j] - d[row, i]) / 25.0))
    sharp = haversine_soft_targets(true, centroids, tau_km=0.01)
    torch.testing.assert_close(sharp, torch.nn.functional.one_hot(nearest, centroids.shape[0]).to(sharp.dtype))
    flat = haversine_soft_targets(true, centroids, tau_km=1e7)
    assert (flat.max(dim=1).values - flat.min(dim=1).values).max() < 1e-3
    with pytest.raises(ConfigError):
        haversine_soft_targets(true, centroids, tau_km=0.0)


def test_smoothed_loss_tends_to_cross_entropy_at_the_nearest_class(context, batch):
    plain = _task(ClassificationTask, context)
    smooth = _task(ClassificationTask, context, label_smoothing_tau_km=1e-3)
    smooth.load_state_dict(plain.state_dict())
    logits = torch.randn(6, context.num_classes)
    centroids = torch.as_tensor(context.centroids_latlon())
    true = batch["latlon"]
    nearest = distance.haversine_km(true[:, 0:1], true[:, 1:2], centroids[None, :, 0], centroids[None, :, 1]).argmin(1)
    expected = torch.nn.functional.cross_entropy(logits, nearest)
    torch.testing.assert_close(smooth.loss(logits, batch), expected, rtol=1e-5, atol=1e-5)
    # the smoothed loss is smallest when the predicted distribution equals the soft targets
    wide = _task(ClassificationTask, context, label_smoothing_tau_km=75.0)
    q = haversine_soft_targets(true, wide.centroids_latlon, 75.0)
    entropy = -(q * q.log()).sum(dim=1).mean()
    torch.testing.assert_close(wide.loss(q.log(), batch), entropy, rtol=1e-5, atol=1e-5)
    assert wide.loss(logits, batch) > entropy


def _objective(y: np.ndarray, points: np.ndarray, weights: np.ndarray) -> float:
    return float((weights * np.linalg.norm(points - y, axis=1)).sum())


def test_geometric_median_minimises_the_weighted_distance(rng):
    points = torch.as_tensor(rng.normal(size=(5, 8, 2)) * 100.0)
    weights = torch.as_tensor(rng.uniform(0.05, 1.0, size=(5, 8)))
    median = weighted_geometric_median(points, weights).numpy()
    for b in range(5):
        p, w = points[b].numpy(), weights[b].numpy()
        w = w / w.sum()
        best = minimize(
            _objective, p.mean(axis=0), args=(p, w), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10}
        )
        assert _objective(median[b], p, w) <= best.fun + 1e-6
        mean = (w[:, None] * p).sum(axis=0)
        assert _objective(median[b], p, w) <= _objective(mean, p, w)


def test_geometric_median_special_cases():
    # a point holding at least half of the weight is the median (also exactly on a data point)
    points = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [-7.0, -7.0]]], dtype=torch.float64)
    weights = torch.tensor([[0.5, 0.2, 0.2, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(
        weighted_geometric_median(points, weights), torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    )
    # collinear points: the weighted 1-D median, unlike the mean
    line = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [100.0, 0.0]]], dtype=torch.float64)
    result = weighted_geometric_median(line, torch.tensor([[0.3, 0.3, 0.2, 0.2]], dtype=torch.float64))
    torch.testing.assert_close(result, torch.tensor([[1.0, 0.0]], dtype=torch.float64), atol=1e-6, rtol=0)
    # all points equal, or all weights zero
    same = torch.full((1, 3, 2), 4.0, dtype=torch.float64)
    torch.testing.assert_close(
        weighted_geometric_median(same, torch.ones(1, 3)), torch.full((1, 2), 4.0, dtype=torch.float64)
    )
    zero = weighted_geometric_median(line, torch.zeros(1, 4))
    assert torch.isfinite(zero).all()


def test_context_is_fixed_once_the_network_exists(context, croatia_points):
    task = _task(ClassificationTask, context)
    task.configure_context(context)  # the same context again is fine
    lat, lon = croatia_points
    other = GeoContext.fit(lat[:300], lon[:300], spacing_deg=0.25)
    with pytest.raises(CheckpointError, match="classes"):
        task.configure_context(other)


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="optimizer"):
        ClassificationTask(pretrained=False, optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="decoding"):
        ClassificationTask(pretrained=False, decoding="mode")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tau"):
        ClassificationTask(pretrained=False, label_smoothing_tau_km=-1.0)
    with pytest.raises(ConfigError, match="configure_context"):
        ClassificationTask(pretrained=False)(torch.zeros(1, 4, 3, 8, 8))
