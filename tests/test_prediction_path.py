"""One prediction path: every task's ``predict_step`` gives the point, the cell probabilities and the non-finite marks.

The server, ``geoguess predict`` and ``map`` all read that one result, so a task that
computes its outputs its own way (retrieval over a memory bank, nearest neighbours) is
served with its cells and counted when its outputs are not finite, like any other.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint
from _serve_helpers import IMAGE_SIZE, sample_uuids, view_bytes, view_fields
from _training_helpers import make_dataset

from geoguess_utils import cli, inference
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.images import load_views
from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.serve import predictor
from geoguess_utils.serve.app import ServeConfig, create_app
from geoguess_utils.tasks.experimental.knn import KNNTask
from geoguess_utils.tasks.experimental.retrieval import RetrievalTask
from geoguess_utils.tasks.loading import load_task

fastapi_testclient = pytest.importorskip("fastapi.testclient")

PACKAGE = Path(__file__).resolve().parents[1] / "geoguess_utils"
HOOKS = re.compile(r"register_(module_)?forward(_pre)?_hook")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("path") / "sample", 12, size=64, seed=11)


@pytest.fixture(scope="module")
def context(sample) -> GeoContext:
    table = pd.read_csv(sample / "data.csv")
    return GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=0.5)


def _fill_bank(task, context: GeoContext) -> None:
    """Give a bank-holding task (retrieval classifier, kNN) a full bank of random unit features."""
    generator = torch.Generator().manual_seed(3)
    rows = len(task.bank_filled)
    with torch.no_grad():
        features = torch.nn.functional.normalize(torch.randn(rows, task.bank_features.shape[1], generator=generator))
        task.bank_features.copy_(features.to(task.bank_features.dtype))
        points = context.centroids_xy() / 1000.0
        task.bank_xy_km.copy_(torch.as_tensor(points[np.arange(rows) % len(points)]))
        if hasattr(task, "bank_class"):
            task.bank_class.copy_(torch.as_tensor(np.arange(rows) % context.num_classes))
        task.bank_filled.fill_(True)


def _retrieval_classifier(context: GeoContext) -> RetrievalTask:
    task = tiny_task(RetrievalTask, context, image_size=IMAGE_SIZE, retrieval_cells=3, retrieval_neighbours=2)
    with torch.no_grad():  # outputs that vary from photo to photo, so the cells mean something
        head = task.net.head[-1]
        head.weight.copy_(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(1)) * 1e5)
    _fill_bank(task, context)
    return task


def _knn(context: GeoContext) -> KNNTask:
    task = tiny_task(KNNTask, context, image_size=IMAGE_SIZE, neighbours=2)
    _fill_bank(task, context)
    return task


def _all_nan(task) -> None:
    with torch.no_grad():
        for parameter in task.net.parameters():
            parameter.fill_(float("nan"))


def test_no_forward_hooks_anywhere_in_the_package():
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if HOOKS.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("make", [_retrieval_classifier, _knn], ids=["retrieval", "knn"])
def test_predict_step_marks_non_finite_outputs_of_every_task(make, context):
    task = make(context)
    batch = {"images": torch.rand(3, 4, 3, IMAGE_SIZE, IMAGE_SIZE), "uuid": ["a", "b", "c"]}
    with torch.inference_mode():
        healthy = task.predict_step(batch, 0)
    assert healthy["non_finite"].dtype == torch.bool and not bool(healthy["non_finite"].any())
    _all_nan(task)
    with torch.inference_mode():
        broken = task.predict_step(batch, 0)
    assert broken["non_finite"].tolist() == [True, True, True]
    assert bool(torch.isfinite(broken["latlon"]).all())  # still a point on land, but marked


@pytest.mark.parametrize("make", [_retrieval_classifier, _knn], ids=["retrieval", "knn"])
def test_a_nan_model_of_any_task_is_counted_by_predict_and_refused_from_a_checkpoint(
    make, context, sample, tmp_path, capsys
):
    task = make(context)
    _all_nan(task)
    predictions = inference.predict(task, [sample], cache_dir=tmp_path / "cache", device="cpu")
    assert predictions.non_finite_count == len(predictions.table) == 12
    ckpt = write_checkpoint(task, tmp_path / "nan.ckpt")
    out = tmp_path / "predictions.csv"
    argv = ["predict", "--ckpt", str(ckpt), "--data", str(sample), "--out", str(out)]
    assert cli.main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 2  # as a NaN plain classifier is
    assert "non-finite weights" in capsys.readouterr().err
    assert not out.exists()


def test_the_server_answers_a_retrieval_classifier_with_the_cells_and_probabilities_predict_gives(
    context, sample, tmp_path
):
    models = tmp_path / "models"
    models.mkdir()
    ckpt = write_checkpoint(_retrieval_classifier(context), models / "retrieval.ckpt")
    expected = inference.predict(load_task(ckpt), [sample], cache_dir=tmp_path / "cache", device="cpu")
    assert expected.probabilities is not None
    app = create_app(ServeConfig(models_dir=models))
    with fastapi_testclient.TestClient(app, raise_server_exceptions=False) as client:
        for uuid in sample_uuids(sample)[:3]:
            response = client.post(
                "/models/retrieval/predict?probabilities=true", files=view_fields(view_bytes(sample, uuid))
            )
            assert response.status_code == 200, response.text
            body = response.json()
            want = expected.probabilities[list(expected.table["uuid"]).index(uuid)]
            got = np.asarray(body["probabilities"])
            np.testing.assert_allclose(got, want, atol=1e-4)
            top = [cell["probability"] for cell in body["top_cells"]]
            assert len(top) == min(5, context.num_classes)
            np.testing.assert_allclose(top, np.sort(want)[::-1][: len(top)], atol=1e-4)
            assert body["non_finite"] is False
            truth = expected.table.set_index("uuid").loc[uuid]
            assert abs(body["latitude"] - truth["pred_lat"]) < 1e-3
            assert abs(body["longitude"] - truth["pred_lon"]) < 1e-3


def test_the_server_predictor_reads_the_non_finite_marks(context, sample):
    task = _retrieval_classifier(context)
    uuids = sample_uuids(sample)[:2]
    views = np.stack([load_views([sample / "images" / u / f"{h}.jpg" for h in HEADINGS], IMAGE_SIZE) for u in uuids])
    answers = predictor.predict_locations(task, torch.device("cpu"), views, uuids, with_probabilities=True)
    assert [a["non_finite"] for a in answers] == [False, False]
    assert all(a["top_cells"] and a["probabilities"] is not None for a in answers)
    _all_nan(task)
    answers = predictor.predict_locations(task, torch.device("cpu"), views, uuids)
    assert [a["non_finite"] for a in answers] == [True, True]
