"""Search regions in ``geoguess serve`` (FastAPI's TestClient) and in ``geoguess map``.

A calibrated classifier's answer carries the region of coverage ``?region=`` (default 0.9):
the fewest most probable cells whose calibrated mass reaches the validation threshold, as
:class:`~geoguess_utils.tasks.regions.SearchRegions` computes it from the answer's own
probabilities; a calibrated regressor's is a disc around its point; an uncalibrated model's
is ``null``, and ``/models`` says which models are calibrated. A coverage outside (0, 1) is
refused with a 400, an unbounded region (a validation split too small for the coverage)
has a ``null`` area, never ``Infinity``. ``geoguess map`` of a calibrated checkpoint draws
the region of the location clicked; of an uncalibrated one, it says why there is none.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from _reliability_helpers import write_checkpoint
from _serve_helpers import app_client, build_models, sample_uuids, view_bytes, view_fields

from geoguess_utils import cli
from geoguess_utils.inference.calibrate import calibration_of
from geoguess_utils.inference.predictions import predict
from geoguess_utils.tasks.calibration import fit_disc_calibration
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.regions import SearchRegions

fastapi_testclient = pytest.importorskip("fastapi.testclient")


def add_calibrated_models(sample, models, cache_dir) -> None:
    """``cal.ckpt`` and ``regcal.ckpt``: ``clf`` and ``reg`` calibrated on the sample; ``regfew.ckpt``: too few scores.

    The calibrations are fitted as ``geoguess calibrate`` fits them (on the trained
    probabilities, or the errors in km), here on the whole sample. ``regfew`` keeps five
    validation errors, too few for a coverage of 0.9: its disc is unbounded.
    """
    for source, target in (("clf", "cal"), ("reg", "regcal")):
        task = load_task(models / f"{source}.ckpt")
        predictions = predict(task, [sample], device="cpu", cache_dir=cache_dir)
        task.calibration = calibration_of(predictions, task.context)
        write_checkpoint(task, models / f"{target}.ckpt")
    task = load_task(models / "reg.ckpt")
    task.calibration = fit_disc_calibration([5.0, 10.0, 20.0, 40.0, 80.0])
    write_checkpoint(task, models / "regfew.ckpt")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(sample root, models folder): clf and reg as in the other serving tests, cal, regcal and regfew."""
    base = tmp_path_factory.mktemp("serve_regions")
    sample, models = build_models(base, locations=20)
    add_calibrated_models(sample, models, base / "cache")
    return sample, models


@pytest.fixture(scope="module")
def client(served):
    _, models = served
    with app_client(models) as test_client:
        yield test_client


def _predict(client, sample, name, uuid=None, **params):
    uuid = uuid or sample_uuids(sample)[3]
    return client.post(f"/models/{name}/predict", params=params, files=view_fields(view_bytes(sample, uuid)))


def test_models_say_which_are_calibrated(client):
    entries = {entry["name"]: entry for entry in client.get("/models").json()["models"]}
    assert {name: entries[name]["calibrated"] for name in ("clf", "reg", "cal", "regcal", "regfew")} == {
        "clf": False,
        "reg": False,
        "cal": True,
        "regcal": True,
        "regfew": True,
    }


def test_a_calibrated_classifier_answers_with_its_search_region(client, served):
    sample, models = served
    response = _predict(client, sample, "cal", probabilities="true")
    assert response.status_code == 200, response.text
    body = response.json()
    region = body["region"]
    assert set(region) == {"coverage", "area_km2", "geojson"}
    assert region["coverage"] == 0.9
    assert math.isfinite(region["area_km2"]) and region["area_km2"] > 0
    feature = region["geojson"]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    cells = feature["properties"]["cells"]
    assert cells and cells[0] == body["top_cells"][0]["cell_id"]  # most probable first
    assert feature["properties"]["area_km2"] == pytest.approx(region["area_km2"])
    # the region is what SearchRegions gives for the answer's own (calibrated) probabilities
    task = load_task(models / "cal.ckpt")
    expected = SearchRegions.of_task(task).region(0.9, probabilities=np.asarray(body["probabilities"]))
    assert region["area_km2"] == pytest.approx(expected["area_km2"], rel=1e-9)
    assert cells == expected["geojson"]["properties"]["cells"]
    assert sum(body["probabilities"][i] for i in _class_indices(task, cells)) >= task.calibration.threshold(0.9) - 1e-9


def _class_indices(task, cell_ids):
    index_of = {int(v): i for i, v in enumerate(task.context.class_table["cell_id"])}
    return [index_of[c] for c in cell_ids]


def test_the_coverage_sets_the_region_and_the_point_stays(client, served):
    sample, _ = served
    wide = _predict(client, sample, "cal").json()
    narrow = _predict(client, sample, "cal", region="0.5").json()
    assert narrow["region"]["coverage"] == 0.5
    assert 0 < narrow["region"]["area_km2"] <= wide["region"]["area_km2"]
    plain = _predict(client, sample, "clf").json()  # the same weights, never calibrated
    assert (wide["latitude"], wide["longitude"]) == pytest.approx((plain["latitude"], plain["longitude"]), abs=1e-9)
    assert [c["cell_id"] for c in wide["top_cells"]] == [c["cell_id"] for c in plain["top_cells"]]


def test_an_uncalibrated_model_answers_a_null_region(client, served):
    sample, _ = served
    for name in ("clf", "reg"):
        body = _predict(client, sample, name).json()
        assert "region" in body and body["region"] is None, name


@pytest.mark.parametrize("coverage", ["0", "1", "1.5", "-0.1", "nan", "inf", "ninety"])
def test_a_coverage_outside_zero_one_is_refused(client, served, coverage):
    sample, _ = served
    response = _predict(client, sample, "cal", region=coverage)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == "region"


def test_a_calibrated_regressor_answers_with_a_disc(client, served):
    sample, models = served
    body = _predict(client, sample, "regcal").json()
    region = body["region"]
    radius = region["geojson"]["properties"]["radius_km"]
    assert radius > 0 and region["area_km2"] == pytest.approx(math.pi * radius**2)
    geometry = region["geojson"]["geometry"]
    assert geometry["type"] == "Polygon"
    ring = np.asarray(geometry["coordinates"][0])
    assert ring[:, 0].mean() == pytest.approx(body["longitude"], abs=0.05)
    assert ring[:, 1].mean() == pytest.approx(body["latitude"], abs=0.05)
    assert radius == pytest.approx(load_task(models / "regcal.ckpt").calibration.threshold(0.9))


def test_an_unbounded_region_is_null_not_infinity(client, served):
    sample, _ = served
    response = _predict(client, sample, "regfew")
    assert response.status_code == 200, response.text
    assert "Infinity" not in response.text and "NaN" not in response.text
    region = json.loads(response.text, parse_constant=lambda name: pytest.fail(f"{name} in the answer"))["region"]
    assert region["coverage"] == 0.9 and region["area_km2"] is None  # present, and null
    assert region["geojson"]["geometry"] is None and region["geojson"]["properties"]["radius_km"] is None
    assert _predict(client, sample, "regfew", region="0.5").json()["region"]["area_km2"] > 0  # 0.5 is bounded


def test_regions_are_built_once_per_loaded_model(client, served, monkeypatch):
    sample, _ = served
    assert _predict(client, sample, "cal").status_code == 200
    loaded = client.app.state.registry.get("cal")
    assert loaded.regions is not None and loaded.regions._areas_km2 is not None  # areas measured at load

    def refuse(*args, **kwargs):
        raise AssertionError("rebuilt per request")

    monkeypatch.setattr(SearchRegions, "of_task", refuse)
    monkeypatch.setattr("geoguess_utils.geo.regions.polygon_areas_km2", refuse)
    for uuid in sample_uuids(sample)[:3]:
        assert _predict(client, sample, "cal", uuid=uuid).json()["region"]["area_km2"] > 0
    assert client.app.state.registry.get("cal").regions is loaded.regions


def test_batch_answers_carry_no_region(client, served):
    sample, _ = served
    files = {}
    for uuid in sample_uuids(sample)[:2]:
        for heading, data in zip((0, 90, 180, 270), view_bytes(sample, uuid), strict=True):
            files[f"{uuid}/{heading}"] = (f"{heading}.jpg", data, "image/jpeg")
    body = client.post("/models/cal/predict-batch", files=files).json()
    assert body["count"] == 2 and all("region" not in result for result in body["results"])


def test_the_openapi_document_describes_the_region(client):
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/models/{name}/predict"]["post"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "region"]
    assert parameter["in"] == "query" and parameter["schema"]["default"] == 0.9
    assert parameter["schema"]["exclusiveMinimum"] == 0 and parameter["schema"]["exclusiveMaximum"] == 1
    schemas = document["components"]["schemas"]
    region = schemas["PredictResponse"]["properties"]["region"]
    assert {"$ref": "#/components/schemas/SearchRegion"} in region["anyOf"] and {"type": "null"} in region["anyOf"]
    area = schemas["SearchRegion"]["properties"]["area_km2"]
    assert {"type": "null"} in area["anyOf"] and "null when the region is unbounded" in area["description"]
    assert schemas["ModelEntry"]["properties"]["calibrated"]["type"] == "boolean"


# ---------------------------------------------------------------------------- geoguess map
def _map(args, capsys):
    status = cli.main(["map", *args, "--no-thumbnails", "--device", "cpu"])
    out = capsys.readouterr()
    assert status == 0, out.err
    return out


def _region_entries(page):
    match = re.search(r"var regions = (\[.*?\]);\s*var groups", page)
    assert match, "no region data in the page"
    return json.loads(match.group(1))


def test_map_of_a_calibrated_checkpoint_draws_the_region_of_the_location_clicked(served, tmp_path, capsys):
    sample, models = served
    out = tmp_path / "map.html"
    _map(["--ckpt", str(models / "cal.ckpt"), "--data", str(sample), "--out", str(out), "--max-locations", "7"], capsys)
    page = out.read_text()
    assert "Search region (90 %) of the location clicked" in page  # the layer, in the layer control
    assert 'id="geoguess-region-text"' in page and "geoguess-region" in page
    entries = _region_entries(page)
    assert len(entries) == 7  # one per location drawn, no more
    assert all(e["feature"]["geometry"]["type"] in ("Polygon", "MultiPolygon") for e in entries)
    assert all(re.search(r"location \d of 7 \(uuid .+\): [\d,.]+ km², \d+ cells", e["text"]) for e in entries)
    assert "not calibrated" not in page


def test_map_of_a_regressor_draws_discs_and_region_zero_draws_none(served, tmp_path, capsys):
    sample, models = served
    out = tmp_path / "reg.html"
    _map(["--ckpt", str(models / "regcal.ckpt"), "--data", str(sample), "--out", str(out), "--region", "0.8"], capsys)
    page = out.read_text()
    entries = _region_entries(page)
    assert len(entries) == 20 and "Search region (80 %) of the location clicked" in page
    assert all("a disc of radius" in e["text"] for e in entries)
    off = tmp_path / "off.html"
    _map(["--ckpt", str(models / "regcal.ckpt"), "--data", str(sample), "--out", str(off), "--region", "0"], capsys)
    assert "var regions" not in off.read_text() and "Search region" not in off.read_text()


def test_map_of_an_uncalibrated_checkpoint_says_why_there_is_no_region(served, tmp_path, capsys):
    sample, models = served
    out = tmp_path / "plain.html"
    _map(["--ckpt", str(models / "clf.ckpt"), "--data", str(sample), "--out", str(out)], capsys)
    page = out.read_text()
    assert "no search region: the model is not calibrated (run geoguess calibrate --ckpt" in page
    assert "var regions" not in page


def test_map_refuses_a_coverage_of_one(served, tmp_path, capsys):
    sample, models = served
    out = tmp_path / "never.html"
    status = cli.main(
        ["map", "--ckpt", str(models / "cal.ckpt"), "--data", str(sample), "--out", str(out), "--region", "1"]
    )
    assert status != 0 and "--region must lie in [0, 1)" in capsys.readouterr().err
    assert not out.exists()
