"""Ctrl+C during a long command exits 130 with one line, never 1 ("done, problems found")."""

from __future__ import annotations

import asyncio
import os
import signal

import pandas as pd
import pytest
from _reliability_helpers import tiny_task, write_checkpoint
from _training_helpers import make_dataset

from geoguess_utils import cli
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.embeddings import Embedder
from geoguess_utils.errors import EXIT_INTERRUPTED
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.classification import ClassificationTask


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("interrupts") / "sample", 8, size=32, seed=4)


def _ctrl_c(*_args, **_kwargs):
    raise KeyboardInterrupt  # what a Ctrl+C raises in the middle of the loop


@pytest.mark.timeout(300)
@pytest.mark.parametrize("command", ["predict", "map", "embed"])
def test_ctrl_c_exits_130_with_one_line(command, sample, tmp_path, monkeypatch, capsys):
    table = pd.read_csv(sample / "data.csv")
    context = GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=1.0)
    ckpt = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "model.ckpt")
    out = tmp_path / "out"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    argv = {
        "predict": ["predict", "--ckpt", str(ckpt), "--data", str(sample), "--out", str(out), *cache],
        "map": ["map", "--ckpt", str(ckpt), "--data", str(sample), "--out", str(out), "--no-thumbnails", *cache],
        "embed": ["embed", "--data", str(sample), "--ckpt", str(ckpt), "--device", "cpu", *cache],
    }[command]
    monkeypatch.setattr(Embedder if command == "embed" else GeoTask, "predict_step", _ctrl_c)
    if command == "embed":
        monkeypatch.setattr(Embedder, "view_features", _ctrl_c)  # the in-place loop calls this directly
    assert cli.main(argv) == EXIT_INTERRUPTED
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"geoguess {command}:")]
    assert err[-1] == f"geoguess {command}: interrupted"
    assert not out.exists()


def test_ctrl_c_during_validate_exits_130_with_one_line(sample, monkeypatch, capsys):
    from geoguess_utils.data import validation

    monkeypatch.setattr(validation, "_inspect_image", _ctrl_c)
    assert cli.main(["validate", str(sample)]) == EXIT_INTERRUPTED
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("geoguess validate:")]
    assert err == ["geoguess validate: interrupted"]


def test_ctrl_c_during_a_download_exits_130_and_keeps_the_status_file(tmp_path, monkeypatch, capsys):
    from geoguess_utils.datasets import streetview

    async def interrupted_fetch(self, i):
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl+C: asyncio.run cancels the run and raises KeyboardInterrupt
        await asyncio.sleep(30)

    monkeypatch.setattr(streetview.StreetViewSource, "fetch_row", interrupted_fetch)
    # as in a fresh process: Python's own Ctrl+C handler (an earlier test's trainer may have left another)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    monkeypatch.setenv("GEOGUESS_STREETVIEW_KEY", "not-a-real-key")
    out = tmp_path / "root"
    argv = ["download-streetview", "--locations", "3", "--out", str(out), "--base-url", "http://127.0.0.1:9"]
    try:
        status = cli.main(argv)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert status == EXIT_INTERRUPTED
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("geoguess download-streetview:")]
    assert err[-1] == "geoguess download-streetview: interrupted"
    status = pd.read_csv(out / "streetview_status.csv")
    assert len(status) == 3 and set(status["status"]) <= {"PENDING", "FAILED"}  # resumable: nothing counted done
