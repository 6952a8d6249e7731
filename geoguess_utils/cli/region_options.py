"""``geoguess predict --region C [--region-geojson PATH]``: search regions next to the predicted points.

A region holds the true location with probability ``C`` (split conformal, fitted on the run's
validation split by ``geoguess calibrate`` or at the end of ``geoguess fit``). Classifiers: the
fewest most probable cells whose calibrated mass reaches the validation threshold; other
models: a disc around the point. Columns added to the CSV: ``region_coverage``, ``region_km2``
and ``region_cells`` (cell ids, most probable first) or ``region_radius_km``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from geoguess_utils.evaluation import Predictions
    from geoguess_utils.tasks.regions import SearchRegions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--region`` and ``--region-geojson``."""
    parser.add_argument(
        "--region",
        type=float,
        metavar="C",
        help="add each location's search region of nominal coverage C in (0, 1), e.g. 0.9: region_coverage, "
        "region_km2 and region_cells (classifiers) or region_radius_km (needs a calibrated checkpoint)",
    )
    parser.add_argument(
        "--region-geojson",
        type=Path,
        metavar="PATH",
        help="also write the regions as a GeoJSON FeatureCollection, one feature per location (lon/lat; "
        "coverage 0.9 unless --region says otherwise)",
    )


def search_regions(args: argparse.Namespace) -> SearchRegions | None:
    """The checkpoint's regions when ``--region`` or ``--region-geojson`` asks for them, else ``None``.

    Reads the checkpoint's record only, so an uncalibrated checkpoint is refused before
    anything is predicted.

    Raises:
        CheckpointError: The checkpoint has no calibration (one line: run ``geoguess calibrate``).
        ConfigError: A coverage outside (0, 1), or ``--region-geojson`` naming the ``--out`` file.
    """
    if args.region is None and args.region_geojson is None:
        return None
    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.checkpoints.record import read_record
    from geoguess_utils.errors import ConfigError
    from geoguess_utils.tasks.calibration import DEFAULT_COVERAGE, check_coverage
    from geoguess_utils.tasks.regions import SearchRegions

    if args.region is None:
        args.region = DEFAULT_COVERAGE
    check_coverage(args.region)
    same = args.out is not None and os.path.realpath(args.region_geojson or "") == os.path.realpath(args.out)
    if args.region_geojson is not None and same:
        raise ConfigError(f"--region-geojson {args.region_geojson} is the --out file; give another path")
    record = read_record(load_checkpoint(args.ckpt, mmap=True), str(args.ckpt))
    return SearchRegions.of_checkpoint(str(args.ckpt), record)


def add_regions(
    table: pd.DataFrame, predictions: Predictions, regions: SearchRegions | None, args: argparse.Namespace
) -> pd.DataFrame:
    """The submission table with the region columns, and the GeoJSON written when asked for.

    Args:
        table: The submission table (one row per location, in the predictions' order).
        predictions: The predictions (their reported probabilities, or their points).
        regions: From :func:`search_regions`; ``None`` returns ``table`` unchanged.
        args: The command's options (``--region``, ``--region-geojson``).
    """
    if regions is None:
        return table
    import pandas as pd

    latlon = predictions.table[["pred_lat", "pred_lon"]].to_numpy()
    if regions.kind == "cells":
        if predictions.probabilities is None:
            from geoguess_utils.errors import CheckpointError

            raise CheckpointError(f"{args.ckpt} has a cell calibration but its model gives no cell probabilities")
        columns = regions.table(args.region, probabilities=predictions.probabilities)
    else:
        columns = regions.table(args.region, latlon=latlon)
    if args.region_geojson is not None:
        write_geojson(args.region_geojson, regions.features(columns, latlon=latlon, uuids=list(table["uuid"])))
    return pd.concat([table.reset_index(drop=True), columns], axis=1)


def write_geojson(path: Path, features: list[dict]) -> None:
    """Write search regions (GeoJSON Features, lon/lat) as one FeatureCollection, atomically."""
    import json

    from geoguess_utils.geo.regions import feature_collection
    from geoguess_utils.io import atomic_write_text

    atomic_write_text(path, json.dumps(feature_collection(features), allow_nan=False))
