"""Measured coverage of the search regions on a held-out test split.

Trains the quick config (embedding cache, CPU) on a dataset with a 60/20/20 split, so the
validation split that calibrates (temperature and conformal scores, fitted by ``geoguess
fit`` itself when training ends) and the test split that checks are both about a fifth of
the locations. Then predicts the test split once and, for nominal coverages 0.8, 0.9 and
0.95, reports how often the region holds the truth, its median area, and for classifiers
the median number of cells, the coverage of the uncalibrated probabilities taken at their
word (the fewest cells whose trained probability reaches ``c``, no conformal step) and
the test ECE before and after the temperature. Writes JSON and prints a Markdown table.

    python benchmarks/coverage.py --data data/synthetic_settlements --out benchmarks/coverage.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from geoguess_utils.inference.predictions import predict
from geoguess_utils.io import atomic_write_text
from geoguess_utils.tasks.calibration import (
    REPORTED_COVERAGES,
    apply_temperature,
    cell_set_mask,
    expected_calibration_error,
)
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.regions import AREA_COLUMN, CELLS_COLUMN, SearchRegions, covered

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from report import markdown_table  # noqa: E402

FRACTIONS = "[0.6, 0.2, 0.2]"
TASKS: dict[str, list[str]] = {
    "classification": [],
    "regression": ["--model.class_path", "geoguess_utils.tasks.regression.RegressionTask", "--model.lr", "0.0001"],
}
"""Task name -> the ``geoguess fit`` overrides that train it from the quick config."""


def fit(task: str, data: Path, work: Path, threads: int) -> tuple[Path, float]:
    """Train ``task`` with ``geoguess fit`` (which calibrates its best checkpoint); return it and the seconds."""
    shutil.rmtree(work / "checkpoints", ignore_errors=True)  # a new run, not best-v1.ckpt next to an old one
    work.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "geoguess_utils.cli",
        "fit",
        "--config",
        str(REPO / "configs" / "quick_cpu.yaml"),
        "--data.roots",
        f"[{data.resolve()}]",
        "--data.split.fractions",
        FRACTIONS,
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(work),
        "--trainer.enable_progress_bar",
        "false",
        *TASKS[task],
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    calibrated = [line for line in done.stderr.splitlines() if "calibrated on" in line or "not calibrated" in line]
    print(f"{task}: fit in {seconds:.0f} s; {calibrated[-1] if calibrated else 'no calibration line'}", flush=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"geoguess fit of the {task} failed ({done.returncode})")
    return work / "checkpoints" / "best.ckpt", seconds


def measure(task: str, ckpt: Path, data: Path, split_csv: Path | None) -> dict[str, Any]:
    """Coverage and size of the regions at each reported coverage: the test split, or every location of ``data``.

    Without ``split_csv`` every location of ``data`` is predicted: a root the model never saw
    (``--shifted``), where the conformal guarantee does not hold unless it is drawn like the
    validation split.
    """
    model = load_task(ckpt)
    assert model.calibration is not None, f"{ckpt} was not calibrated"
    calibration = model.calibration
    split = None if split_csv is None else "test"
    predictions = predict(model, [str(data)], split=split, split_csv=split_csv, device="cpu")
    table = predictions.table
    regions = SearchRegions.of_task(model, str(ckpt))
    result: dict[str, Any] = {
        "task": task,
        "root": str(data),
        "val_locations": calibration.n,
        "test_locations": len(table),
        "test_mean_km": float(table["error_km"].mean()),
        "temperature": calibration.temperature,
        "coverages": [],
    }
    probabilities = predictions.probabilities
    labels = None
    if probabilities is not None:
        assert calibration.temperature is not None and model.context is not None
        raw = apply_temperature(probabilities, 1.0 / calibration.temperature)  # the trained probabilities
        labels = model.context.assign(table["true_lat"].to_numpy(), table["true_lon"].to_numpy())
        result["test_ece_before"] = expected_calibration_error(raw, labels)
        result["test_ece_after"] = expected_calibration_error(probabilities, labels)
        result["val_ece_before"] = calibration.stats.get("ece_before")
        result["val_ece_after"] = calibration.stats.get("ece_after")
    for coverage in REPORTED_COVERAGES:
        if probabilities is not None:
            columns = regions.table(coverage, probabilities=probabilities)
        else:
            columns = regions.table(coverage, latlon=table[["pred_lat", "pred_lon"]].to_numpy())
        scored = columns.assign(
            **{name: table[name].to_numpy() for name in ("true_lat", "true_lon", "pred_lat", "pred_lon")}
        )
        hit = covered(scored, model.context)
        row: dict[str, Any] = {
            "nominal": coverage,
            "empirical": float(hit.mean()),
            "median_km2": float(np.median(columns[AREA_COLUMN])),
            "threshold": calibration.threshold(coverage),
        }
        if probabilities is not None:
            assert labels is not None
            row["median_cells"] = float(np.median([len(cells.split()) for cells in columns[CELLS_COLUMN]]))
            naive = cell_set_mask(raw, coverage)
            row["uncalibrated_at_their_word"] = float(naive[np.arange(len(labels)), labels].mean())
        result["coverages"].append(row)
    return result


def markdown(results: list[dict[str, Any]]) -> str:
    """One row per task and coverage."""
    rows = []
    for result in results:
        for row in result["coverages"]:
            rows.append(
                (
                    result["task"] + ("" if result["root"] == results[0]["root"] else f", {Path(result['root']).name}"),
                    f"{row['nominal']:.2f}",
                    f"{row['empirical']:.3f}",
                    row["median_km2"],
                    row.get("median_cells"),
                    None
                    if row.get("uncalibrated_at_their_word") is None
                    else f"{row['uncalibrated_at_their_word']:.3f}",
                    f"{result['val_locations']} / {result['test_locations']}",
                )
            )
    headers = (
        "model",
        "nominal coverage",
        "test coverage",
        "median region km²",
        "median cells",
        "uncalibrated p at their word",
        "val / test locations",
    )
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    """Train, measure, write JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synthetic_settlements")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "coverage", help="run folders (one per task)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "coverage.json")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each fit")
    parser.add_argument(
        "--shifted", nargs="*", type=Path, default=[], help="roots never trained on (all locations measured)"
    )
    parser.add_argument("--reuse", action="store_true", help="measure the runs already in --work instead of fitting")
    args = parser.parse_args(argv)
    results = []
    for task in args.tasks:
        work = args.work / task
        if args.reuse and (work / "checkpoints" / "best.ckpt").is_file():
            ckpt, seconds = work / "checkpoints" / "best.ckpt", float("nan")
        else:
            ckpt, seconds = fit(task, args.data, work, args.threads)
        for root, split_csv in [(args.data, work / "split.csv"), *((r, None) for r in args.shifted)]:
            result = measure(task, ckpt, root, split_csv)
            result["fit_seconds"] = seconds
            results.append(result)
            print(json.dumps(result), flush=True)
    command = "python benchmarks/coverage.py " + " ".join(argv if argv is not None else sys.argv[1:])
    payload = {"command": command.strip(), "data": str(args.data), "split_fractions": FRACTIONS, "results": results}
    atomic_write_text(args.out, json.dumps(payload, indent=2) + "\n")
    for result in results:
        if "test_ece_before" in result:
            print(
                f"{result['task']} on {Path(result['root']).name}: temperature {result['temperature']:.3g}; test ECE "
                f"{result['test_ece_before']:.3f} -> {result['test_ece_after']:.3f}; "
                f"test mean {result['test_mean_km']:.1f} km"
            )
        else:
            print(f"{result['task']} on {Path(result['root']).name}: test mean {result['test_mean_km']:.1f} km")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
