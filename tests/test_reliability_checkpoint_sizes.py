"""Crafted checkpoints: class points and sizes are checked against the file's own weights before anything is built.

A record can ask for NaN class points, a hidden layer of 10**8 units or 4096-px views while
the fingerprint is recomputed, so the file looks consistent. Each is refused with exit 2
(HTTP 400 in the server) and nothing is allocated first.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint
from _training_helpers import make_dataset

from geoguess_utils import cli
from geoguess_utils.cells.context import GeoContext, dict_fingerprint
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.models.multiview import MultiViewNet
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.loading import load_task


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("sizes") / "sample", 6, size=32, seed=8)


@pytest.fixture(scope="module")
def good(sample, tmp_path_factory):
    table = pd.read_csv(sample / "data.csv")
    context = GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=1.0)
    return write_checkpoint(tiny_task(ClassificationTask, context), tmp_path_factory.mktemp("good") / "good.ckpt")


def _altered(good, tmp_path, change) -> object:
    data = torch.load(good, weights_only=True)
    change(data)
    record = data["geoguess"]
    record["context_fingerprint"] = dict_fingerprint(record["context"])  # the file looks consistent
    path = tmp_path / "altered.ckpt"
    torch.save(data, path)
    return path


def _never_build(monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("a network was built before the checkpoint was checked")

    monkeypatch.setattr(MultiViewNet, "__init__", refuse)


@pytest.mark.parametrize("value", [float("nan"), 1e6])
def test_class_points_that_are_not_finite_or_far_from_croatia_are_refused(value, good, sample, tmp_path, capsys):
    def change(data):
        data["geoguess"]["context"]["class_table"]["weighted_lat"][0] = value

    path = _altered(good, tmp_path, change)
    with pytest.raises(CheckpointError, match=r"class points \(weighted\) are not finite or lie outside Croatia"):
        load_task(path)
    out = tmp_path / "p.csv"
    assert cli.main(["predict", "--ckpt", str(path), "--data", str(sample), "--out", str(out)]) == 2
    assert "outside Croatia" in capsys.readouterr().err and not out.exists()


@pytest.mark.timeout(60)
def test_a_hidden_layer_the_weights_do_not_have_is_refused_before_anything_is_built(good, tmp_path, monkeypatch):
    def change(data):
        data["hyper_parameters"]["head_hidden"] = 10**8

    path = _altered(good, tmp_path, change)
    _never_build(monkeypatch)
    with pytest.raises(CheckpointError, match=r"output layer net\.head\.4 .*head_hidden 100000000"):
        load_task(path)


def test_more_classes_than_the_output_layer_holds_are_refused_before_anything_is_built(good, tmp_path, monkeypatch):
    def change(data):
        table = data["geoguess"]["context"]["class_table"]
        for column in table:
            table[column] = table[column] + table[column]  # twice the classes

    path = _altered(good, tmp_path, change)
    _never_build(monkeypatch)
    with pytest.raises(CheckpointError):
        load_task(path)


def test_views_larger_than_the_limit_are_refused_at_load_and_at_training(good, tmp_path):
    from geoguess_utils.data.datamodule import GeoDataModule

    def change(data):
        data["geoguess"]["image_size"] = 4096

    with pytest.raises(CheckpointError, match="from 8 to 1024"):
        load_task(_altered(good, tmp_path, change))
    with pytest.raises(ConfigError, match="from 8 to 1024 pixels, got 4096"):
        GeoDataModule(roots=["x"], image_size=4096)


def test_a_flipped_byte_in_a_weight_loads_and_only_the_digest_tells(good, tmp_path):
    """What SECURITY.md promises about damaged weights: nothing refuses them; the file's SHA-256 differs."""
    import hashlib

    data = torch.load(good, weights_only=True)
    name, weight = next((k, v) for k, v in data["state_dict"].items() if v.is_floating_point() and v.numel() > 4)
    raw = weight.clone().contiguous().view(-1).view(torch.uint8)
    raw[0] ^= 0x01  # the lowest bit of the first weight (little-endian): still a finite number
    data["state_dict"][name] = raw.view(weight.dtype).reshape(weight.shape)
    damaged = tmp_path / "damaged.ckpt"
    torch.save(data, damaged)
    loaded = load_task(damaged)
    assert not torch.equal(loaded.state_dict()[name], weight)
    assert hashlib.sha256(damaged.read_bytes()).hexdigest() != hashlib.sha256(good.read_bytes()).hexdigest()
