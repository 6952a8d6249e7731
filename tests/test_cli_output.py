"""What a command prints when its output goes to a log: its own lines only, no dependency's deprecations or adverts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
from _reliability_helpers import tiny_task, write_checkpoint
from _training_helpers import make_dataset

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.tasks.classification import ClassificationTask

REPO = Path(__file__).resolve().parents[1]


def test_predict_into_a_pipe_prints_only_its_own_lines(tmp_path):
    root = make_dataset(tmp_path / "root", 12, size=32, seed=3)
    table = pd.read_csv(root / "data.csv")
    context = GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=1.0)
    ckpt = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "model.ckpt")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default"}  # every warning shown, once
    command = [sys.executable, "-m", "geoguess_utils.cli", "predict", "--ckpt", str(ckpt), "--data", str(root)]
    command += ["--out", str(tmp_path / "p.csv"), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("geoguess predict:") for line in lines), done.stderr
    assert any("12/12 locations" in line for line in lines)  # progress lines, since stderr is a pipe
    assert done.stdout.startswith("wrote 12 predictions")
