"""Draft (DCT-scaled) JPEG decoding on the server's uploads and in ``geoguess predict``, and its tolerance.

A 640 px JPEG read for a 64 px model is decoded by libjpeg at 1/8 scale (80 px, the
smallest 1/2^k scale whose sides stay at least 64 px) and then resized, instead of being
decoded at 640 px and shrunk. These tests hold both reading paths to that, and bound
what it changes: the pixels of a view, and the points a fixed model predicts.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task
from _training_helpers import make_dataset
from PIL import Image, JpegImagePlugin

from geoguess_utils import inference
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.images import load_view
from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.geo import borders
from geoguess_utils.geo.distance import haversine_km
from geoguess_utils.serve import predictor, uploads
from geoguess_utils.tasks.classification import ClassificationTask

PHOTO_SIZE = 640
"""Side of the test's JPEGs, pixels (LUMEN's photos are 640 px)."""
IMAGE_SIZE = 64
"""The model's image side, pixels (the quick config's)."""
DRAFT_SIZE = 80
"""What libjpeg decodes a 640 px JPEG to for a 64 px model: 1/8 scale."""

PIXEL_TOLERANCE = 2.0
"""Largest mean |draft - full| of one 64 px view, levels of 0-255 (measured: 0.53 to 1.07 on the 16
views here; 0.73 median and 1.35 at most over 800 views of 640 px synthetic photos)."""
BRIGHTNESS_TOLERANCE = 0.75
"""Largest |mean(draft) - mean(full)| of one view, levels of 0-255 (measured: at most 0.22 here, 0.55
over the 800 views)."""
KM_TOLERANCE = 15.0
"""Largest move of a point the fixed test model predicts when its views are decoded in draft mode
instead of at full size, km (measured: 1.8 to 8.5 km on the four locations, whose points lie up to
66 km apart)."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Four synthetic locations of 640 px JPEGs."""
    return make_dataset(tmp_path_factory.mktemp("draft") / "sample", 4, size=PHOTO_SIZE, seed=7)


@pytest.fixture(scope="module")
def view_paths(sample):
    """Per location, its four view files in heading order."""
    table = pd.read_csv(sample / "data.csv")
    return [[sample / "images" / uuid / f"{h}.jpg" for h in HEADINGS] for uuid in table["uuid"]]


@pytest.fixture(scope="module")
def model(view_paths):
    """A fixed tiny classifier at 64 px whose predictions depend on the photos.

    Its cells are 0.3 degree squares over 300 points drawn in Croatia; the untrained
    backbone's features are tiny, so the output layer gets seeded random weights scaled
    to give logits with a spread of about 2 over the sample (as the serving tests do).
    """
    lat, lon = borders.sample_points(300, np.random.default_rng(3), "mainland")
    with torch.random.fork_rng():  # the same network every run, and torch's global generator left as it was
        torch.manual_seed(0)
        task = tiny_task(ClassificationTask, GeoContext.fit(lat, lon, spacing_deg=0.3), image_size=IMAGE_SIZE)
    pixels = np.stack([[load_view(p, IMAGE_SIZE, use_draft=False) for p in views] for views in view_paths])
    head = task.net.head[-1]
    with torch.no_grad():
        features = task.net.features(predictor.make_batch(pixels, ["u"] * len(pixels), IMAGE_SIZE)["images"])
        weight = torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(1))
        head.weight.copy_(weight * (2.0 / (features @ weight.T).std(dim=0).mean()))
    return task


@pytest.fixture
def draft_requests(monkeypatch):
    """Every ``Image.draft`` call on a JPEG: (the size asked for, the size decoded to)."""
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = original(self, mode, size)
        calls.append((tuple(size), self.size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def _upload(path, field: str = "0", content_type: str = "image/jpeg", data: bytes | None = None) -> uploads.Upload:
    return uploads.Upload(field, path.name, content_type, path.read_bytes() if data is None else data)


def test_an_uploaded_jpeg_is_decoded_at_the_smallest_scale_not_below_the_model_size(view_paths, draft_requests):
    path = view_paths[0][0]
    decoded = uploads.decode_upload(_upload(path), IMAGE_SIZE)
    assert draft_requests == [((IMAGE_SIZE, IMAGE_SIZE), (DRAFT_SIZE, DRAFT_SIZE))]
    assert decoded.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, load_view(path, IMAGE_SIZE, use_draft=True))
    assert not np.array_equal(decoded, load_view(path, IMAGE_SIZE, use_draft=False))


def test_the_four_views_of_a_form_are_decoded_in_draft_mode(view_paths, draft_requests):
    files = {str(h): [_upload(p, str(h))] for h, p in zip(HEADINGS, view_paths[1], strict=True)}
    views = uploads.views_from_form(files, {}, IMAGE_SIZE)
    assert draft_requests == [((IMAGE_SIZE, IMAGE_SIZE), (DRAFT_SIZE, DRAFT_SIZE))] * 4
    expected = np.stack([load_view(p, IMAGE_SIZE, use_draft=True) for p in view_paths[1]])
    np.testing.assert_array_equal(views, expected)


def test_an_uploaded_png_is_decoded_at_full_size(view_paths, draft_requests):
    buffer = io.BytesIO()
    with Image.open(view_paths[0][1]) as image:
        image.save(buffer, format="PNG")
    decoded = uploads.decode_upload(_upload(view_paths[0][1], content_type="image/png", data=buffer.getvalue()), 64)
    assert draft_requests == []
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        expected = np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR), dtype=np.uint8)
    np.testing.assert_array_equal(decoded, expected)


def test_geoguess_predict_reads_jpegs_in_draft_mode(sample, model, tmp_path, draft_requests):
    with torch.random.fork_rng():  # the loader draws a seed from torch's global generator: leave it as it was
        predictions = inference.predict(model, [sample], cache_dir=tmp_path / "cache", device="cpu", batch_size=4)
    assert len(predictions.table) == 4
    assert draft_requests == [((IMAGE_SIZE, IMAGE_SIZE), (DRAFT_SIZE, DRAFT_SIZE))] * 16


def test_draft_decoding_changes_a_view_by_less_than_the_pixel_tolerance(view_paths):
    for views in view_paths:
        for path in views:
            draft = load_view(path, IMAGE_SIZE, use_draft=True).astype(np.float64)
            full = load_view(path, IMAGE_SIZE, use_draft=False).astype(np.float64)
            assert 0 < np.abs(draft - full).mean() < PIXEL_TOLERANCE
            assert abs(draft.mean() - full.mean()) < BRIGHTNESS_TOLERANCE


def test_draft_decoding_moves_predictions_by_less_than_the_km_tolerance(view_paths, model):
    def points(use_draft: bool) -> np.ndarray:
        pixels = np.stack([[load_view(p, IMAGE_SIZE, use_draft=use_draft) for p in views] for views in view_paths])
        found = predictor.predict_locations(model, torch.device("cpu"), pixels, [f"l{i}" for i in range(len(pixels))])
        return np.array([[item["latitude"], item["longitude"]] for item in found])

    draft, full = points(True), points(False)
    spread = haversine_km(full[:, None, 0], full[:, None, 1], full[None, :, 0], full[None, :, 1]).max()
    assert spread > 2 * KM_TOLERANCE  # the model's answers do depend on the photos
    moves = haversine_km(draft[:, 0], draft[:, 1], full[:, 0], full[:, 1])
    assert np.all(moves < KM_TOLERANCE), moves


def test_the_serving_section_reports_the_decode_comparison_and_the_tolerance(monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("serve_load", None)
    import serve_load

    def row(rate: float, cpu_ms: float) -> dict:
        found = {"requests": 200, "concurrency": 16, "ok": 200, "failed": 0, "p50_ms": 300.0, "p95_ms": 400.0}
        found.update(max_ms=450.0, locations_per_s=rate, locations_per_pass=8.0, forward_passes=25, torch_threads=1)
        return serve_load.combine([{**found, "server_cpu_ms_per_location": cpu_ms, "client_cpu_ms_per_location": 4.0}])

    run = {"wall_s": 80.0, "locations_per_s": 25.0, "user_s": 50.0, "system_s": 2.0}
    results = {
        "checkpoint": "quick",
        "photo_size": 640,
        "photo_bytes": 4096,
        "cpus": 2,
        "rounds": 1,
        "settings": {
            "batching on": row(40.0, 20.0),
            serve_load.FULL_DECODE: row(26.0, 31.0),
            "batching off": row(30.0, 30.0),
        },
        "draft_vs_full_per_round": [40.0 / 26.0],
        "load_average_before": 1.0,
        "load_average_after": 1.5,
        "date": "today",
        "predict_decoding": {
            "timing": {
                "locations": 2000,
                "batch_size": 32,
                "speedup": 1.6,
                "speedup_every_round": [1.6],
                "cpu_speedup": 1.4,
                "draft": run,
                "full": {**run, "wall_s": 128.0, "locations_per_s": 15.6, "user_s": 72.0},
                "load_average_before": 2.0,
                "load_average_after": 2.5,
            },
            "predictions": {"locations": 2000, "median_km": 5.0, "p95_km": 25.0, "max_km": 90.0},
            "pixels": {"views": 800, "size": 64, "median_mean_abs": 0.7, "max_mean_abs": 1.3, "max_abs": 30},
            "checkpoint_label": "a quick model",
            "date": "today",
            "command": "python benchmarks/inference.py",
        },
    }
    results["predict_decoding"]["predictions"].update(draft_error_km=104.0, full_error_km=105.0)
    results["predict_decoding"]["pixels"].update(max_mean_shift=0.5, draft_ms=1.5, full_ms=4.0)
    text = serve_load.section(results, "python benchmarks/serve_load.py --compare-full-decode")
    assert "| batching on, full decode | 200 | 16 | 0 |" in text
    assert "draft decoding serves 1.54 times as many locations per second" in text
    assert "20.0 ms of CPU per location instead of 31.0" in text
    assert "full / draft wall time 1.60" in text and "in CPU seconds 1.40" in text
    assert "a median 5.0 km (95th percentile 25.0 km, at most 90.0 km)" in text
    # the tolerance the section states is the one these tests hold
    assert f"by less than {PIXEL_TOLERANCE:g} levels of 255 in mean absolute difference" in text
    assert f"mean brightness by less than {BRIGHTNESS_TOLERANCE:g}" in text
    assert f"moves the points of a fixed test model by less than {KM_TOLERANCE:g} km" in text
