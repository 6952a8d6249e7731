"""``geoguess serve`` through FastAPI's TestClient: every endpoint and every refusal."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import threading
import time
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from _serve_helpers import IMAGE_SIZE, build_models, sample_uuids, truth, view_bytes, view_fields
from PIL import Image

from geoguess_utils.cli.predict import predict_roots
from geoguess_utils.data.images import load_views
from geoguess_utils.serve import predictor
from geoguess_utils.serve.app import ServeConfig, create_app
from geoguess_utils.serve.batcher import Batcher, QueueFullError
from geoguess_utils.tasks.loading import load_task

fastapi_testclient = pytest.importorskip("fastapi.testclient")

TOL_DEG = 2e-5
"""Agreement required with ``geoguess predict``, degrees (about 2 m): float32 convolutions give results
that differ in the last bits with the batch size (up to about 2e-6 deg here), nothing more."""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(sample root, models folder) shared by the module."""
    return build_models(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def reference(served, tmp_path_factory):
    """``geoguess predict``'s answers for the sample, per model: name -> DataFrame indexed by uuid."""
    sample, models = served
    cache = tmp_path_factory.mktemp("predict_cache")
    return {
        name: predict_roots(models / f"{name}.ckpt", [sample], cache_dir=cache).set_index("uuid")
        for name in ("clf", "reg")
    }


def make_client(models, sample=None, **limits):
    app = create_app(ServeConfig(models_dir=models, sample_dir=sample, **limits))
    return fastapi_testclient.TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(served):
    sample, models = served
    with make_client(models, sample) as test_client:
        yield test_client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    return body["error"]


# ---------------------------------------------------------------------------- health and models
def test_health_counts_the_usable_checkpoints(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["models"] == 2
    assert body["batching"]["max_batch"] == 32


def test_models_lists_what_each_checkpoint_holds(client, served):
    _, models = served
    body = client.get("/models").json()
    entries = {entry["name"]: entry for entry in body["models"]}
    assert sorted(entries) == ["clf", "reg"]
    clf = entries["clf"]
    assert clf["task"] == "classification" and entries["reg"]["task"] == "regression"
    assert clf["backbone"] == "shufflenet_v2_x0_5"
    assert clf["image_size"] == IMAGE_SIZE
    context = load_task(models / "clf.ckpt").context
    assert clf["num_classes"] == context.num_classes
    assert clf["train_size"] == 30
    assert clf["cell_scheme"] == "square 0.3 deg grid, mainland, EPSG:3766"
    assert clf["digest"] == hashlib.sha256((models / "clf.ckpt").read_bytes()).hexdigest()
    skipped = {entry["name"]: entry["reason"] for entry in body["skipped"]}
    assert sorted(skipped) == ["junk", "outside", "plain"]
    assert "leads out of the models folder" in skipped["outside"]
    assert "not a readable checkpoint" in skipped["junk"]
    assert "not a usable geoguess checkpoint" in skipped["plain"] and "state_dict" in skipped["plain"]
    assert str(models) not in skipped["plain"]
    assert str(models) not in skipped["junk"]  # no server paths in answers


def test_cells_are_the_class_table_as_geojson(client, served):
    _, models = served
    context = load_task(models / "clf.ckpt").context
    body = client.get("/models/clf/cells").json()
    assert body["type"] == "FeatureCollection"
    assert len(body["features"]) == context.num_classes
    first = body["features"][0]
    row = context.class_table.iloc[0]
    ring = first["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] == [row["lon_min"], row["lat_min"]]
    assert ring[2] == [row["lon_max"], row["lat_max"]]


# ---------------------------------------------------------------------------- predictions
def test_predict_gives_what_geoguess_predict_gives(client, served, reference):
    sample, models = served
    for table in reference.values():  # the photos matter: the comparison below can tell locations apart
        assert table["latitude"].round(4).nunique() >= 3
    for uuid in sample_uuids(sample)[:3]:
        for name in ("clf", "reg"):
            response = client.post(f"/models/{name}/predict", files=view_fields(view_bytes(sample, uuid)))
            assert response.status_code == 200, response.text
            body = response.json()
            expected = reference[name].loc[uuid]
            assert body["latitude"] == pytest.approx(expected["latitude"], abs=TOL_DEG)
            assert body["longitude"] == pytest.approx(expected["longitude"], abs=TOL_DEG)
            assert body["model"] == name
            assert body["digest"] == hashlib.sha256((models / f"{name}.ckpt").read_bytes()).hexdigest()
            assert body["timing"]["total_ms"] >= body["timing"]["decode_ms"] >= 0
            assert body["timing"]["batch_size"] >= 1
            assert ("top_cells" in body) == (name == "clf")


def test_predict_top5_are_the_most_probable_cells(client, served):
    sample, models = served
    uuid = sample_uuids(sample)[4]
    body = client.post("/models/clf/predict?probabilities=true", files=view_fields(view_bytes(sample, uuid))).json()
    task = load_task(models / "clf.ckpt")
    views = load_views([sample / "images" / uuid / f"{h}.jpg" for h in (0, 90, 180, 270)], IMAGE_SIZE)
    batch = predictor.make_batch(views[None], [uuid], IMAGE_SIZE)
    with torch.no_grad():
        expected = task.class_probabilities(task(batch["images"]))[0]
    cells = body["top_cells"]
    assert len(cells) == 5
    probabilities = [cell["probability"] for cell in cells]
    assert probabilities == sorted(probabilities, reverse=True)
    indices = [cell["class_index"] for cell in cells]
    np.testing.assert_allclose(probabilities, expected[indices].numpy(), rtol=1e-5)
    sixth = torch.sort(expected, descending=True).values[5].item()
    assert min(probabilities) >= sixth - 1e-6  # the five largest, whatever the order of near-ties
    table = task.context.class_table
    for cell in cells:
        row = table.iloc[cell["class_index"]]
        assert cell["cell_id"] == int(row["cell_id"])
        lon, lat = np.asarray(cell["polygon"]["coordinates"][0]).T
        assert (lon.min(), lat.min(), lon.max(), lat.max()) == pytest.approx(
            (row["lon_min"], row["lat_min"], row["lon_max"], row["lat_max"])
        )
        assert (cell["latitude"], cell["longitude"]) == pytest.approx(
            tuple(task.context.centroids_latlon()[cell["class_index"]])
        )
    assert len(body["probabilities"]) == task.context.num_classes
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-6)


def test_predict_accepts_png_uploads(client, served):
    sample, _ = served
    uuid = sample_uuids(sample)[0]
    pngs = []
    for data in view_bytes(sample, uuid):
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    response = client.post("/models/clf/predict", files=view_fields(pngs, "image/png"))
    assert response.status_code == 200, response.text


def lumen_zip(sample, uuids, prefix="data/") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "uuid,latitude,longitude\n")
        for uuid in uuids:
            for heading in (0, 90, 180, 270):
                archive.write(sample / "images" / uuid / f"{heading}.jpg", f"{prefix}{uuid}/{heading}.jpg")
    return buffer.getvalue()


def test_predict_batch_from_a_lumen_zip_as_csv(client, served, reference):
    sample, _ = served
    uuids = sample_uuids(sample)[:7]
    files = {"zip": ("set.zip", lumen_zip(sample, uuids, "test_set/images/"), "application/zip")}
    response = client.post("/models/clf/predict-batch?format=csv", files=files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(response.text), dtype={"uuid": str})
    assert list(table.columns) == ["uuid", "latitude", "longitude"]
    assert list(table["uuid"]) == uuids
    expected = reference["clf"].loc[uuids]
    np.testing.assert_allclose(table[["latitude", "longitude"]].to_numpy(), expected.to_numpy(), atol=TOL_DEG)


def test_predict_batch_from_field_groups_as_json(client, served, reference):
    sample, _ = served
    uuids = sample_uuids(sample)[3:6]
    files = []
    for uuid in uuids:
        for heading, data in zip((0, 90, 180, 270), view_bytes(sample, uuid), strict=True):
            files.append((f"{uuid}/{heading}", (f"{heading}.jpg", data, "image/jpeg")))
    response = client.post("/models/reg/predict-batch", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and body["model"] == "reg"
    assert [r["uuid"] for r in body["results"]] == uuids
    for result in body["results"]:
        expected = reference["reg"].loc[result["uuid"]]
        assert (result["latitude"], result["longitude"]) == pytest.approx(
            (expected["latitude"], expected["longitude"]), abs=TOL_DEG
        )


def test_predict_batch_refusals(client, served):
    sample, _ = served
    uuid = sample_uuids(sample)[0]
    incomplete = io.BytesIO()
    with zipfile.ZipFile(incomplete, "w") as archive:
        archive.writestr(f"data/{uuid}/0.jpg", view_bytes(sample, uuid)[0])
    error = error_of(client.post("/models/clf/predict-batch", files={"zip": ("a.zip", incomplete.getvalue())}), 422)
    assert error["field"] == f"{uuid}/90"  # clf concatenates the views: it needs all four headings
    assert "lacks heading(s) 90, 180, 270" in error["message"] and "needs all four headings" in error["message"]
    error = error_of(client.post("/models/clf/predict-batch", files={"zip": ("a.zip", b"not a zip")}), 400)
    assert error["field"] == "zip" and "not a readable zip" in error["message"]
    sneaky = io.BytesIO()
    with zipfile.ZipFile(sneaky, "w") as archive:
        for heading in (0, 90, 180, 270):
            archive.writestr(f"data/..evil/{heading}.jpg", b"x")
    error = error_of(client.post("/models/clf/predict-batch", files={"zip": ("a.zip", sneaky.getvalue())}), 400)
    assert "not a plain uuid" in error["message"]
    error = error_of(client.post("/models/clf/predict-batch?format=xml", files={"zip": ("a.zip", b"")}), 400)
    assert error["field"] == "format"
    bad_name = {"nohead": ("0.jpg", view_bytes(sample, uuid)[0], "image/jpeg")}
    assert error_of(client.post("/models/clf/predict-batch", files=bad_name), 400)["field"] == "nohead"


def test_predict_batch_location_limit(served):
    sample, models = served
    uuids = sample_uuids(sample)[:3]
    with make_client(models, max_locations=2) as limited:
        files = {"zip": ("set.zip", lumen_zip(sample, uuids), "application/zip")}
        error = error_of(limited.post("/models/clf/predict-batch", files=files), 413)
        assert "limit is 2" in error["message"]


# ---------------------------------------------------------------------------- which models may be used
@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/models/nosuch/predict", 404),
        ("/models/%2E%2E/predict", 404),
        ("/models/..%2Fmodels%2Fclf/predict", 404),
        ("/models/notes.txt/predict", 404),
        ("/models/.hidden/predict", 404),
        ("/models/outside/predict", 400),
        ("/models/junk/predict", 400),
        ("/models/plain/predict", 400),
    ],
)
def test_only_checkpoints_inside_the_folder_are_used(client, served, path, status):
    sample, _ = served
    response = client.post(path, files=view_fields(view_bytes(sample, sample_uuids(sample)[0])))
    assert response.status_code == status, response.text
    assert response.json()["error"]["status"] == status


def test_a_name_with_a_slash_never_reaches_the_folder(client, served):
    sample, _ = served
    response = client.post("/models/a/b/predict", files=view_fields(view_bytes(sample, sample_uuids(sample)[0])))
    assert response.status_code == 404


# ---------------------------------------------------------------------------- refusals of uploads
def test_missing_heading_is_named(client, served):
    sample, _ = served
    files = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    del files["180"]
    error = error_of(client.post("/models/clf/predict", files=files), 422)  # clf needs all four headings
    assert error["field"] == "180" and "missing heading(s) 180" in error["message"]
    assert "needs all four headings" in error["message"]


def test_exactly_four_images(client, served):
    sample, _ = served
    views = view_bytes(sample, sample_uuids(sample)[0])
    files = {**view_fields(views), "45": ("45.jpg", views[0], "image/jpeg")}
    error = error_of(client.post("/models/clf/predict", files=files), 400)
    assert error["field"] == "45"
    doubled = [*view_fields(views).items(), ("0", ("again.jpg", views[1], "image/jpeg"))]
    error = error_of(client.post("/models/clf/predict", files=doubled), 400)
    assert error["field"] == "0" and "2 files" in error["message"]


def test_wrong_content_type_is_415(client, served):
    sample, _ = served
    files = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    files["90"] = ("90.txt", files["90"][1], "text/plain")
    error = error_of(client.post("/models/clf/predict", files=files), 415)
    assert error["field"] == "90"
    error = error_of(client.post("/models/clf/predict", json={"0": "x"}), 415)
    assert error["field"] == "content-type"


def test_non_image_bytes_are_named(client, served):
    sample, _ = served
    files = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    files["270"] = ("270.jpg", b"\xff\xd8 definitely not a JPEG", "image/jpeg")
    error = error_of(client.post("/models/clf/predict", files=files), 400)
    assert error["field"] == "270" and "cannot decode" in error["message"]
    files["270"] = ("270.jpg", b"", "image/jpeg")
    assert error_of(client.post("/models/clf/predict", files=files), 400)["field"] == "270"


def test_malformed_multipart_bodies_are_400(client, served):
    sample, _ = served
    views = view_bytes(sample, sample_uuids(sample)[0])
    many = [(f"x{i}", ("a.jpg", views[0], "image/jpeg")) for i in range(12)]
    error = error_of(client.post("/models/clf/predict", files=many), 400)
    assert "Too many files" in error["message"]
    garbage = client.post("/models/clf/predict", content=b"garbage", headers={"content-type": "multipart/form-data"})
    assert "boundary" in error_of(garbage, 400)["message"]


def test_a_text_value_is_not_a_photo(client, served):
    sample, _ = served
    files = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    del files["0"]
    error = error_of(client.post("/models/clf/predict", files=files, data={"0": "hello"}), 400)
    assert error["field"] == "0" and "image file" in error["message"]


def test_upload_size_limit(served):
    sample, models = served
    views = view_bytes(sample, sample_uuids(sample)[0])
    with make_client(models, max_upload_bytes=sum(map(len, views)) // 2) as limited:
        error = error_of(limited.post("/models/clf/predict", files=view_fields(views)), 413)
        assert error["field"] == "body" and "larger than the limit" in error["message"]
        assert limited.get("/health").status_code == 200  # GETs are not affected


def test_pixel_count_limit(served):
    sample, models = served
    with make_client(models, max_pixels=32 * 32) as limited:
        response = limited.post("/models/clf/predict", files=view_fields(view_bytes(sample, sample_uuids(sample)[0])))
        error = error_of(response, 413)
        assert error["field"] == "0" and "decompression bomb" in error["message"]


def test_internal_errors_hide_the_details(served, monkeypatch, caplog):
    sample, models = served

    def broken(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(predictor, "predict_locations", broken)
    with make_client(models) as failing, caplog.at_level(logging.ERROR, logger="geoguess.serve"):
        response = failing.post("/models/clf/predict", files=view_fields(view_bytes(sample, sample_uuids(sample)[0])))
        error = error_of(response, 500)
    assert error["id"] and len(error["id"]) == 12
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if error["id"] in r.getMessage()]
    assert logged and "secret internal detail" in "".join(str(r.exc_info[1]) for r in logged if r.exc_info)


# ---------------------------------------------------------------------------- batching and back-pressure
class Gate:
    """Wraps the predictor so that the first forward pass waits until released."""

    def __init__(self, real):
        self.real = real
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sizes: list[int] = []

    def __call__(self, task, device, pixels, uuids, **kwargs):
        self.sizes.append(len(uuids))
        self.entered.set()
        assert self.release.wait(60), "the test never released the gate"
        return self.real(task, device, pixels, uuids, **kwargs)


def wait_until(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_requests_waiting_together_share_one_forward_pass(served, monkeypatch):
    sample, models = served
    gate = Gate(predictor.predict_locations)
    monkeypatch.setattr(predictor, "predict_locations", gate)
    uuids = sample_uuids(sample)[:4]
    with make_client(models, max_batch=8, max_wait_ms=0) as batching:
        batching.get("/models/clf/cells")  # load the model before the race
        results: dict[str, dict] = {}

        def send(uuid):
            results[uuid] = batching.post("/models/clf/predict", files=view_fields(view_bytes(sample, uuid))).json()

        first = threading.Thread(target=send, args=(uuids[0],))
        first.start()
        assert gate.entered.wait(60)
        others = [threading.Thread(target=send, args=(u,)) for u in uuids[1:]]
        for thread in others:
            thread.start()
        wait_until(lambda: batching.app.state.batcher.queued == 3)
        gate.release.set()
        for thread in [first, *others]:
            thread.join(60)
        stats = batching.get("/health").json()["batching"]
    assert gate.sizes == [1, 3]
    assert stats["sizes"] == {"1": 1, "3": 1}
    assert [results[u]["timing"]["batch_size"] for u in uuids] == [1, 3, 3, 3]
    for uuid in uuids:  # a location's answer does not depend on its company
        alone = truth_free_single(models, sample, uuid)
        assert results[uuid]["latitude"] == pytest.approx(alone[0], abs=TOL_DEG)
        assert results[uuid]["longitude"] == pytest.approx(alone[1], abs=TOL_DEG)


def truth_free_single(models, sample, uuid):
    task = load_task(models / "clf.ckpt")
    views = load_views([sample / "images" / uuid / f"{h}.jpg" for h in (0, 90, 180, 270)], IMAGE_SIZE)
    (result,) = predictor.predict_locations(task, torch.device("cpu"), views[None], [uuid])
    return result["latitude"], result["longitude"]


def test_full_queue_answers_503_with_retry_after(served, monkeypatch):
    sample, models = served
    gate = Gate(predictor.predict_locations)
    monkeypatch.setattr(predictor, "predict_locations", gate)
    fields = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    with make_client(models, max_batch=1, max_queue=1, retry_after_s=3) as busy:
        busy.get("/models/clf/cells")
        statuses: list[int] = []
        threads = [
            threading.Thread(target=lambda: statuses.append(busy.post("/models/clf/predict", files=fields).status_code))
        ]
        threads[0].start()
        assert gate.entered.wait(60)  # the first request is in the forward pass
        threads.append(
            threading.Thread(target=lambda: statuses.append(busy.post("/models/clf/predict", files=fields).status_code))
        )
        threads[1].start()
        wait_until(lambda: busy.app.state.batcher.queued == 1)  # the second waits in the queue
        refused = busy.post("/models/clf/predict", files=fields)
        error = error_of(refused, 503)
        assert refused.headers["retry-after"] == "3"
        assert "queue is full" in error["message"]
        gate.release.set()
        for thread in threads:
            thread.join(60)
        assert busy.get("/health").json()["batching"]["rejected"] == 1
    assert statuses == [200, 200]


def test_batcher_refuses_when_full_and_keeps_order():
    seen = []

    def run(key, pixels, uuids):
        seen.append(list(uuids))
        return [f"{key}:{u}" for u in uuids]

    async def scenario():
        batcher = Batcher(run, max_batch=4, max_wait_s=0.0, max_queue=2)
        await batcher.start()
        try:
            pixels = np.zeros((1, 4, 2, 2, 3), np.uint8)
            tasks = [asyncio.ensure_future(batcher.submit("m", pixels, [f"u{i}"])) for i in range(2)]
            await asyncio.sleep(0)  # both requests queue; the worker is woken only after this coroutine resumes
            with pytest.raises(QueueFullError):
                await batcher.submit("m", pixels, ["u2"])  # the worker has not run yet: the queue holds two
            return await asyncio.gather(*tasks)
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == [["m:u0"], ["m:u1"]]
    assert seen == [["u0", "u1"]]


# ---------------------------------------------------------------------------- page, sample, docs
def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/assets/leaflet/leaflet.js" in page.text and "https://" not in page.text
    for asset in ("/assets/leaflet/leaflet.js", "/assets/leaflet/leaflet.css", "/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/config").json() == {"tiles": False, "sample": True}
    outline = client.get("/outline").json()
    assert outline["type"] in ("Polygon", "MultiPolygon")


def test_sample_locations(client, served):
    sample, _ = served
    info = client.get("/sample").json()
    assert info == {"available": True, "count": len(sample_uuids(sample))}
    location = client.get("/sample/random").json()
    assert location["uuid"] in sample_uuids(sample)
    assert (location["latitude"], location["longitude"]) == pytest.approx(truth(sample)[location["uuid"]])
    photo = client.get(location["views"]["90"])
    assert photo.content == (sample / "images" / location["uuid"] / "90.jpg").read_bytes()
    assert client.get(f"/sample/{location['uuid']}/45").status_code == 404
    assert client.get("/sample/..%2F..%2Fetc/0").status_code == 404
    assert client.get("/sample/nosuch/0").status_code == 404


def test_without_a_sample_there_is_no_random_location(served):
    _, models = served
    with make_client(models) as plain:
        assert plain.get("/sample").json() == {"available": False, "count": 0}
        assert plain.get("/sample/random").status_code == 404


def test_openapi_documents_every_endpoint(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/models", "/models/{name}/predict", "/models/{name}/predict-batch"):
        assert path in spec["paths"], path
    body = spec["paths"]["/models/{name}/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "required" not in body["schema"]  # any one to four photos
    assert list(body["schema"]["properties"]) == ["0", "90", "180", "270", "photo"]
    assert body["schema"]["properties"]["photo"]["maxItems"] == 4
    answer = spec["components"]["schemas"]["PredictResponse"]
    assert {"views_used", "headings"} <= set(answer["required"])


# ---------------------------------------------------------------------------- registry and command line
def test_registry_loads_once_and_again_when_the_file_changes(served, tmp_path):
    import os
    import shutil

    from geoguess_utils.serve.registry import ModelRegistry

    _, models = served
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(models / "clf.ckpt", folder / "m.ckpt")
    registry = ModelRegistry(folder, "cpu")
    first = registry.get("m")
    assert registry.get("m") is first  # kept in memory
    assert first.task.task_name == "classification"
    shutil.copy(models / "reg.ckpt", folder / "m.ckpt")
    os.utime(folder / "m.ckpt", ns=(1, 1))  # a different modification time, whatever the clock's resolution
    second = registry.get("m")
    assert second is not first and second.task.task_name == "regression"
    assert second.info.digest == hashlib.sha256((models / "reg.ckpt").read_bytes()).hexdigest()


def test_serve_command_reports_bad_settings(tmp_path, capsys):
    from geoguess_utils import cli

    assert cli.main(["serve", "--models", str(tmp_path / "missing")]) == 2
    assert "models folder" in capsys.readouterr().err
    tmp_path.joinpath("models").mkdir()
    assert cli.main(["serve", "--models", str(tmp_path / "models"), "--max-batch", "0"]) == 2
    assert "max_batch=0" in capsys.readouterr().err
    assert cli.main(["serve", "--models", str(tmp_path / "models"), "--sample", str(tmp_path)]) == 2
    assert "--sample" in capsys.readouterr().err


def test_forward_passes_use_the_configured_torch_threads(served, monkeypatch):
    sample, models = served
    seen = []
    real = predictor.predict_locations

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(predictor, "predict_locations", spy)
    before = torch.get_num_threads()
    with make_client(models, torch_threads=1) as one_thread:
        response = one_thread.post(
            "/models/clf/predict", files=view_fields(view_bytes(sample, sample_uuids(sample)[0]))
        )
        assert response.status_code == 200
        assert one_thread.get("/health").json()["batching"]["torch_threads"] == 1
    assert seen == [1]
    assert torch.get_num_threads() == before  # set on the inference thread only


def test_a_model_on_county_cells_with_view_attention_is_listed_and_served(served, tmp_path):
    """The quick config's kind of model: cells that are no grid, attention over the views."""
    from _reliability_helpers import tiny_task, write_checkpoint

    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.tasks.classification import ClassificationTask

    sample, _ = served
    table = pd.read_csv(sample / "data.csv")
    context = GeoContext.fit(table["latitude"], table["longitude"], scheme="county_split")
    task = tiny_task(ClassificationTask, context, image_size=IMAGE_SIZE, pooling="attention", county_loss_weight=1.0)
    models = tmp_path / "models"
    models.mkdir()
    write_checkpoint(task, models / "county.ckpt")
    with make_client(models) as county_client:
        (entry,) = county_client.get("/models").json()["models"]
        assert entry["cell_scheme"] == "county_split cells (max_per_cell 32, min_per_cell 8), mainland, EPSG:3766"
        assert entry["num_classes"] == context.num_classes
        uuid = sample_uuids(sample)[0]
        response = county_client.post("/models/county/predict", files=view_fields(view_bytes(sample, uuid)))
        assert response.status_code == 200, response.text
        expected = predict_roots(models / "county.ckpt", [sample], cache_dir=tmp_path / "cache").set_index("uuid")
        assert response.json()["latitude"] == pytest.approx(expected.loc[uuid, "latitude"], abs=TOL_DEG)
        # the cells are the county cells themselves (simplified), not boxes
        import shapely

        polygons = context.cell_polygons()
        for cell in response.json()["top_cells"]:
            shape = shapely.from_geojson(json.dumps(cell["polygon"]))
            truth_shape = polygons[cell["class_index"]]
            assert shape.geom_type in ("Polygon", "MultiPolygon")
            assert shapely.area(shapely.symmetric_difference(shape, truth_shape)) < 0.02 * truth_shape.area
        features = county_client.get("/models/county/cells").json()["features"]
        assert len(features) == context.num_classes
        assert len(response.content) < 200_000  # five simplified cells, not the full coastline
