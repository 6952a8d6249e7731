"""Self-contained checkpoints, ``geoguess predict`` and ``geoguess evaluate``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _training_helpers import fit_in, make_dataset, use_tiny_backbone

from geoguess_utils import cli
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.checkpoints.files import load_checkpoint
from geoguess_utils.cli.evaluate import evaluate
from geoguess_utils.errors import CheckpointError, DataError
from geoguess_utils.geo import borders
from geoguess_utils.tasks.loading import load_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone():
    """Checkpoints, prediction and evaluation are plumbing: a two-layer backbone stands in for the real one."""
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny classifier trained through the CLI: (cli, checkpoint path, dataset root)."""
    work = tmp_path_factory.mktemp("trained")
    root = make_dataset(work / "root", 40, size=32, seed=21)
    run, checkpoint = fit_in(work, root)
    return run, checkpoint, root


@pytest.fixture
def predict_only_root(trained, tmp_path) -> Path:
    """The trained dataset's images without data.csv, as a competition test set comes."""
    _, _, root = trained
    target = tmp_path / "predict_only"
    shutil.copytree(root / "images", target / "images")
    return target


def test_checkpoint_round_trip_gives_identical_predictions(trained):
    run, ckpt, _ = trained
    batch = next(iter(run.datamodule.val_dataloader()))
    model = run.model.eval()
    loaded = load_task(ckpt)
    assert loaded.context.fingerprint() == model.context.fingerprint()
    assert loaded.image_size == 32
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch["images"]), model(batch["images"]), rtol=0, atol=0)
        assert torch.equal(loaded.predict_latlon(batch["images"]), model.predict_latlon(batch["images"]))


def test_predict_needs_only_the_checkpoint_and_images(trained, predict_only_root, tmp_path):
    _, ckpt, root = trained
    out = tmp_path / "preds.csv"
    argv = ["predict", "--ckpt", str(ckpt), "--data", str(predict_only_root), "--out", str(out)]
    assert cli.main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    preds = pd.read_csv(out)
    assert list(preds.columns) == ["uuid", "latitude", "longitude"]
    folders = sorted(p.name for p in (predict_only_root / "images").iterdir())
    assert sorted(preds["uuid"]) == folders
    assert np.isfinite(preds[["latitude", "longitude"]].to_numpy()).all()
    assert borders.is_on_land(preds["latitude"], preds["longitude"], "mainland").all()
    summary = evaluate(out, root)
    assert summary["count"] == len(folders)
    assert 0.0 < summary["mean_km"] < 500.0
    assert 0.0 <= summary["acc_25_km"] <= summary["acc_200_km"] <= summary["acc_750_km"] <= 1.0


def test_geometric_median_decoding_from_the_command_line(trained, predict_only_root, tmp_path):
    _, ckpt, _ = trained
    outputs = {}
    for decoding in ("weighted_mean", "geometric_median"):
        out = tmp_path / f"{decoding}.csv"
        argv = ["predict", "--ckpt", str(ckpt), "--data", str(predict_only_root), "--out", str(out)]
        assert cli.main([*argv, "--decoding", decoding, "--cache-dir", str(tmp_path / "cache")]) == 0
        outputs[decoding] = pd.read_csv(out)
    a, b = outputs["weighted_mean"], outputs["geometric_median"]
    assert list(a["uuid"]) == list(b["uuid"])
    assert not np.allclose(a[["latitude", "longitude"]], b[["latitude", "longitude"]])


def test_evaluate_prints_one_json_line(trained, tmp_path, capsys):
    _, _, root = trained
    truth = pd.read_csv(root / "data.csv")
    preds = truth[["uuid", "latitude", "longitude"]].copy()
    preds["latitude"] += 0.1  # 11.1 km north of every true location
    path = tmp_path / "p.csv"
    preds.to_csv(path, index=False)
    assert cli.main(["evaluate", str(path), "--truth", str(root)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    result = json.loads(line)
    assert set(result) == {
        "mean_km",
        "median_km",
        "acc_1_km",
        "acc_25_km",
        "acc_200_km",
        "acc_750_km",
        "count",
        "baseline_best_constant_km",
    }
    assert result["mean_km"] == pytest.approx(11.12, abs=0.01)
    assert result["acc_1_km"] == 0.0 and result["acc_25_km"] == 1.0
    assert result["count"] == len(truth)
    # the truth may also be given as the CSV itself
    assert evaluate(path, root / "data.csv") == result


def test_evaluate_refuses_mismatched_uuids(trained, tmp_path, capsys):
    _, _, root = trained
    truth = pd.read_csv(root / "data.csv")
    preds = truth[["uuid", "latitude", "longitude"]].copy()
    dropped = preds["uuid"].iloc[3]
    stranger = pd.DataFrame({"uuid": ["not-a-real-uuid"], "latitude": [45.0], "longitude": [16.0]})
    bad = pd.concat([preds.drop(index=3), stranger])
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError) as info:
        evaluate(path, root)
    assert dropped in str(info.value) and "not-a-real-uuid" in str(info.value)
    assert cli.main(["evaluate", str(path), "--truth", str(root)]) == 2
    assert dropped in capsys.readouterr().err
    twice = pd.concat([preds, preds.iloc[:1]])
    twice.to_csv(path, index=False)
    with pytest.raises(DataError, match="more than once"):
        evaluate(path, root)


class _Payload:
    """Pickles into a call that would create a folder if it ever ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_checkpoint_with_a_pickle_payload_is_refused(trained, tmp_path, capsys):
    _, ckpt, root = trained
    marker = tmp_path / "payload_ran"
    data = load_checkpoint(ckpt)
    data["extra"] = _Payload(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(data, evil)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_task(evil)
    argv = ["predict", "--ckpt", str(evil), "--data", str(root), "--out", str(tmp_path / "x.csv")]
    assert cli.main(argv) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "x.csv").exists()


def test_mismatched_backbone_or_class_table_is_refused(trained, croatia_points):
    run, ckpt, _ = trained
    with pytest.raises(CheckpointError, match=r"'efficientnet_lite0'.*'resnet18'"):
        load_task(ckpt, backbone="resnet18")
    lat, lon = croatia_points
    other = GeoContext.fit(lat[:500], lon[:500], spacing_deg=0.25)
    with pytest.raises(CheckpointError, match="classes in the checkpoint vs"):
        load_task(ckpt, context=other)
    assert load_task(ckpt, backbone="efficientnet_lite0", context=run.model.context).context is not None
    # resuming or testing a model of another class table fails the same way
    record = load_checkpoint(ckpt)
    record["geoguess"] = {**record["geoguess"], "context": other.to_dict(), "context_fingerprint": other.fingerprint()}
    with pytest.raises(CheckpointError, match="mismatch"):
        run.model.on_load_checkpoint(record)


def test_unreadable_or_foreign_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_task(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_task(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not written by a geoguess task"):
        load_task(foreign)


def _reference_predictions(task, dataset, batch_size):
    """The inference loop used before ``Trainer.predict``: a plain DataLoader in inference mode."""
    from torch.utils.data import DataLoader

    points, probs, uuids = [], [], []
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            outputs = task(batch["images"])
            points.append(task.decode(outputs).numpy())
            probs.append(task.class_probabilities(outputs).numpy())
            uuids += list(batch["uuid"])
    return uuids, np.concatenate(points), np.concatenate(probs)


def test_the_one_inference_path_gives_the_same_predictions_as_a_plain_loop(trained, predict_only_root, tmp_path):
    from geoguess_utils import inference
    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings

    _, ckpt, _ = trained
    task = load_task(ckpt)
    module = GeoDataModule(
        predict_roots=[str(predict_only_root)],
        image_size=task.image_size,
        batch_size=7,
        augment=False,
        context=task.context.to_dict(),
        cache=CacheSettings(dir=str(tmp_path / "ref-cache")),
    )
    module.setup("predict")
    uuids, points, probs = _reference_predictions(task, module.dataset("predict"), 7)

    predictions = inference.predict(ckpt, [predict_only_root], batch_size=7, cache_dir=tmp_path / "cache")
    assert predictions.table["uuid"].tolist() == uuids
    np.testing.assert_array_equal(predictions.table[["pred_lat", "pred_lon"]].to_numpy(), points)
    np.testing.assert_array_equal(predictions.probabilities, probs)

    out = tmp_path / "preds.csv"
    argv = ["predict", "--ckpt", str(ckpt), "--data", str(predict_only_root), "--out", str(out)]
    assert cli.main([*argv, "--batch-size", "7", "--cache-dir", str(tmp_path / "cache")]) == 0
    written = pd.read_csv(out)
    assert written["uuid"].tolist() == uuids
    np.testing.assert_allclose(written[["latitude", "longitude"]].to_numpy(), points, rtol=0, atol=1e-12)


# -- evaluate: impossible and implausible coordinates ---------------------------------------------


@pytest.fixture
def truth_csv(croatia_points, tmp_path) -> Path:
    lat, lon = croatia_points
    truth = pd.DataFrame({"uuid": [f"loc{i:02d}" for i in range(20)], "latitude": lat[:20], "longitude": lon[:20]})
    path = tmp_path / "truth.csv"
    truth.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("column, value", [("latitude", 95.0), ("longitude", 500.0), ("latitude", -90.5)])
def test_evaluate_refuses_impossible_coordinates_naming_line_and_uuid(column, value, truth_csv, tmp_path, capsys):
    preds = pd.read_csv(truth_csv)
    preds.loc[4, column] = value
    path = tmp_path / "preds.csv"
    preds.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"coordinates that cannot exist .*: line 6 uuid 'loc04' \(latitude"):
        evaluate(path, truth_csv)
    assert cli.main(["evaluate", str(path), "--truth", str(truth_csv)]) == 2
    err = capsys.readouterr().err
    assert "line 6 uuid 'loc04'" in err and str(value).rstrip("0").rstrip(".") in err
    assert evaluate(truth_csv, truth_csv)["mean_km"] == 0.0  # the same file in range is accepted


def test_evaluate_warns_when_the_truth_columns_look_swapped(truth_csv, tmp_path, capsys):
    truth = pd.read_csv(truth_csv)
    swapped = truth.rename(columns={"latitude": "longitude", "longitude": "latitude"})
    swapped_path = tmp_path / "swapped_truth.csv"
    swapped.to_csv(swapped_path, index=False)
    assert cli.main(["evaluate", str(truth_csv), "--truth", str(swapped_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: 20 of 20 points of the truth file" in captured.err and "columns look swapped" in captured.err
    assert json.loads(captured.out)["mean_km"] > 1000
    assert cli.main(["evaluate", str(truth_csv), "--truth", str(truth_csv)]) == 0
    assert "warning" not in capsys.readouterr().err  # points in Croatia: no warning


def test_uuids_differing_only_in_spaces_are_shown_quoted(truth_csv, tmp_path):
    preds = pd.read_csv(truth_csv)
    preds.loc[0, "uuid"] = " loc00"
    path = tmp_path / "spaced.csv"
    preds.to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        evaluate(path, truth_csv)
    message = str(caught.value)
    assert "'loc00'" in message and "' loc00'" in message and "differ only in spaces" in message


@pytest.mark.parametrize("line", [2, 5])
def test_a_row_with_a_field_too_many_is_named_on_any_line(line, truth_csv, tmp_path):
    rows = truth_csv.read_text().splitlines()
    rows[line - 1] += ",EXTRA"
    path = tmp_path / "extra.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=rf"extra\.csv line {line}: 4 fields, but the header has 3"):
        evaluate(path, truth_csv)
