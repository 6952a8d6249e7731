"""Predictions stay finite and on Croatian land whatever the network outputs.

The network's forward pass is replaced by one returning NaN, infinities, or values of
1e30 and beyond; ``predict_step`` and the ``geoguess predict`` command must still give
finite points on land inside Croatia's bounds, for classification and for regression,
with both classification decodings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint

from geoguess_utils import cli
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.geo import borders
from geoguess_utils.models.multiview import MultiViewNet
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.regression import RegressionTask

BAD_OUTPUTS = {
    "nan": lambda shape: torch.full(shape, float("nan")),
    "+1e30": lambda shape: torch.full(shape, 1e30),
    "-1e30": lambda shape: torch.full(shape, -1e30),
    "+inf": lambda shape: torch.full(shape, float("inf")),
    "-inf": lambda shape: torch.full(shape, float("-inf")),
    "alternating 1e38": lambda shape: torch.tensor([(-1.0) ** i * 1e38 for i in range(shape[1])]).expand(shape),
    "mixed": lambda shape: torch.where(
        torch.arange(shape[1]) % 3 == 0, float("nan"), torch.where(torch.arange(shape[1]) % 3 == 1, 1e30, -np.inf)
    ).expand(shape),
    "one huge, rest nan": lambda shape: torch.cat(
        [torch.full((shape[0], 1), 1e30), torch.full((shape[0], shape[1] - 1), float("nan"))], dim=1
    ),
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("numerics") / "sample"
    argv = ["make-sample", "--out", str(root), "--locations", "6", "--size", "32", "--seed", "4", "--workers", "1"]
    assert cli.main(argv) == 0
    return root


@pytest.fixture(scope="module")
def context(croatia_points) -> GeoContext:
    lat, lon = croatia_points
    return GeoContext.fit(lat[:300], lon[:300], spacing_deg=0.5)


def _inside_croatia(latlon: np.ndarray, variant: str) -> None:
    assert latlon.ndim == 2 and latlon.shape[1] == 2
    assert np.isfinite(latlon).all(), latlon
    lon_min, lat_min, lon_max, lat_max = borders.croatia_bounds("full")
    assert ((latlon[:, 0] >= lat_min) & (latlon[:, 0] <= lat_max)).all(), latlon
    assert ((latlon[:, 1] >= lon_min) & (latlon[:, 1] <= lon_max)).all(), latlon
    assert borders.is_on_land(latlon[:, 0], latlon[:, 1], variant).all(), latlon


def _network_returns(monkeypatch, kind: str) -> None:
    def forward(self, images, view_mask=None, heading_known=None):
        return BAD_OUTPUTS[kind]((images.shape[0], self.head[-1].out_features)).clone()

    monkeypatch.setattr(MultiViewNet, "forward", forward)


@pytest.mark.parametrize("kind", list(BAD_OUTPUTS))
@pytest.mark.parametrize(
    "cls, decoding",
    [(ClassificationTask, "weighted_mean"), (ClassificationTask, "geometric_median"), (RegressionTask, None)],
)
def test_predict_step_survives_any_network_output(cls, decoding, kind, context, monkeypatch):
    task = tiny_task(cls, context)
    if decoding is not None:
        task.decoding = decoding
    _network_returns(monkeypatch, kind)
    batch = {"images": torch.zeros(3, 4, 3, 32, 32), "uuid": ["a", "b", "c"]}
    with torch.no_grad():
        out = task.predict_step(batch, 0)
    assert out["uuid"] == ["a", "b", "c"]
    assert out["latlon"].dtype == torch.float64
    _inside_croatia(out["latlon"].numpy(), context.variant)


@pytest.mark.parametrize("cls", [ClassificationTask, RegressionTask])
def test_the_predict_command_writes_only_finite_points_on_land(cls, context, sample, tmp_path, monkeypatch):
    ckpt = write_checkpoint(tiny_task(cls, context), tmp_path / "model.ckpt")
    for kind in ("nan", "+1e30", "-inf", "mixed"):
        _network_returns(monkeypatch, kind)
        out = tmp_path / f"{kind}.csv"
        argv = ["predict", "--ckpt", str(ckpt), "--data", str(sample), "--out", str(out)]
        assert cli.main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
        table = pd.read_csv(out)
        assert len(table) == 6
        _inside_croatia(table[["latitude", "longitude"]].to_numpy(), context.variant)


def test_the_check_can_fail(context):
    """Without the guards a NaN output gives a NaN point: the checks above are not vacuous."""
    with pytest.raises(AssertionError):
        _inside_croatia(np.array([[np.nan, 16.0]]), context.variant)
    with pytest.raises(AssertionError):
        _inside_croatia(np.array([[43.0, 14.5]]), context.variant)  # open Adriatic sea


# ----------------------------------------------------------------------------- never silently


def _nan_weights_checkpoint(context, path: Path, name: str = "net.head.1.weight", value: float = float("nan")) -> Path:
    task = tiny_task(ClassificationTask, context)
    state = task.state_dict()
    state[name] = state[name].clone()
    state[name].view(-1)[0] = value
    torch.save(
        {"state_dict": state, "hyper_parameters": dict(task.hparams), "geoguess": task.checkpoint_record()}, path
    )
    return path


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_tensor(value, context, sample, tmp_path, capsys):
    from geoguess_utils.errors import CheckpointError
    from geoguess_utils.tasks.loading import load_task

    ckpt = _nan_weights_checkpoint(context, tmp_path / "diverged.ckpt", value=value)
    with pytest.raises(CheckpointError, match=r"non-finite weights, first in net\.head\.1\.weight \(1 of \d+ values"):
        load_task(ckpt)
    for command in ("predict", "map"):
        out = tmp_path / f"{command}.out"
        argv = [command, "--ckpt", str(ckpt), "--data", str(sample), "--out", str(out)]
        assert cli.main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 2, command
        assert "net.head.1.weight" in capsys.readouterr().err
        assert not out.exists()


def test_a_non_finite_buffer_is_refused_too(context, tmp_path):
    from geoguess_utils.errors import CheckpointError
    from geoguess_utils.tasks.loading import load_task

    task = tiny_task(ClassificationTask, context)
    buffer = next(name for name, value in task.state_dict().items() if "running_var" in name)
    ckpt = _nan_weights_checkpoint(context, tmp_path / "buffer.ckpt", name=buffer)
    with pytest.raises(CheckpointError, match=rf"first in {buffer.replace('.', '[.]')}"):
        load_task(ckpt)


@pytest.mark.parametrize("command", ["predict", "map"])
def test_non_finite_outputs_at_run_time_are_counted_and_reported(
    command, context, sample, tmp_path, monkeypatch, capsys
):
    ckpt = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "model.ckpt")
    out = tmp_path / f"{command}.out"
    argv = [command, "--ckpt", str(ckpt), "--data", str(sample), "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "0 of 6 locations with non-finite network outputs" in captured.out and "warning" not in captured.err
    _network_returns(monkeypatch, "mixed")
    assert cli.main(argv) == 0  # the points are still written (finite, on land) ...
    captured = capsys.readouterr()
    assert "6 of 6 locations with non-finite network outputs" in captured.out  # ... but never silently
    assert "warning: the network gave NaN or infinite outputs for 6 of 6 locations" in captured.err
    assert out.is_file()


def test_map_takes_a_cache_dir_and_leaves_the_home_cache_alone(context, sample, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    ckpt = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "model.ckpt")
    cache = tmp_path / "cache"
    argv = ["map", "--ckpt", str(ckpt), "--data", str(sample), "--out", str(tmp_path / "m.html")]
    assert cli.main([*argv, "--cache-dir", str(cache), "--no-thumbnails"]) == 0
    assert list(cache.glob("enriched-*.csv"))
    assert not home.exists() or not list(home.rglob("enriched-*"))
