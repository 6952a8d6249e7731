"""``geoguess evaluate``: score a predictions CSV against the true locations.

Prints one JSON line: ``mean_km``, ``median_km``, ``acc_1_km``, ``acc_25_km``,
``acc_200_km``, ``acc_750_km`` (shares in [0, 1]) and ``count``. The predictions must
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


def evaluate(predictions: Path, truth: Path) -> dict[str, float]:
    """Compare predictions with the truth and return the summary (see :func:`geoguess_utils.evaluation.summarise_km`).

    Raises:
        DataError: Unreadable files, missing coordinates, duplicated uuids, or uuids that
            do not match (the message names them).
    """
    from geoguess_utils.data import layout
    from geoguess_utils.errors import DataError
    from geoguess_utils.evaluation import summarise_km
    from geoguess_utils.geo import distance

    truth_csv = truth / layout.CSV_NAME if truth.is_dir() else truth
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
    return summarise_km(km)


def run(args: argparse.Namespace) -> int:
    """Print the summary as one JSON line."""
    import json

    print(json.dumps(evaluate(args.predictions, args.truth)))
    return 0
