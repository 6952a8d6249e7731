"""``geoguess evaluate``: score a predictions CSV against the true locations.

Prints one JSON line: ``mean_km``, ``median_km``, ``acc_1_km``, ``acc_25_km``,
``acc_200_km``, ``acc_750_km`` (shares in [0, 1]), ``count`` and what a model that
ignores the photos would score: ``baseline_best_constant_km`` (the best single point
for these locations) and, given the training locations (``--train``, optionally
filtered by ``--split-csv``, or a run's), ``baseline_mean_km`` (always the training
mean). With ``--ckpt`` it also says on stderr what the checkpoint was trained on. It
reads CSVs only and never imports torch (unless ``--ckpt`` is given).

The truth is one or more dataset roots (or CSVs). ``--run RUN`` takes the truth from the
roots a training run used (its ``config.yaml``) and its ``split.csv``; ``--split test``
then scores that split's locations only, and predictions of other locations of the
roots are left out (one line on stderr says how many). The predictions must cover every
uuid scored, each once, and name no uuid that is not in the truth, with latitudes in
[-90, 90] and longitudes in [-180, 180]. When most points of a file lie outside Croatia
(latitude and longitude exchanged, another country's file), a warning says so on stderr.

When the predictions carry search regions (``geoguess predict --region 0.9``), the line adds
``region_nominal_coverage``, ``region_empirical_coverage`` (the share of scored locations whose
region holds the truth) and ``region_median_km2``. Regions of cells need the checkpoint, to
place each true point in its cell: ``--ckpt``, or the run's best checkpoint with ``--run``.

Examples::

    geoguess evaluate predictions.csv --truth data/synthetic
    geoguess evaluate predictions.csv --truth /data/lumen_train /data/external_set
    geoguess evaluate predictions.csv --run runs/quick_cpu/version_0 --split test
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_EXAMPLES = 10
_OUTSIDE_TOLERANCE_KM = 50.0
_SPLITS = ("train", "val", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("predictions", type=Path, help="CSV with uuid,latitude,longitude (from geoguess predict)")
    parser.add_argument(
        "--truth",
        nargs="+",
        type=Path,
        metavar="ROOT",
        help="dataset root(s) holding data.csv, or CSVs with uuid,latitude,longitude (default with --run: the "
        "roots the run was trained on)",
    )
    parser.add_argument(
        "--run",
        type=Path,
        help="a training run (its folder, or a checkpoint in it): the truth is its roots (from config.yaml), "
        "--split picks rows of its split.csv, and its training rows give baseline_mean_km",
    )
    parser.add_argument(
        "--split",
        choices=_SPLITS,
        help="score only this split of the run (the uuids its split.csv puts there); needs --run or --split-csv",
    )
    parser.add_argument(
        "--train",
        nargs="+",
        type=Path,
        metavar="ROOT",
        help="the training locations (dataset roots or CSVs with uuid,latitude,longitude): adds baseline_mean_km",
    )
    parser.add_argument(
        "--split-csv",
        type=Path,
        help="the run's split.csv (default with --run: the run's): only its 'train' rows of --train count as "
        "training locations, and --split picks its rows",
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


def _csv_of(path: Path) -> Path:
    """The ``data.csv`` of a dataset root, or the CSV itself."""
    from geoguess_utils.data import layout

    return path / layout.CSV_NAME if path.is_dir() else path


def _read_many(paths: Sequence[Path], what: str) -> pd.DataFrame:
    """The rows of several CSVs (see :func:`_read_points`), with a ``file`` column; a uuid may appear in one only."""
    import pandas as pd

    from geoguess_utils.errors import DataError

    tables = []
    for path in paths:
        table = _read_points(path, what)
        table["file"] = str(path)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    repeated = table.loc[table["uuid"].duplicated(), "uuid"].unique().tolist()
    if repeated:
        files = ", ".join(table.loc[table["uuid"] == repeated[0], "file"])
        raise DataError(
            f"{len(repeated)} uuid(s) are in more than one {what} ({repeated[0]!r} is in {files}): "
            f"{_examples(repeated)}"
        )
    return table


def _split_uuids(split_csv: Path, split: str) -> tuple[set[str], set[str]]:
    """The uuids ``split_csv`` puts in ``split``, and every uuid it lists."""
    from geoguess_utils.data.splits import load_split
    from geoguess_utils.errors import DataError

    table = load_split(split_csv)
    uuids = set(table.loc[table["split"] == split, "uuid"])
    if not uuids:
        raise DataError(f"split file {split_csv} has no {split} rows")
    return uuids, set(table["uuid"])


def _train_points(train: Sequence[Path], split_csv: Path | None):  # noqa: ANN202 - (M, 2) array
    """``[lat, lon]`` degrees, shape (M, 2), of the training locations (the ``train`` rows of ``split_csv``)."""
    from geoguess_utils.errors import DataError

    csvs = [_csv_of(path) for path in train]
    named = ", ".join(map(str, csvs))
    table = _read_many(csvs, "training file")
    if split_csv is not None:
        table = table[table["uuid"].isin(_split_uuids(split_csv, "train")[0])]
        if table.empty:
            raise DataError(f"no uuid of {named} is in the train split of {split_csv}")
    if table.empty:
        raise DataError(f"{named} lists no locations")
    return table[["latitude", "longitude"]].to_numpy(dtype=float)


def _as_paths(paths: Path | Sequence[Path] | None) -> list[Path]:
    if paths is None:
        return []
    return [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]


def evaluate(
    predictions: Path,
    truth: Path | Sequence[Path],
    train: Path | Sequence[Path] | None = None,
    split_csv: Path | None = None,
    split: str | None = None,
    ckpt: Path | None = None,
) -> dict[str, float]:
    """Compare predictions with the truth and return the summary (see :func:`geoguess_utils.evaluation.summarise_km`).

    Args:
        predictions: CSV of ``uuid,latitude,longitude`` (degrees).
        truth: Dataset root(s) holding ``data.csv``, or such CSVs; a uuid may be in one only.
        train: Training locations (roots or CSVs) for ``baseline_mean_km``; ``None`` leaves it out.
        split_csv: A run's ``split.csv``: with ``train``, only its ``train`` rows count as
            training locations; with ``split``, only its ``split`` rows are scored.
        split: ``"train"``, ``"val"`` or ``"test"``: score the truth's locations that
            ``split_csv`` puts there, and leave out predictions of the other locations of
            the truth or the split file (one line on stderr says how many); ``None``
            scores every location.
        ckpt: The checkpoint that made the predictions; needed to score regions of cells.

    Returns:
        The summary plus ``baseline_best_constant_km``, (with ``train``) ``baseline_mean_km`` and
        (when the predictions carry regions) the ``region_*`` entries of :func:`region_summary`.

    Raises:
        ConfigError: ``split_csv`` without ``train`` or ``split``, or ``split`` without ``split_csv``.
        DataError: Unreadable files, missing coordinates, duplicated uuids, uuids that
            do not match, or split uuids that are in no truth file (the message names them).
    """
    from geoguess_utils.errors import ConfigError, DataError
    from geoguess_utils.evaluation import baselines, summarise_km
    from geoguess_utils.geo import distance

    truth_csvs = [_csv_of(path) for path in _as_paths(truth)]
    train_paths = _as_paths(train)
    if not truth_csvs:
        raise ConfigError("no truth: give dataset roots or CSVs with uuid,latitude,longitude")
    if split is not None and split not in _SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(_SPLITS)}")
    if split is not None and split_csv is None:
        raise ConfigError(f"--split {split} picks rows of a run's split.csv; give --run RUN (or --split-csv)")
    if split_csv is not None and not train_paths and split is None:
        raise ConfigError("--split-csv picks the training rows of --train, or the rows of --split; give one of them")
    named = ", ".join(map(str, truth_csvs))
    train_latlon = _train_points(train_paths, split_csv) if train_paths else None
    pred = _read_points(predictions, "predictions file")
    true = _read_many(truth_csvs, "truth file")
    for csv in truth_csvs:
        _warn_outside_croatia(true[true["file"] == str(csv)], csv, "truth file")
    target = named
    known = set(true["uuid"])
    if split is not None:
        assert split_csv is not None
        wanted, listed = _split_uuids(split_csv, split)
        known |= listed
        absent = sorted(wanted - set(true["uuid"]))
        if absent:
            raise DataError(
                f"split file {split_csv} puts {len(absent)} uuid(s) in the {split} split that are in no truth file "
                f"({named}): {_examples(absent)}; give every root the run was trained on"
            )
        true = true[true["uuid"].isin(wanted)]
        target = f"the {split} split of {split_csv}"
    missing = sorted(set(true["uuid"]) - set(pred["uuid"]))
    extra = sorted(set(pred["uuid"]) - known)  # with a split, predictions of other known uuids are left out
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} uuid(s) of {target} have no prediction: {_examples(missing)}")
        if extra:
            where = f"the truth ({named})" if split is None else f"the truth ({named}) nor in {split_csv}"
            parts.append(f"{len(extra)} predicted uuid(s) are not in {where}: {_examples(extra)}")
        if {u.strip() for u in missing} & {u.strip() for u in extra}:
            parts.append("some differ only in spaces around the uuid")
        raise DataError(f"{predictions} does not match {target}: " + "; ".join(parts))
    if true.empty:
        raise DataError(f"{named} lists no locations")
    if split is not None:
        left_out = int((~pred["uuid"].isin(true["uuid"])).sum())
        print(
            f"geoguess evaluate: scoring the {len(true)} locations of {target}; left out the {left_out} rows of "
            f"{predictions} for other locations",
            file=sys.stderr,
        )
        pred = pred[pred["uuid"].isin(true["uuid"])]
    _warn_outside_croatia(pred, predictions, "predictions file")
    merged = true.merge(pred, on="uuid", suffixes=("_true", "_pred"))
    km = distance.haversine_km(
        merged["latitude_pred"].to_numpy(),
        merged["longitude_pred"].to_numpy(),
        merged["latitude_true"].to_numpy(),
        merged["longitude_true"].to_numpy(),
    )
    eval_latlon = merged[["latitude_true", "longitude_true"]].to_numpy(dtype=float)
    return {**summarise_km(km), **baselines(train_latlon, eval_latlon), **region_summary(predictions, merged, ckpt)}


def region_summary(predictions: Path, merged: pd.DataFrame, ckpt: Path | None) -> dict[str, float]:
    """How often the predictions' search regions hold the truth, when the file has region columns.

    Args:
        predictions: The predictions CSV (``geoguess predict --region``).
        merged: The scored rows: ``uuid``, ``latitude_true``, ``longitude_true``,
            ``latitude_pred``, ``longitude_pred`` (degrees).
        ckpt: The checkpoint that made them (regions of cells need its GeoContext).

    Returns:
        ``{}`` without region columns, else ``region_nominal_coverage`` (the mean of the
        file's ``region_coverage``), ``region_empirical_coverage`` (share in [0, 1]) and
        ``region_median_km2``.

    Raises:
        ConfigError: Regions of cells without a checkpoint.
    """
    import numpy as np
    import pandas as pd

    from geoguess_utils.errors import ConfigError, DataError
    from geoguess_utils.tasks import regions

    if regions.COVERAGE_COLUMN not in pd.read_csv(predictions, nrows=0).columns:
        return {}
    table = pd.read_csv(predictions, dtype={"uuid": str, regions.CELLS_COLUMN: str}, keep_default_na=False)
    if regions.CELLS_COLUMN not in table.columns and regions.RADIUS_COLUMN not in table.columns:
        raise DataError(f"{predictions} has {regions.COVERAGE_COLUMN} but neither region_cells nor region_radius_km")
    table = merged[["uuid", "latitude_true", "longitude_true", "latitude_pred", "longitude_pred"]].merge(
        table.drop(columns=["latitude", "longitude"], errors="ignore"), on="uuid"
    )
    names = {"latitude_true": "true_lat", "longitude_true": "true_lon", "latitude_pred": "pred_lat"}
    table = table.rename(columns={**names, "longitude_pred": "pred_lon"})
    context = None
    if regions.CELLS_COLUMN in table.columns:
        if ckpt is None:
            raise ConfigError(
                f"{predictions} holds regions of cells: give --ckpt CKPT (or --run RUN) so that each true point can "
                "be placed in its cell"
            )
        context = _checkpoint_context(ckpt)
    hit = regions.covered(table, context)
    area = pd.to_numeric(table[regions.AREA_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    nominal = pd.to_numeric(table[regions.COVERAGE_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
    return {
        "region_nominal_coverage": float(np.mean(nominal)),
        "region_empirical_coverage": float(np.mean(hit)),
        "region_median_km2": float(np.median(area)),
    }


def _checkpoint_context(ckpt: Path):  # noqa: ANN202 - GeoContext
    """The GeoContext stored in a checkpoint's record (no network is built)."""
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.checkpoints.record import read_record

    return GeoContext.from_dict(read_record(load_checkpoint(ckpt, mmap=True), str(ckpt))["context"])


def _describe_checkpoint(ckpt: Path, truth: Sequence[Path]) -> None:
    """Say on stderr what ``ckpt`` was trained on, and warn when synthetic training meets real data."""
    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.checkpoints.record import (
        TRAINING_DATA_FIELD,
        describe_training_data,
        read_record,
        synthetic_model_warning,
    )
    from geoguess_utils.data import layout

    record = read_record(load_checkpoint(ckpt, mmap=True), str(ckpt))
    info = record.get(TRAINING_DATA_FIELD)
    print(f"geoguess evaluate: {ckpt}: {describe_training_data(info)}", file=sys.stderr)
    roots = [p if p.is_dir() else p.parent for p in truth if p.is_dir() or p.name == layout.CSV_NAME]
    warning = synthetic_model_warning(info, roots) if roots else None
    if warning:
        print(f"geoguess evaluate: {warning}", file=sys.stderr)


def _run_context(args: argparse.Namespace) -> tuple[list[Path], list[Path], Path | None]:
    """The truth, the training locations and the split file: as given, else from ``--run``.

    With ``--run``, the truth defaults to the run's roots, the split file to its
    ``split.csv`` and the training locations to the run's roots (their ``train`` rows
    then give ``baseline_mean_km``; left out when ``--truth`` is given and the run's
    roots cannot be found).
    """
    from geoguess_utils.errors import ConfigError
    from geoguess_utils.training.run_files import run_files_of

    truth, train, split_csv = list(args.truth or []), list(args.train or []), args.split_csv
    if args.run is None:
        if not truth:
            raise ConfigError("give the truth with --truth ROOT [ROOT ...], or a training run with --run RUN")
        return truth, train, split_csv
    run = run_files_of(args.run)
    try:
        run_roots = run.data_roots()
    except ConfigError as exc:
        if not truth:
            raise ConfigError(f"{exc}; give the truth with --truth ROOT [ROOT ...]") from None
        run_roots = []
    train = train or run_roots
    if split_csv is None and (train or args.split is not None):
        split_csv = run.split_csv
        if not split_csv.is_file():
            raise ConfigError(f"{split_csv} does not exist: the run folder {run.run_dir} has no split file")
    return truth or run_roots, train, split_csv


def run(args: argparse.Namespace) -> int:
    """Print the summary as one JSON line."""
    import json

    truth, train, split_csv = _run_context(args)
    ckpt = args.ckpt
    if ckpt is None and args.run is not None:
        from geoguess_utils.training.run_files import run_files_of

        ckpt = run_files_of(args.run).checkpoint
    summary = evaluate(args.predictions, truth, train or None, split_csv, args.split, ckpt)
    if args.ckpt is not None:
        _describe_checkpoint(args.ckpt, truth)
    print(json.dumps(summary))
    return 0
