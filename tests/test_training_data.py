"""Checkpoints record what they were trained on; predict, map and evaluate say it, and warn on a mismatch."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
from _training_helpers import fit_in, make_dataset, use_tiny_backbone

from geoguess_utils import cli
from geoguess_utils.checkpoints import record as checkpoint
from geoguess_utils.checkpoints.files import load_checkpoint
from geoguess_utils.checkpoints.record import read_record
from geoguess_utils.errors import CheckpointError
from geoguess_utils.tasks.loading import load_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone():
    """What a checkpoint says about its training data is plumbing: a two-layer backbone stands in for the real one."""
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        yield


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny classifier trained on a synthetic root: (checkpoint path, synthetic root, work folder)."""
    work = tmp_path_factory.mktemp("trained_on")
    root = make_dataset(work / "synth_root", 30, size=32, seed=4)
    _, checkpoint = fit_in(work, root)
    return checkpoint, root, work


@pytest.fixture(scope="module")
def real_root(trained):
    """The same photos, labelled as a real dataset (Street View source)."""
    _, root, work = trained
    target = work / "real_root"
    if not target.exists():
        shutil.copytree(root, target)
        table = pd.read_csv(target / "data.csv", dtype=str)
        table["source"] = "streetview"
        table.to_csv(target / "data.csv", index=False)
    return target


def test_record_names_the_synthetic_roots_and_counts(trained):
    ckpt, root, _ = trained
    record = read_record(load_checkpoint(ckpt), str(ckpt))
    info = record[checkpoint.TRAINING_DATA_FIELD]
    assert info["kind"] == "synthetic" and info["roots"] == ["synth_root"]
    assert info["locations"] == len(pd.read_csv(root / "data.csv"))
    assert 0 < info["train_locations"] < info["locations"]
    assert load_task(ckpt).training_data == info


def _predict(ckpt, data, out, cache, capsys):
    argv = ["predict", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--cache-dir", str(cache)]
    assert cli.main(argv) == 0
    return capsys.readouterr().err.splitlines()


def test_predict_says_what_the_model_was_trained_on(trained, real_root, tmp_path, capsys):
    ckpt, root, _ = trained
    lines = _predict(ckpt, root, tmp_path / "a.csv", tmp_path / "cache", capsys)
    assert lines[0].startswith("geoguess predict: trained on: synthetic data,") and "synth_root" in lines[0]
    assert not any("warning" in line for line in lines)
    lines = _predict(ckpt, real_root, tmp_path / "b.csv", tmp_path / "cache", capsys)
    warnings = [line for line in lines if "warning" in line]
    assert len(warnings) == 1 and "synthetic" in warnings[0] and "real photos" in warnings[0]


def test_older_checkpoints_without_the_field_still_load(trained, tmp_path, capsys):
    ckpt, root, _ = trained
    data = load_checkpoint(ckpt)
    del data[checkpoint.RECORD_KEY][checkpoint.TRAINING_DATA_FIELD]
    old = tmp_path / "old.ckpt"
    torch.save(data, old)
    assert load_task(old).training_data is None
    lines = _predict(old, root, tmp_path / "p.csv", tmp_path / "cache", capsys)
    assert lines[0] == f"geoguess predict: {checkpoint.describe_training_data(None)}"


def test_a_malformed_field_is_refused_by_name(trained, tmp_path):
    ckpt, _, _ = trained
    data = load_checkpoint(ckpt)
    data[checkpoint.RECORD_KEY][checkpoint.TRAINING_DATA_FIELD] = {"kind": "dreamt", "roots": [], "locations": 1}
    bad = tmp_path / "bad.ckpt"
    torch.save(data, bad)
    with pytest.raises(CheckpointError, match="record field 'training_data'"):
        load_task(bad)


def test_evaluate_with_ckpt_reports_and_warns(trained, real_root, tmp_path, capsys):
    ckpt, _, _ = trained
    truth = pd.read_csv(real_root / "data.csv")
    truth[["uuid", "latitude", "longitude"]].to_csv(tmp_path / "p.csv", index=False)
    assert cli.main(["evaluate", str(tmp_path / "p.csv"), "--truth", str(real_root), "--ckpt", str(ckpt)]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err[0].startswith(f"geoguess evaluate: {ckpt}: trained on: synthetic data")
    assert len([line for line in err if "warning: this model was trained on synthetic" in line]) == 1
    assert json.loads(captured.out)["mean_km"] == pytest.approx(0.0, abs=1e-6)


def test_map_legend_states_the_training_data(trained, real_root, tmp_path, capsys):
    ckpt, _, _ = trained
    out = tmp_path / "map.html"
    argv = ["map", "--ckpt", str(ckpt), "--data", str(real_root), "--out", str(out), "--no-thumbnails"]
    assert cli.main([*argv, "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "geoguess map: trained on: synthetic data" in err and "geoguess map: warning:" in err
    page = out.read_text(encoding="utf-8")
    assert "trained on: synthetic data" in page and "predicting real photos" in page


def test_kinds_of_roots_and_the_warning_for_each(trained, real_root, tmp_path):
    from geoguess_utils.data.provenance import data_kind

    _, root, _ = trained
    bare = tmp_path / "no_csv"
    bare.mkdir()
    assert data_kind([root]) == "synthetic"
    assert data_kind([real_root]) == "real" and data_kind([bare]) == "real"
    assert data_kind([root, real_root]) == "mixed"
    synthetic = checkpoint.training_data_record([root], 30, 20)
    assert synthetic == {"kind": "synthetic", "roots": ["synth_root"], "locations": 30, "train_locations": 20}
    assert checkpoint.synthetic_model_warning(synthetic, [root]) is None
    assert checkpoint.synthetic_model_warning(synthetic, [root, real_root]) is not None
    real = checkpoint.training_data_record([real_root], 30, 20)
    assert checkpoint.synthetic_model_warning(real, [root]) is None  # only the synthetic -> real direction warns
    assert checkpoint.synthetic_model_warning(None, [real_root]) is None
    assert "30 in real_root" in checkpoint.describe_training_data(real)
