"""Predict-the-mean and best-constant baselines, and ``geoguess evaluate`` reporting them without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geoguess_utils import cli, evaluation
from geoguess_utils.errors import DataError
from geoguess_utils.geo import borders, distance

REPO = Path(__file__).resolve().parents[1]


def _points(n, seed):
    lat, lon = borders.sample_points(n, np.random.default_rng(seed))
    return np.column_stack([lat, lon])


def test_best_constant_beats_every_other_constant():
    points = _points(300, 1)
    best = evaluation.best_constant(points)
    best_km = evaluation.constant_error_km(best, points)
    rng = np.random.default_rng(2)
    for step in rng.normal(0, 0.3, size=(40, 2)):  # nudges of ~30 km in every direction
        other = (best[0] + step[0], best[1] + step[1])
        assert evaluation.constant_error_km(other, points) >= best_km - 1e-3
    mean_km = evaluation.constant_error_km(evaluation.mean_position(points), points)
    assert best_km <= mean_km


def test_geometric_median_of_a_cluster_with_one_outlier_stays_with_the_cluster():
    cluster = np.array([[45.0, 16.0]] * 9 + [[43.0, 17.5]])
    lat, lon = evaluation.best_constant(cluster)
    assert distance.haversine_km(lat, lon, 45.0, 16.0) < 1.0
    mean_lat, mean_lon = evaluation.mean_position(cluster)
    assert distance.haversine_km(mean_lat, mean_lon, 45.0, 16.0) > 10.0  # the mean is pulled, the median is not


def test_baselines_dict():
    train, held_out = _points(400, 3), _points(100, 4)
    out = evaluation.baselines(train, held_out)
    assert set(out) == {"baseline_mean_km", "baseline_best_constant_km"}
    expected_mean = np.mean(distance.haversine_km(*held_out.T, *evaluation.mean_position(train)))
    assert out["baseline_mean_km"] == pytest.approx(expected_mean)
    assert 50 < out["baseline_best_constant_km"] <= out["baseline_mean_km"] < 300
    assert set(evaluation.baselines(None, held_out)) == {"baseline_best_constant_km"}


def test_baselines_refuse_bad_points():
    with pytest.raises(DataError, match=r"\(N, 2\)"):
        evaluation.baselines(None, np.zeros((0, 2)))
    with pytest.raises(DataError, match=r"non-finite.*rows \[1\]"):
        evaluation.baselines(np.array([[45.0, 16.0], [np.nan, 16.0]]), _points(5, 0))
    with pytest.raises(DataError, match="impossible"):
        evaluation.baselines(None, np.array([[16.0, 200.0]]))


def _write(path, points, prefix="u"):
    frame = pd.DataFrame({"uuid": [f"{prefix}{i}" for i in range(len(points))]})
    frame["latitude"], frame["longitude"] = points[:, 0], points[:, 1]
    frame.to_csv(path, index=False)
    return frame


def test_evaluate_json_carries_both_baselines(tmp_path, capsys):
    everything = _points(120, 5)
    truth = _write(tmp_path / "truth.csv", everything[:30])
    train = _write(tmp_path / "all.csv", everything)  # u0..u29 are the truth, the rest train
    split = pd.DataFrame({"uuid": train["uuid"], "split": ["test"] * 30 + ["train"] * 90})
    split.to_csv(tmp_path / "split.csv", index=False)
    preds = truth.copy()
    preds["latitude"] += 0.05
    preds.to_csv(tmp_path / "p.csv", index=False)
    argv = ["evaluate", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "truth.csv")]
    assert cli.main([*argv, "--train", str(tmp_path / "all.csv"), "--split-csv", str(tmp_path / "split.csv")]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = evaluation.baselines(everything[30:], everything[:30])
    assert result["baseline_mean_km"] == pytest.approx(expected["baseline_mean_km"])
    assert result["baseline_best_constant_km"] == pytest.approx(expected["baseline_best_constant_km"])
    assert result["mean_km"] < result["baseline_best_constant_km"]
    # --split-csv alone cannot say which file's rows it picks
    assert cli.main([*argv, "--split-csv", str(tmp_path / "split.csv")]) == 2
    assert capsys.readouterr().err.splitlines()[0].startswith("geoguess evaluate: error: --split-csv")


def test_evaluate_never_imports_torch(tmp_path):
    points = _points(20, 6)
    _write(tmp_path / "truth.csv", points)
    _write(tmp_path / "p.csv", points[::-1].copy())
    code = (
        "import sys, json\n"
        "from geoguess_utils import cli\n"
        f"status = cli.main(['evaluate', {str(tmp_path / 'p.csv')!r}, '--truth', {str(tmp_path / 'truth.csv')!r},"
        f" '--train', {str(tmp_path / 'truth.csv')!r}])\n"
        "assert status == 0, status\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'lightning': 'pytorch_lightning' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "baseline_mean_km" in json.loads(lines[0])
    assert json.loads(lines[-1]) == {"torch": False, "lightning": False}
