"""The records of a Mapillary download: sampled points, API answers, data.csv rows and attribution.

The status table (``mapillary_status.csv``) has one row per sampled point; the rows
whose status is ``OK`` become this downloader's rows of ``data.csv`` and of
``ATTRIBUTION.md``. Rows of an existing ``data.csv`` that came from elsewhere are kept
as they are (:func:`foreign_rows`).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import CSV_NAME
from geoguess_utils.datasets.download_driver import read_status_table, row_is_done
from geoguess_utils.errors import DataError

SOURCE_LABEL = "mapillary"
LICENCE = "CC BY-SA 4.0"
STATUS_CSV = "mapillary_status.csv"
ATTRIBUTION_MD = "ATTRIBUTION.md"
_PLAN_STREAM = 0x4D4C59  # "MLY": keeps points and uuids apart from the Street View downloader's for the same seed
_METRES_PER_DEG_LAT = 111_320.0

TERMS_NOTICE = (
    "Mapillary images are licensed CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/): credit the "
    f"creators (see {ATTRIBUTION_MD}) and share images derived from them under the same licence. The data you "
    "download is yours to keep and share on those terms; the project does not bundle it."
)

STATUS_COLUMNS: tuple[str, ...] = (
    "row_idx",
    "sample_latitude",
    "sample_longitude",
    "radius_m",
    "status",
    "image_id",
    "latitude",
    "longitude",
    "compass_angle",
    "uuid",
    "captured_at",
    "creator",
    "attempts",
    "error",
)
"""Columns of ``mapillary_status.csv``."""

DATA_COLUMNS: tuple[str, ...] = (
    "uuid",
    "latitude",
    "longitude",
    "source",
    "image_id",
    "captured_at",
    "creator",
    "licence",
    "compass_angle",
    "sample_latitude",
    "sample_longitude",
)
"""Columns this downloader writes to ``data.csv`` (complete locations only)."""

TEXT_COLUMNS = ("status", "image_id", "uuid", "captured_at", "creator", "error")
# Final statuses are not retried by a later run; all but OK are replaced by another point.
FINAL_STATUSES = frozenset({"OK", "NO_PANORAMA", "DUPLICATE", "OFF_MAINLAND"})


def plan_points(count: int, seed: int, radius_m: float, start: int, taken: set[str]) -> pd.DataFrame:
    """New rows of the status table: uniform points on Croatia's mainland, each with a uuid4.

    Args:
        count: Rows to add.
        seed: Seed of the run; with ``start`` it fixes the points and uuids.
        radius_m: Search radius stored with the rows, metres.
        start: ``row_idx`` of the first new row (the number of rows planned before).
        taken: uuids already used in the root (never handed out again).

    Returns:
        Table with :data:`STATUS_COLUMNS`, status ``PENDING``.
    """
    from geoguess_utils.geo import borders

    rng = np.random.default_rng([int(seed), _PLAN_STREAM, int(start)])
    lat, lon = borders.sample_points(count, rng, variant="mainland")
    names: list[str] = []
    while len(names) < count:
        name = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return pd.DataFrame(
        {
            "row_idx": np.arange(start, start + count),
            "sample_latitude": lat,
            "sample_longitude": lon,
            "radius_m": float(radius_m),
            "status": "PENDING",
            "image_id": "",
            "latitude": np.nan,
            "longitude": np.nan,
            "compass_angle": np.nan,
            "uuid": names,
            "captured_at": "",
            "creator": "",
            "attempts": 0,
            "error": "",
        }
    )[list(STATUS_COLUMNS)]


def empty_status() -> pd.DataFrame:
    """A status table with :data:`STATUS_COLUMNS` and no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in STATUS_COLUMNS})


def read_status(path: Path) -> pd.DataFrame:
    """Read an earlier ``mapillary_status.csv`` (an empty table when there is none).

    Raises:
        DataError: When the file is unreadable, lacks columns, repeats a uuid or holds an unsafe one.
    """
    table = read_status_table(path, STATUS_COLUMNS, TEXT_COLUMNS)
    return empty_status() if table is None else table


def foreign_rows(root: Path, ours: set[str]) -> pd.DataFrame:
    """Rows of an existing ``data.csv`` that this downloader did not write (kept as text)."""
    path = root / CSV_NAME
    if not path.is_file():
        return pd.DataFrame()
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file, refusing to rewrite it: {exc}") from exc
    if "uuid" not in table.columns:
        raise DataError(f"{path} has no uuid column, refusing to rewrite it")
    return table[~table["uuid"].isin(ours)].reset_index(drop=True)


def _iso_time(captured_at: Any) -> str:
    """Mapillary's ``captured_at`` (milliseconds since 1970, UTC) as ISO 8601; '' when absent."""
    try:
        stamp = float(captured_at) / 1000.0
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(stamp):
        return ""
    try:
        return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):  # a time no calendar holds (1e300 ms, year 3 million)
        return ""


def parse_candidate(item: Any) -> dict[str, Any] | None:
    """One usable panorama from an API answer, or ``None`` when a field is missing."""
    if not isinstance(item, dict):
        return None
    geometry = item.get("computed_geometry") or item.get("geometry") or {}
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    compass = item.get("computed_compass_angle")
    if compass is None:
        compass = item.get("compass_angle")
    url = item.get("thumb_2048_url")
    try:
        lon, lat = float(coords[0]), float(coords[1])  # GeoJSON order
        compass = float(compass)
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and math.isfinite(compass)) or not url or not item.get("id"):
        return None
    creator = item.get("creator")
    name = creator.get("username") if isinstance(creator, dict) else creator
    return {
        "image_id": str(item["id"]),
        "latitude": lat,
        "longitude": lon,
        "compass_angle": compass % 360.0,
        "captured_at": _iso_time(item.get("captured_at")),
        "creator": str(name or "unknown"),
        "url": str(url),
    }


def bbox_around(lat: float, lon: float, radius_m: float) -> str:
    """``min_lon,min_lat,max_lon,max_lat`` of the square of half side ``radius_m`` around a point."""
    dlat = radius_m / _METRES_PER_DEG_LAT
    dlon = radius_m / (_METRES_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-6))
    return f"{lon - dlon:.6f},{lat - dlat:.6f},{lon + dlon:.6f},{lat + dlat:.6f}"


def attribution_text(done: pd.DataFrame) -> str:
    """ATTRIBUTION.md: the licence and, per location, its creator and Mapillary image id."""
    lines = [
        "# Attribution",
        "",
        f"The images under this folder's image directory were cut from 360° photos published on Mapillary under "
        f"the {LICENCE} licence (https://creativecommons.org/licenses/by-sa/4.0/). Each location's four views "
        "are derived from the photo listed below, by its creator; they were reprojected to perspective views and "
        "resized. Share them, and anything made from them, under the same licence, and keep this credit.",
        "",
        "| location uuid | Mapillary image | creator | captured (UTC) |",
        "|---|---|---|---|",
    ]
    for row in done.sort_values("row_idx").itertuples():
        creator = str(row.creator).replace("|", "\\|")
        link = f"[{row.image_id}](https://www.mapillary.com/app/?pKey={row.image_id})"
        lines.append(f"| {row.uuid} | {link} | {creator} | {row.captured_at} |")
    return "\n".join(lines) + "\n"


def is_done(row: pd.Series, images: Path) -> bool:
    """Whether a status row needs no more work: a final status, and for OK its four views on disk."""
    return row_is_done(row, images, FINAL_STATUSES)
