"""``geoguess serve`` with any one to four photos of a place (FastAPI's TestClient).

A model that fuses only the views present (``pooling: attention`` or ``mean``) is answered
from 1, 2, 3 or 4 photos sent under their headings, or photos of unknown heading in the
field ``photo``; the answer is what ``task.predict_step`` gives for a batch with that view
mask (whatever fills the absent slots) and says how many photos were used. A model that
concatenates the views (``concat``) refuses fewer than four headings with a 422 naming
them, never a 500. Zips may hold one to four views per location folder.
"""

from __future__ import annotations

import asyncio
import io
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint
from _serve_helpers import IMAGE_SIZE, _image_dependent, app_client, build_models, sample_uuids, view_bytes

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.images import load_view
from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.errors import ConfigError
from geoguess_utils.serve import predictor, uploads
from geoguess_utils.serve.batcher import Batcher
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.regression import RegressionTask

fastapi_testclient = pytest.importorskip("fastapi.testclient")

TOL_DEG = 2e-5
"""Agreement required with ``predict_step`` run here, degrees (float32 differences with the batch only)."""


def _photos_matter_to_the_attention(task, sample, seed: int):
    """Scale the attention's input projection so that the photos, not the heading embeddings, dominate its tokens.

    An untrained backbone's features are tiny (about 1e-6) and vary little; projected as they
    are, the tokens would be the heading embeddings alone and the answer would depend on the
    view mask only. Centred and scaled to a spread of about 1, they carry the photos.
    """
    from geoguess_utils.data.images import load_views

    uuids = sample_uuids(sample)
    views = np.stack([load_views([sample / "images" / u / f"{h}.jpg" for h in HEADINGS], IMAGE_SIZE) for u in uuids])
    project = task.net.fusion.project
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        features = task.net.view_features(predictor.make_batch(views, uuids, IMAGE_SIZE)["images"]).flatten(0, 1)
        weight = torch.randn(project.weight.shape, generator=generator)
        centred = features - features.mean(dim=0)
        weight *= 1.0 / (centred @ weight.T).std(dim=0).mean()
        project.weight.copy_(weight)
        project.bias.copy_(-(features.mean(dim=0) @ weight.T))
    return task


def add_any_view_models(sample, models) -> None:
    """``att.ckpt`` (a classifier with view attention) and ``mean.ckpt`` (a regressor, mean pooling) in ``models``."""
    table = pd.read_csv(sample / "data.csv")
    context = GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=0.3)
    att = tiny_task(ClassificationTask, context, image_size=IMAGE_SIZE, pooling="attention")
    att = _photos_matter_to_the_attention(att, sample, seed=6)
    write_checkpoint(_image_dependent(att, sample, seed=3), models / "att.ckpt")
    mean = tiny_task(RegressionTask, context, image_size=IMAGE_SIZE, pooling="mean")
    write_checkpoint(_image_dependent(mean, sample, seed=4), models / "mean.ckpt")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(sample root, models folder): clf and reg (concat) as in the other serving tests, att and mean."""
    sample, models = build_models(tmp_path_factory.mktemp("serve_any"), locations=12)
    add_any_view_models(sample, models)
    return sample, models


@pytest.fixture(scope="module")
def client(served):
    _, models = served
    with app_client(models) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tasks(served):
    _, models = served
    return {name: load_task(models / f"{name}.ckpt") for name in ("att", "mean", "clf")}


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status
    return body["error"]


def files_for(sample, uuid, headings=(), loose=()) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart files: the views at ``headings`` under their heading fields, those at ``loose`` as ``photo``."""
    views = dict(zip(HEADINGS, view_bytes(sample, uuid), strict=True))
    files = [(str(h), (f"{h}.jpg", views[h], "image/jpeg")) for h in headings]
    return files + [("photo", (f"loose-{h}.jpg", views[h], "image/jpeg")) for h in loose]


def expected(task, sample, uuid, slots, known=None, seed=0) -> dict:
    """``task.predict_step`` on one location whose slots hold the views named in ``slots`` (heading or None).

    The absent slots are filled with random bytes: the model must not look at them.
    """
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(1, 4, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for slot, heading in enumerate(slots):
        if heading is not None:
            pixels[0, slot] = load_view(sample / "images" / uuid / f"{heading}.jpg", IMAGE_SIZE, use_draft=True)
    mask = np.array([[heading is not None for heading in slots]])
    batch = predictor.make_batch(pixels, [uuid], IMAGE_SIZE, view_mask=mask, heading_known=known)
    with torch.inference_mode():
        return task.predict_step(batch, 0)


def assert_same(body, result) -> None:
    lat, lon = result["latlon"][0].tolist()
    assert (body["latitude"], body["longitude"]) == pytest.approx((lat, lon), abs=TOL_DEG)
    if "probabilities" in result and "probabilities" in body:
        np.testing.assert_allclose(body["probabilities"], result["probabilities"][0].numpy(), atol=1e-5)


# ---------------------------------------------------------------------------- 1 to 4 photos
@pytest.mark.parametrize("headings", [(90,), (0, 180), (0, 90, 270), (0, 90, 180, 270)])
@pytest.mark.parametrize("name", ["att", "mean"])
def test_one_to_four_photos_under_their_headings(client, served, tasks, name, headings):
    sample, _ = served
    uuid = sample_uuids(sample)[3]
    response = client.post(f"/models/{name}/predict?probabilities=true", files=files_for(sample, uuid, headings))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["views_used"] == len(headings)
    assert body["headings"] == [str(h) for h in headings]
    slots = [h if h in headings else None for h in HEADINGS]
    result = expected(tasks[name], sample, uuid, slots)
    assert int(result["views"][0]) == len(headings)
    assert_same(body, result)
    assert ("top_cells" in body) == (name == "att")


def test_two_photos_are_answered_from_those_two_alone(client, served, tasks):
    """The answer for two photos is predict_step with that view mask, not the four-photo answer."""
    sample, _ = served
    uuid = sample_uuids(sample)[5]
    two = client.post("/models/att/predict?probabilities=true", files=files_for(sample, uuid, (90, 270))).json()
    four = client.post("/models/att/predict?probabilities=true", files=files_for(sample, uuid, HEADINGS)).json()
    assert two["views_used"] == 2 and four["views_used"] == 4
    result = expected(tasks["att"], sample, uuid, [None, 90, None, 270], seed=7)
    assert_same(two, result)
    assert not np.allclose(two["probabilities"], four["probabilities"], atol=1e-3)  # the mask matters
    other = client.post(
        "/models/att/predict?probabilities=true", files=files_for(sample, sample_uuids(sample)[6], (90, 270))
    )
    assert not np.allclose(two["probabilities"], other.json()["probabilities"], atol=1e-3)  # and so do the photos
    again = expected(tasks["att"], sample, uuid, [None, 90, None, 270], seed=8)  # other bytes in the empty slots
    np.testing.assert_array_equal(result["latlon"].numpy(), again["latlon"].numpy())


def test_photos_of_unknown_heading_fill_the_free_slots(client, served, tasks):
    sample, _ = served
    uuid = sample_uuids(sample)[1]
    response = client.post("/models/att/predict?probabilities=true", files=files_for(sample, uuid, loose=(180,)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["views_used"] == 1 and body["headings"] == ["unknown"]
    unknown = np.array([[False, True, True, True]])
    assert_same(body, expected(tasks["att"], sample, uuid, [180, None, None, None], known=unknown))
    # with headings: the loose photos take the first free slots, in the order sent
    files = files_for(sample, uuid, (0,), loose=(90, 270))
    body = client.post("/models/att/predict?probabilities=true", files=files).json()
    assert body["views_used"] == 3 and body["headings"] == ["0", "unknown", "unknown"]
    unknown = np.array([[True, False, False, True]])
    assert_same(body, expected(tasks["att"], sample, uuid, [0, 90, 270, None], known=unknown))
    body = client.post("/models/mean/predict", files=files_for(sample, uuid, loose=HEADINGS)).json()
    assert body["views_used"] == 4 and body["headings"] == ["unknown"] * 4


# ---------------------------------------------------------------------------- refusals
def test_no_photo_and_more_than_four_are_refused_naming_the_fields(client, served):
    sample, _ = served
    uuid = sample_uuids(sample)[0]
    empty_form = {"content-type": "multipart/form-data; boundary=b"}
    error = error_of(client.post("/models/att/predict", content=b"--b--\r\n", headers=empty_form), 400)
    assert "no photo" in error["message"]
    assert "0, 90, 180, 270" in error["message"] and "'photo'" in error["message"]
    five = files_for(sample, uuid, HEADINGS, loose=(0,))
    error = error_of(client.post("/models/att/predict", files=five), 400)
    assert "5 photos" in error["message"] and "0, 90, 180, 270" in error["message"] and "'photo'" in error["message"]
    assert error["field"] == "photo"
    error = error_of(client.post("/models/att/predict", files=files_for(sample, uuid, loose=(0, 90, 180, 270, 0))), 400)
    assert "5 photos" in error["message"]
    twice = files_for(sample, uuid, (0, 0))
    error = error_of(client.post("/models/att/predict", files=twice), 400)
    assert error["field"] == "0" and "2 files" in error["message"]
    error = error_of(client.post("/models/att/predict", files=files_for(sample, uuid, (0,)), data={"photo": "x"}), 400)
    assert error["field"] == "photo" and "image file" in error["message"]
    error = error_of(client.post("/models/att/predict", files=[("45", ("a.jpg", b"x", "image/jpeg"))]), 400)
    assert error["field"] == "45" and "'photo'" in error["message"]
    loose = files_for(sample, uuid, loose=(0,))
    loose[0] = ("photo", ("a.txt", loose[0][1][1], "text/plain"))
    assert error_of(client.post("/models/att/predict", files=loose), 415)["field"] == "photo"


def test_a_model_that_concatenates_the_views_needs_all_four_headings(client, served, tasks):
    sample, _ = served
    uuid = sample_uuids(sample)[2]
    assert not tasks["clf"].takes_any_views
    assert tasks["att"].takes_any_views and tasks["mean"].takes_any_views
    for name in ("clf", "reg"):
        error = error_of(client.post(f"/models/{name}/predict", files=files_for(sample, uuid, (0, 180))), 422)
        assert error["field"] == "90"
        assert "missing heading(s) 90, 270" in error["message"] and "needs all four headings" in error["message"]
    error = error_of(client.post("/models/clf/predict", files=files_for(sample, uuid, (0, 90, 180), (270,))), 422)
    assert error["field"] == "photo" and "unknown heading" in error["message"]
    error = error_of(client.post("/models/clf/predict", files=files_for(sample, uuid, loose=HEADINGS)), 422)
    assert "needs all four headings" in error["message"]
    body = client.post("/models/clf/predict", files=files_for(sample, uuid, HEADINGS)).json()
    assert body["views_used"] == 4 and body["headings"] == ["0", "90", "180", "270"]


# ---------------------------------------------------------------------------- batches
def partial_zip(sample, layout: dict[str, tuple[int, ...]], extra: tuple[str, ...] = ()) -> bytes:
    """A LUMEN zip: for each uuid the views at the given headings, under ``data/``; ``extra`` members hold a byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "uuid,latitude,longitude\n")
        for uuid, headings in layout.items():
            for heading in headings:
                archive.write(sample / "images" / uuid / f"{heading}.jpg", f"data/{uuid}/{heading}.jpg")
        for name in extra:
            archive.writestr(name, b"x")
    return buffer.getvalue()


def test_a_zip_may_hold_one_to_four_views_per_location(client, served, tasks):
    sample, _ = served
    uuids = sample_uuids(sample)[:3]
    layout = {uuids[0]: (0, 90, 180, 270), uuids[1]: (90, 180), uuids[2]: (270,)}
    files = {"zip": ("set.zip", partial_zip(sample, layout), "application/zip")}
    response = client.post("/models/att/predict-batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["uuid"] for r in results] == uuids
    assert [r["views_used"] for r in results] == [4, 2, 1]
    assert [r["headings"] for r in results] == [["0", "90", "180", "270"], ["90", "180"], ["270"]]
    for result in results:
        slots = [h if h in layout[result["uuid"]] else None for h in HEADINGS]
        assert_same(result, expected(tasks["att"], sample, result["uuid"], slots))
    csv = client.post("/models/att/predict-batch?format=csv", files=files)
    assert csv.status_code == 200 and csv.text.splitlines()[0] == "uuid,latitude,longitude"
    # field groups too
    groups = [(f"{uuids[1]}/90", ("90.jpg", view_bytes(sample, uuids[1])[1], "image/jpeg"))]
    body = client.post("/models/mean/predict-batch", files=groups).json()
    assert body["results"][0]["views_used"] == 1 and body["results"][0]["headings"] == ["90"]


def test_batch_refusals_with_views_missing(client, served):
    sample, _ = served
    uuids = sample_uuids(sample)[:2]
    files = {"zip": ("set.zip", partial_zip(sample, {uuids[0]: HEADINGS, uuids[1]: (0, 270)}), "application/zip")}
    error = error_of(client.post("/models/clf/predict-batch", files=files), 422)
    assert error["field"] == f"{uuids[1]}/90" and "needs all four headings" in error["message"]
    empty = partial_zip(sample, {uuids[0]: (0,)}, extra=("data/nophotos/notes.txt",))
    error = error_of(client.post("/models/att/predict-batch", files={"zip": ("a.zip", empty)}), 400)
    assert error["field"] == "data/nophotos/" and "holds no photo" in error["message"]
    folder_only = partial_zip(sample, {uuids[0]: (0,)}, extra=("data/emptyfolder/",))
    error = error_of(client.post("/models/att/predict-batch", files={"zip": ("a.zip", folder_only)}), 400)
    assert error["field"] == "data/emptyfolder/"


# ---------------------------------------------------------------------------- the parts
def test_requests_with_and_without_masks_share_a_forward_pass():
    seen = []

    def run(key, pixels, uuids, **masks):
        seen.append({name: value.tolist() for name, value in masks.items()})
        return list(uuids)

    async def scenario():
        batcher = Batcher(run, max_batch=8, max_wait_s=0.5)
        await batcher.start()
        try:
            pixels = np.zeros((1, 4, 2, 2, 3), dtype=np.uint8)
            mask = np.array([[True, False, False, True]])
            known = np.array([[True, True, True, False]])
            return await asyncio.gather(
                batcher.submit("m", pixels, ["a"]), batcher.submit("m", pixels, ["b"], mask, known)
            )
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) == [["a"], ["b"]]
    all_four = [True] * 4
    assert seen == [
        {"view_mask": [all_four, [True, False, False, True]], "heading_known": [all_four, [True, True, True, False]]}
    ]


def test_the_form_reader_places_the_photos():
    def upload(field):
        return uploads.Upload(field, f"{field}.jpg", "image/jpeg", b"bytes")

    files = {"180": [upload("180")], "photo": [upload("photo"), upload("photo")]}
    location = uploads.location_from_form(files, {})
    assert [u is not None for u in location.slots] == [True, True, True, False]
    assert location.slots[2].field == "180"
    assert location.heading_known == (False, False, True, True)
    assert location.missing == ["0", "90", "270"]
    assert predictor.view_names(location.view_mask, location.known) == ["180", "unknown", "unknown"]
    with pytest.raises(uploads.UploadError, match="needs all four headings") as caught:
        uploads.location_from_form(files, {}, all_headings=True)
    assert caught.value.status == 422


def test_locations_with_different_views_in_one_pass_get_their_own_answers(served, tasks):
    """What the batcher does with requests of different masks: each answer as if the location were alone."""
    sample, _ = served
    uuids = sample_uuids(sample)[:3]
    pixels = np.stack(
        [
            np.stack([load_view(sample / "images" / u / f"{h}.jpg", IMAGE_SIZE, use_draft=True) for h in HEADINGS])
            for u in uuids
        ]
    )
    mask = np.array([[True] * 4, [False, True, False, True], [True, False, False, False]])
    known = np.array([[True] * 4, [True] * 4, [False, True, True, True]])
    cpu = torch.device("cpu")
    together = predictor.predict_locations(tasks["att"], cpu, pixels, uuids, view_mask=mask, heading_known=known)
    assert [a["views_used"] for a in together] == [4, 2, 1]
    assert [a["headings"] for a in together] == [["0", "90", "180", "270"], ["90", "270"], ["unknown"]]
    for i, answer in enumerate(together):
        (alone,) = predictor.predict_locations(
            tasks["att"],
            cpu,
            pixels[i : i + 1],
            uuids[i : i + 1],
            view_mask=mask[i : i + 1],
            heading_known=known[i : i + 1],
        )
        assert (answer["latitude"], answer["longitude"]) == pytest.approx(
            (alone["latitude"], alone["longitude"]), abs=TOL_DEG
        )
    with pytest.raises(ConfigError, match="needs all four"):
        predictor.predict_locations(tasks["clf"], cpu, pixels, uuids, view_mask=mask)
