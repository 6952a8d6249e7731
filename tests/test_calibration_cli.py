"""Calibration end to end: ``fit`` calibrates its best checkpoint, ``calibrate``, ``predict --region``, ``evaluate``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from _training_helpers import fit_args, make_dataset, run_cli, use_tiny_backbone

from geoguess_utils.checkpoints.files import load_checkpoint
from geoguess_utils.checkpoints.record import CALIBRATION_FIELD, RECORD_KEY
from geoguess_utils.tasks.calibration import Calibration
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.regions import SearchRegions, search_region

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FRACTIONS = ("--data.split.fractions", "[0.5, 0.3, 0.2]")  # enough validation rows in a tiny dataset


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone():
    """Calibration is plumbing over predictions: a two-layer backbone stands in for the real one."""
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        yield


_main = run_cli


def _fit(work: Path, root: Path, *extra: str, task: str = "ClassificationTask") -> tuple[int, str]:
    """``geoguess fit`` of a tiny run in ``work`` (checkpoints in work/checkpoints, split in work/split.csv)."""
    old = Path.cwd()
    os.chdir(work)
    try:
        status, _, err = _main(
            ["fit", *fit_args(root, work, "--trainer.logger", "false", *FRACTIONS, *extra, task=task)]
        )
    finally:
        os.chdir(old)
    return status, err


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny classifier trained with ``geoguess fit``, which calibrates its best checkpoint."""
    work = tmp_path_factory.mktemp("calibrated")
    root = make_dataset(work / "root", 40, size=32, seed=41)
    status, err = _fit(work, root, "--trainer.max_epochs", "1")
    assert status == 0, err
    split = pd.read_csv(work / "split.csv", dtype=str)
    return SimpleNamespace(work=work, root=root, ckpt=work / "checkpoints" / "best.ckpt", err=err, split=split)


def _record(path: Path) -> dict:
    return load_checkpoint(path)[RECORD_KEY]


def _uncalibrated_copy(ckpt: Path, target: Path) -> Path:
    """The checkpoint as one written before calibration existed: no calibration field at all."""
    data = load_checkpoint(ckpt)
    del data[RECORD_KEY][CALIBRATION_FIELD]
    torch.save(data, target)
    return target


def test_fit_calibrates_its_best_checkpoint_on_the_validation_split(run):
    stored = _record(run.ckpt)[CALIBRATION_FIELD]
    calibration = Calibration.from_dict(stored)
    assert calibration.kind == "cells" and calibration.temperature > 0
    assert calibration.n == int((run.split["split"] == "val").sum()) > 5
    assert np.all(np.diff(calibration.scores) >= 0) and 0 < calibration.scores[0] <= calibration.scores[-1] <= 1
    assert "geoguess fit: calibrated on" in run.err and "ECE" in run.err
    assert CALIBRATION_FIELD not in _record(run.work / "checkpoints" / "last.ckpt") or (
        _record(run.work / "checkpoints" / "last.ckpt")[CALIBRATION_FIELD] is None
    )


def test_the_calibration_survives_saving_and_loading(run, tmp_path):
    task = load_task(run.ckpt)
    assert task.calibration is not None
    path = tmp_path / "again.ckpt"
    torch.save(
        {"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams), "geoguess": task.checkpoint_record()},
        path,
    )
    again = load_task(path)
    assert again.calibration.temperature == task.calibration.temperature
    assert np.array_equal(again.calibration.scores, task.calibration.scores)
    lightning = type(task)(**{k: v for k, v in task.hparams.items() if k in type(task).accepted_arguments()})
    lightning.on_load_checkpoint(load_checkpoint(path))
    assert lightning.calibration.temperature == task.calibration.temperature


def test_the_temperature_changes_the_probabilities_but_not_the_decoded_point(run):
    task = load_task(run.ckpt)
    outputs = torch.randn(6, task.context.num_classes, dtype=torch.float32) * 3
    calibrated = task.prediction_extras(outputs)["probabilities"]
    point = task.decode(outputs)
    temperature = task.calibration.temperature
    task.calibration = None
    raw = task.prediction_extras(outputs)["probabilities"]
    assert torch.equal(task.decode(outputs), point)
    assert torch.equal(calibrated.argmax(dim=1), raw.argmax(dim=1))
    if abs(temperature - 1.0) > 1e-3:
        assert not torch.allclose(calibrated, raw)
    torch.testing.assert_close(calibrated.sum(dim=1), torch.ones(6, dtype=calibrated.dtype))


def test_an_older_checkpoint_loads_and_region_refuses_in_one_line(run, tmp_path):
    old = _uncalibrated_copy(run.ckpt, tmp_path / "old.ckpt")
    assert load_task(old).calibration is None
    out = tmp_path / "p.csv"
    status, _, err = _main(
        ["predict", "--ckpt", str(old), "--data", str(run.root), "--out", str(out), "--region", "0.9"]
    )
    assert status == 2
    (line,) = err.strip().splitlines()
    assert "has no calibration; run geoguess calibrate --ckpt" in line
    assert not out.exists()


@pytest.fixture(scope="module")
def predicted(run, tmp_path_factory):
    """``predict --region 0.9 --region-geojson`` over the run's roots."""
    where = tmp_path_factory.mktemp("regions")
    out, geojson = where / "p.csv", where / "regions.geojson"
    argv = ["predict", "--ckpt", str(run.ckpt), "--out", str(out), "--region", "0.9", "--region-geojson", str(geojson)]
    status, _, err = _main([*argv, "--cache-dir", str(where / "cache")])
    assert status == 0, err
    return SimpleNamespace(out=out, geojson=geojson, where=where)


def test_predict_region_adds_columns_and_writes_geojson(run, predicted):
    table = pd.read_csv(predicted.out, dtype={"uuid": str, "region_cells": str})
    assert list(table.columns) == ["uuid", "latitude", "longitude", "region_coverage", "region_km2", "region_cells"]
    assert len(table) == 40 and (table["region_coverage"] == 0.9).all()
    cell_ids = set(load_task(run.ckpt).context.class_table["cell_id"].astype(str))
    assert all(cells.split() and set(cells.split()) <= cell_ids for cells in table["region_cells"])
    assert (table["region_km2"] > 0).all()
    collection = json.loads(predicted.geojson.read_text())
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 40
    first = collection["features"][0]
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert first["properties"]["uuid"] == table["uuid"][0]
    assert first["properties"]["cells"] == [int(v) for v in table["region_cells"][0].split()]
    assert first["properties"]["area_km2"] == pytest.approx(table["region_km2"][0])
    lon, lat = np.array(
        first["geometry"]["coordinates"][0]
        if first["geometry"]["type"] == "Polygon"
        else first["geometry"]["coordinates"][0][0]
    ).T
    assert (lon > 13).all() and (lon < 20).all() and (lat > 42).all() and (lat < 47).all()  # lon/lat, Croatia


def test_the_decoded_points_are_those_of_the_uncalibrated_checkpoint(run, predicted, tmp_path):
    old = _uncalibrated_copy(run.ckpt, tmp_path / "old.ckpt")
    out = tmp_path / "old.csv"
    assert _main(["predict", "--ckpt", str(old), "--data", str(run.root), "--out", str(out)])[0] == 0
    calibrated = pd.read_csv(predicted.out, dtype={"uuid": str})
    plain = pd.read_csv(out, dtype={"uuid": str})
    assert calibrated["uuid"].tolist() == plain["uuid"].tolist()
    np.testing.assert_array_equal(calibrated[["latitude", "longitude"]], plain[["latitude", "longitude"]])


def test_region_geojson_never_lands_on_an_input_or_the_csv(run, tmp_path):
    data_csv, csv = run.root / "data.csv", tmp_path / "p.csv"
    csv.write_text("kept\n")
    for out, target in ((tmp_path / "x.csv", data_csv), (csv, csv)):
        before = target.read_bytes()
        argv = ["predict", "--ckpt", str(run.ckpt), "--out", str(out), "--data", str(run.root), "--region", "0.9"]
        status, _, err = _main([*argv, "--region-geojson", str(target)])
        assert status == 2 and "--region-geojson" in err
        assert target.read_bytes() == before


def test_evaluate_reports_the_empirical_coverage_and_median_area(run, predicted):
    status, stdout, err = _main(["evaluate", str(predicted.out), "--run", str(run.work), "--split", "test"])
    assert status == 0, err
    summary = json.loads(stdout)
    assert summary["region_nominal_coverage"] == pytest.approx(0.9)
    assert 0.0 <= summary["region_empirical_coverage"] <= 1.0
    assert summary["region_median_km2"] > 0
    table = pd.read_csv(predicted.out, dtype={"uuid": str, "region_cells": str})
    test_ids = set(run.split.loc[run.split["split"] == "test", "uuid"])
    rows = table[table["uuid"].isin(test_ids)]
    assert summary["region_median_km2"] == pytest.approx(float(np.median(rows["region_km2"])))
    # the same share, counted here: is each true point's cell among its region's cells?
    task = load_task(run.ckpt)
    truth = pd.read_csv(run.root / "data.csv", dtype={"uuid": str}).set_index("uuid").loc[rows["uuid"]]
    cells = task.context.class_table["cell_id"].to_numpy()[task.context.assign(truth["latitude"], truth["longitude"])]
    hits = [str(c) in r.split() for c, r in zip(cells, rows["region_cells"], strict=True)]
    assert summary["region_empirical_coverage"] == pytest.approx(np.mean(hits))


def test_evaluate_of_cell_regions_needs_the_checkpoint(run, predicted):
    status, _, err = _main(["evaluate", str(predicted.out), "--truth", str(run.root)])
    assert status == 2 and "--ckpt" in err
    status, stdout, err = _main(["evaluate", str(predicted.out), "--truth", str(run.root), "--ckpt", str(run.ckpt)])
    assert status == 0, err
    assert "region_empirical_coverage" in json.loads(stdout)


def test_calibrate_writes_the_calibration_into_an_older_run(run, tmp_path):
    work = tmp_path / "run"
    (work / "checkpoints").mkdir(parents=True)
    shutil.copy(run.work / "split.csv", work / "split.csv")
    ckpt = _uncalibrated_copy(run.ckpt, work / "checkpoints" / "best.ckpt")
    figure = tmp_path / "reliability.png"
    argv = ["calibrate", "--ckpt", str(ckpt), "--data", str(run.root), "--figure", str(figure)]
    status, stdout, err = _main([*argv, "--cache-dir", str(tmp_path / "cache")])
    assert status == 0, err
    assert "ECE" in stdout and "temperature" in stdout and f"written into {ckpt}" in stdout
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fresh = Calibration.from_dict(_record(ckpt)[CALIBRATION_FIELD])
    fitted_by_fit = Calibration.from_dict(_record(run.ckpt)[CALIBRATION_FIELD])
    assert fresh.temperature == pytest.approx(fitted_by_fit.temperature, rel=1e-6)
    np.testing.assert_allclose(fresh.scores, fitted_by_fit.scores, rtol=1e-9)
    assert load_checkpoint(ckpt)["state_dict"].keys() == load_checkpoint(run.ckpt)["state_dict"].keys()


def test_calibrate_refuses_a_run_without_validation_rows(run, tmp_path):
    split = run.split.copy()
    split.loc[split["split"] == "val", "split"] = "train"
    split.to_csv(tmp_path / "split.csv", index=False)
    ckpt = shutil.copy(run.ckpt, tmp_path / "best.ckpt")
    before = Path(ckpt).read_bytes()
    argv = ["calibrate", "--ckpt", str(ckpt), "--data", str(run.root), "--split-csv", str(tmp_path / "split.csv")]
    status, _, err = _main(argv)
    assert status == 2 and "no validation rows" in err
    assert Path(ckpt).read_bytes() == before
    status, _, err = _main(["calibrate", "--ckpt", str(ckpt), "--data", str(run.root)])  # no split.csv next to it
    assert status == 2 and "split" in err


def test_the_server_function_answers_coverage_area_and_geojson(run):
    task = load_task(run.ckpt)
    p = torch.softmax(torch.randn(task.context.num_classes, dtype=torch.float64), dim=0).numpy()
    answer = search_region(task.context, task.calibration, 0.9, probabilities=p)
    assert set(answer) == {"coverage", "area_km2", "geojson"} and answer["coverage"] == 0.9
    assert answer["geojson"]["type"] == "Feature" and answer["area_km2"] > 0
    regions = SearchRegions.of_task(task)
    wider = regions.region(0.95, probabilities=p)
    assert wider["area_km2"] >= answer["area_km2"]
    assert len(wider["geojson"]["properties"]["cells"]) >= len(answer["geojson"]["properties"]["cells"])
    json.dumps(answer, allow_nan=False)


def test_a_regressor_gets_discs(run, tmp_path):
    work = tmp_path / "regression"
    work.mkdir()
    status, err = _fit(work, run.root, "--trainer.max_epochs", "1", "--model.lr", "0.0001", task="RegressionTask")
    assert status == 0, err
    ckpt = work / "checkpoints" / "best.ckpt"
    calibration = Calibration.from_dict(_record(ckpt)[CALIBRATION_FIELD])
    assert calibration.kind == "disc" and calibration.temperature is None
    out, geojson = tmp_path / "p.csv", tmp_path / "r.geojson"
    argv = ["predict", "--ckpt", str(ckpt), "--out", str(out), "--region", "0.8", "--region-geojson", str(geojson)]
    status, _, err = _main([*argv, "--cache-dir", str(tmp_path / "cache")])
    assert status == 0, err
    table = pd.read_csv(out)
    assert list(table.columns)[3:] == ["region_coverage", "region_km2", "region_radius_km"]
    radius = calibration.threshold(0.8)
    assert np.allclose(table["region_radius_km"], radius) and np.allclose(table["region_km2"], np.pi * radius**2)
    feature = json.loads(geojson.read_text())["features"][0]
    assert feature["geometry"]["type"] == "Polygon" and feature["properties"]["radius_km"] == pytest.approx(radius)
    status, stdout, err = _main(["evaluate", str(out), "--truth", str(run.root)])  # a disc needs no checkpoint
    assert status == 0, err
    summary = json.loads(stdout)
    errors = pd.read_csv(run.root / "data.csv", dtype={"uuid": str}).merge(table.astype({"uuid": str}), on="uuid")
    from geoguess_utils.geo.distance import haversine_km

    km = haversine_km(errors["latitude_x"], errors["longitude_x"], errors["latitude_y"], errors["longitude_y"])
    assert summary["region_empirical_coverage"] == pytest.approx(float(np.mean(km <= radius)))


def test_an_ensemble_run_calibrates_the_ensemble_it_writes(run, tmp_path):
    work = tmp_path / "ensemble"
    work.mkdir()
    extra = ("--trainer.max_epochs", "1", "--model.init_args.freeze_backbone_epochs", "all", "--ensemble", "2")
    status, err = _fit(work, run.root, *extra)
    assert status == 0, err
    ckpt = work / "checkpoints" / "best.ckpt"
    task = load_task(ckpt)
    assert task.ensemble == 2 and task.calibration is not None and task.calibration.kind == "cells"
    assert task.calibration.n == int((pd.read_csv(work / "split.csv")["split"] == "val").sum())
    assert "geoguess fit: calibrated on" in err
