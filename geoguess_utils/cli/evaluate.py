"""``geoguess evaluate``: score a predictions CSV against the true locations.

Prints one JSON line: ``mean_km``, ``median_km``, ``acc_1_km``, ``acc_25_km``,
``acc_200_km``, ``acc_750_km`` (shares in [0, 1]), ``count`` and what a model that
ignores the photos would score: ``baseline_best_constant_km`` (the best single point
for these locations) and, given the training locations (``--train``, optionally
filtered by ``--split-csv``), ``baseline_mean_km`` (always the training mean). With
``--ckpt`` it also says on stderr what the checkpoint was trained on. It reads CSVs
only and never imports torch (unless ``--ckpt`` is given). The predictions must
cover exactly the uuids of the truth, each once, with latitudes in [-90, 90] and
longitudes in [-180, 180]. When most points of a file lie outside Croatia (latitude and
longitude exchanged, another country's file), a warning says so on stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path

_EXAMPLES = 10
_OUTSIDE_TOLERANCE_KM = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("predictions", type=Path, help="CSV with uuid,latitude,longitude (from geoguess predict)")
    parser.add_argument(
        "--truth", required=True, type=Path, help="dataset root holding data.csv, or a CSV with uuid,latitude,longitude"
    )
    parser.add_argument(
        "--train",
        type=Path,
        help="the training locations (dataset root or CSV with uuid,latitude,longitude): adds baseline_mean_km",
    )
    parser.add_argument(
        "--split-csv",
        type=Path,
        help="the run's split.csv: with --train, only its 'train' rows count as training locations",
    )
    parser.add_argument(
        "--ckpt", type=Path, help="the checkpoint that made the predictions: say what it was trained on"
    )


def _examples(values: list[str]) -> str:
    shown = ", ".join(repr(v) for v in sorted(values)[:_EXAMPLES])  # quoted: ' a1' and 'a1' look different
    return shown + (f" and {len(values) - _EXAMPLES} more" if len(values) > _EXAMPLES else "")


def _read_points(path: Path, what: str):  # noqa: ANN202 - pandas DataFrame
    import numpy as np

    from geoguess_utils.data import reader
    from geoguess_utils.errors import DataError

    table = reader.read_data_csv(path)
    bad = table[~(np.isfinite(table["latitude"]) & np.isfinite(table["longitude"]))]
    if len(bad):
        rows = "; ".join(
            f"line {r.line} uuid {r.uuid} ({r.latitude_text!r}, {r.longitude_text!r})"
            for r in bad.head(_EXAMPLES).itertuples()
        )
        raise DataError(f"{what} {path} has rows without numeric latitude/longitude: {rows}")
    impossible = table[(table["latitude"].abs() > 90) | (table["longitude"].abs() > 180)]
    if len(impossible):
        rows = "; ".join(
            f"line {r.line} uuid {r.uuid!r} (latitude {r.latitude_text}, longitude {r.longitude_text})"
            for r in impossible.head(_EXAMPLES).itertuples()
        )
        more = f" and {len(impossible) - _EXAMPLES} more" if len(impossible) > _EXAMPLES else ""
        raise DataError(
            f"{what} {path} has coordinates that cannot exist (latitude must be in [-90, 90], longitude in "
            f"[-180, 180], degrees): {rows}{more}"
        )
    duplicated = table.loc[table["uuid"].duplicated(), "uuid"].unique().tolist()
    if duplicated:
        raise DataError(f"{what} {path} lists these uuids more than once: {_examples(duplicated)}")
    return table


def _warn_outside_croatia(table, path: Path, what: str) -> None:  # noqa: ANN001 - pandas DataFrame
    """Warn on stderr when most points lie outside Croatia, and say when swapping the columns fixes them."""
    import sys

    from geoguess_utils.geo import borders

    if table.empty:
        return
    lat, lon = table["latitude"].to_numpy(), table["longitude"].to_numpy()
    outside = ~borders.is_on_land(lat, lon, "full", tolerance_km=_OUTSIDE_TOLERANCE_KM)
    if outside.mean() <= 0.5:
        return
    swapped = borders.is_on_land(lon[outside], lat[outside], "full", tolerance_km=_OUTSIDE_TOLERANCE_KM)
    hint = (
        "; with latitude and longitude exchanged they would be in Croatia: the columns look swapped"
        if swapped.mean() > 0.5
        else ""
    )
    print(
        f"geoguess evaluate: warning: {int(outside.sum())} of {len(table)} points of the {what} {path} lie more "
        f"than {_OUTSIDE_TOLERANCE_KM:g} km from Croatia{hint}",
        file=sys.stderr,
    )


def _train_points(train: Path, split_csv: Path | None):  # noqa: ANN202 - (M, 2) array
    """``[lat, lon]`` degrees, shape (M, 2), of the training locations (the ``train`` rows of ``split_csv``)."""
    from geoguess_utils.data import layout
    from geoguess_utils.data.splits import load_split
    from geoguess_utils.errors import DataError

    train_csv = train / layout.CSV_NAME if train.is_dir() else train
    table = _read_points(train_csv, "training file")
    if split_csv is not None:
        split = load_split(split_csv)
        table = table[table["uuid"].isin(split.loc[split["split"] == "train", "uuid"])]
        if table.empty:
            raise DataError(f"no uuid of {train_csv} is in the train split of {split_csv}")
    if table.empty:
        raise DataError(f"{train_csv} lists no locations")
    return table[["latitude", "longitude"]].to_numpy(dtype=float)


def evaluate(
    predictions: Path, truth: Path, train: Path | None = None, split_csv: Path | None = None
) -> dict[str, float]:
    """Compare predictions with the truth and return the summary (see :func:`geoguess_utils.evaluation.summarise_km`).

    Args:
        predictions: CSV of ``uuid,latitude,longitude`` (degrees).
        truth: Dataset root holding ``data.csv``, or such a CSV.
        train: Training locations (root or CSV) for ``baseline_mean_km``; ``None`` leaves it out.
        split_csv: With ``train``, keep only the uuids this split file puts in ``train``.

    Returns:
        The summary plus ``baseline_best_constant_km`` and (with ``train``) ``baseline_mean_km``.

    Raises:
        DataError: Unreadable files, missing coordinates, duplicated uuids, or uuids that
            do not match (the message names them).
    """
    from geoguess_utils.data import layout
    from geoguess_utils.errors import DataError
    from geoguess_utils.evaluation import baselines, summarise_km
    from geoguess_utils.geo import distance

    if split_csv is not None and train is None:
        raise DataError("--split-csv picks the training rows of --train; give --train too")
    truth_csv = truth / layout.CSV_NAME if truth.is_dir() else truth
    train_latlon = None if train is None else _train_points(train, split_csv)
    pred = _read_points(predictions, "predictions file")
    true = _read_points(truth_csv, "truth file")
    missing = sorted(set(true["uuid"]) - set(pred["uuid"]))
    extra = sorted(set(pred["uuid"]) - set(true["uuid"]))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} uuid(s) of the truth have no prediction: {_examples(missing)}")
        if extra:
            parts.append(f"{len(extra)} predicted uuid(s) are not in the truth: {_examples(extra)}")
        if {u.strip() for u in missing} & {u.strip() for u in extra}:
            parts.append("some differ only in spaces around the uuid")
        raise DataError(f"{predictions} does not match {truth_csv}: " + "; ".join(parts))
    if true.empty:
        raise DataError(f"{truth_csv} lists no locations")
    _warn_outside_croatia(true, truth_csv, "truth file")
    _warn_outside_croatia(pred, predictions, "predictions file")
    merged = true.merge(pred, on="uuid", suffixes=("_true", "_pred"))
    km = distance.haversine_km(
        merged["latitude_pred"].to_numpy(),
        merged["longitude_pred"].to_numpy(),
        merged["latitude_true"].to_numpy(),
        merged["longitude_true"].to_numpy(),
    )
    eval_latlon = merged[["latitude_true", "longitude_true"]].to_numpy(dtype=float)
    return {**summarise_km(km), **baselines(train_latlon, eval_latlon)}


def _describe_checkpoint(ckpt: Path, truth: Path) -> None:
    """Say on stderr what ``ckpt`` was trained on, and warn when synthetic training meets real data."""
    import sys

    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.checkpoints.record import (
        TRAINING_DATA_FIELD,
        describe_training_data,
        read_record,
        synthetic_model_warning,
    )

    record = read_record(load_checkpoint(ckpt, mmap=True), str(ckpt))
    info = record.get(TRAINING_DATA_FIELD)
    print(f"geoguess evaluate: {ckpt}: {describe_training_data(info)}", file=sys.stderr)
    from geoguess_utils.data import layout

    root = truth if truth.is_dir() else truth.parent if truth.name == layout.CSV_NAME else None
    warning = None if root is None else synthetic_model_warning(info, [root])
    if warning:
        print(f"geoguess evaluate: {warning}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """Print the summary as one JSON line."""
    import json

    summary = evaluate(args.predictions, args.truth, args.train, args.split_csv)
    if args.ckpt is not None:
        _describe_checkpoint(args.ckpt, args.truth)
    print(json.dumps(summary))
    return 0
