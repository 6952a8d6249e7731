"""Fit a checkpoint's calibration on its run's validation split and write it into the checkpoint.

The validation locations are predicted through the one inference path with the trained
probabilities; :mod:`geoguess_utils.tasks.calibration` fits the temperature (classifiers) and
keeps the sorted conformal scores. ``geoguess fit`` runs this on its best checkpoint when
training ends (ensembles too); ``geoguess calibrate`` runs it on an existing run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.inference.predictions import predict
from geoguess_utils.tasks.calibration import (
    REPORTED_COVERAGES,
    Calibration,
    apply_temperature,
    fit_cells_calibration,
    fit_disc_calibration,
)
from geoguess_utils.tasks.regions import AREA_COLUMN, SearchRegions

if TYPE_CHECKING:
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.evaluation import Predictions
    from geoguess_utils.tasks.base import GeoTask


def check_validation_split(split_csv: str | os.PathLike[str] | None) -> int:
    """The number of validation rows of a run's ``split.csv``.

    Raises:
        ConfigError: The file is missing or has no ``val`` row (calibration has nothing to fit on).
    """
    from geoguess_utils.data.splits import load_split

    if split_csv is None or not Path(split_csv).is_file():
        raise ConfigError(
            f"calibration is fitted on the run's validation split, and its split file {split_csv} does not exist; "
            "give the run's split.csv with --split-csv"
        )
    rows = int((load_split(split_csv)["split"] == "val").sum())
    if rows == 0:
        raise ConfigError(
            f"{split_csv} has no validation rows, and calibration is fitted on the validation split; train with one "
            "(e.g. --data.split.fractions '[0.8, 0.1, 0.1]')"
        )
    return rows


def calibration_of(predictions: Predictions, context: GeoContext) -> Calibration:
    """The calibration of validation predictions made with the trained (uncalibrated) probabilities.

    Args:
        predictions: Predictions of the validation split, with their truth.
        context: The model's GeoContext (the true cell of each location: the context's rule).

    Returns:
        A ``"cells"`` calibration when the predictions carry class probabilities, else a ``"disc"`` one.
    """
    table = predictions.table
    if predictions.probabilities is not None:
        labels = context.assign(table["true_lat"].to_numpy(), table["true_lon"].to_numpy())
        return fit_cells_calibration(predictions.probabilities, labels)
    return fit_disc_calibration(table["error_km"].to_numpy(dtype=np.float64))


def fit_calibration(
    task: GeoTask,
    roots: Sequence[str | os.PathLike[str]],
    split_csv: str | os.PathLike[str],
    **options: Any,
) -> tuple[Calibration, dict[float, float]]:
    """Predict the validation split with the trained probabilities and fit the calibration on it.

    Args:
        task: A trained task; its own calibration, if any, is set aside while predicting.
        roots: The dataset roots of the run.
        split_csv: The run's ``split.csv``.
        **options: Passed to :func:`geoguess_utils.inference.predictions.predict`
            (``batch_size``, ``device``, ``num_workers``, ``cache_dir``, ``lenient``, ...).

    Returns:
        The calibration and the median validation region area (km²) per coverage of
        :data:`~geoguess_utils.tasks.calibration.REPORTED_COVERAGES`.

    Raises:
        ConfigError: No split file or no validation row.
    """
    check_validation_split(split_csv)
    assert task.context is not None
    previous = task.calibration
    task.calibration = None  # the trained probabilities
    try:
        predictions = predict(task, [str(r) for r in roots], split="val", split_csv=split_csv, **options)
    finally:
        task.calibration = previous
    calibration = calibration_of(predictions, task.context)
    regions = SearchRegions(task.context, calibration)
    medians = {}
    for coverage in REPORTED_COVERAGES:
        if calibration.kind == "cells":
            assert calibration.temperature is not None and predictions.probabilities is not None
            calibrated = apply_temperature(predictions.probabilities, calibration.temperature)
            table = regions.table(coverage, probabilities=calibrated)
        else:
            table = regions.table(coverage, latlon=predictions.table[["pred_lat", "pred_lon"]].to_numpy())
        medians[coverage] = float(np.median(table[AREA_COLUMN].to_numpy()))
    return calibration, medians


def write_calibration(path: str | os.PathLike[str], calibration: Calibration) -> Path:
    """Put ``calibration`` into the record of the checkpoint at ``path`` and rewrite the file atomically.

    Everything else in the file (weights, optimiser state, hyper-parameters) stays as it was.
    """
    from geoguess_utils.checkpoints.files import AtomicCheckpointIO, load_checkpoint
    from geoguess_utils.checkpoints.record import CALIBRATION_FIELD, RECORD_KEY, read_record

    data = load_checkpoint(path)
    read_record(data, str(path))
    data[RECORD_KEY][CALIBRATION_FIELD] = calibration.to_dict()
    AtomicCheckpointIO().save_checkpoint(data, path)
    return Path(path)


def calibrate_checkpoint(
    ckpt: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    split_csv: str | os.PathLike[str],
    **options: Any,
) -> tuple[Calibration, dict[float, float]]:
    """Fit the calibration of the checkpoint ``ckpt`` on its run's validation split and store it there.

    Returns:
        What :func:`fit_calibration` returns.
    """
    from geoguess_utils.tasks.loading import load_task

    check_validation_split(split_csv)
    calibration, medians = fit_calibration(load_task(ckpt), roots, split_csv, **options)
    write_calibration(ckpt, calibration)
    return calibration, medians


def describe(calibration: Calibration, medians: dict[float, float]) -> str:
    """One line: what was fitted on how many locations, the calibration error before and after, region sizes."""
    parts = [f"calibrated on {calibration.n} validation locations"]
    stats = calibration.stats
    if calibration.kind == "cells":
        parts.append(
            f"temperature {calibration.temperature:.3g}, ECE {stats['ece_before']:.3f} -> {stats['ece_after']:.3f}, "
            f"NLL {stats['nll_before']:.3f} -> {stats['nll_after']:.3f}"
        )
    sizes = []
    for coverage, area in medians.items():
        radius = "" if calibration.kind == "cells" else f" (radius {calibration.threshold(coverage):,.0f} km)"
        sizes.append(f"{coverage:.0%}: {area:,.0f} km²{radius}")
    parts.append("median search region " + ", ".join(sizes))
    return "; ".join(parts)


def calibrate_after_fit(
    checkpoint: str | os.PathLike[str], roots: Sequence[str], split_csv: Path, **options: Any
) -> bool:
    """Calibrate the checkpoint a fit ended with; say how it went on stderr (one line), never fail the fit.

    Returns:
        Whether the calibration was written.
    """
    try:
        calibration, medians = calibrate_checkpoint(checkpoint, roots, split_csv, **options)
    except GeoguessError as exc:
        print(f"geoguess fit: not calibrated ({exc}); run geoguess calibrate --ckpt {checkpoint}", file=sys.stderr)
        return False
    print(f"geoguess fit: {describe(calibration, medians)}", file=sys.stderr)
    return True
