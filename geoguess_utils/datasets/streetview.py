"""Collect a real dataset from Google Street View with the user's own API key.

This is optional: the project runs on its synthetic sample without it. The team
behind the original system doubled their training set this way. Street View images
belong to Google; the user brings their own key and accepts Google's terms, and the
project never bundles or redistributes the pictures.

For every sampled point on Croatia's mainland the downloader asks the Street View
metadata endpoint for the nearest outdoor panorama within a radius, then fetches the
four views (headings 0/90/180/270, 640x640, field of view 90) from the Static API.
Requests run concurrently (bounded) under a rate limit, and retry with exponential
backoff on HTTP 429, 5xx, dropped connections and truncated bodies.

Output, in the LUMEN layout (see DATA_FORMAT.md)::

    DIR/data.csv                    complete locations: uuid, latitude, longitude, ...
    DIR/images/<uuid>/{0,90,180,270}.jpg
    DIR/streetview_status.csv       every sampled point and what happened to it

A location's folder appears in ``images/`` only once its four JPEGs are on disk (each
file is written atomically into a staging folder, then the folder is renamed into
place), so an interrupted run never leaves a partial JPEG or folder behind. Running the
same command again resumes: finished points are skipped.

An existing dataset root can be extended: rows of its ``data.csv`` that the downloader
did not write (no entry in ``streetview_status.csv``) are kept as they are and the new
locations are appended after them. A root that keeps its images in ``data/`` is
refused, since the new ones would go to ``images/`` and the root would have two image
folders. Each downloaded view passes the reader's checks (it decodes, and has at most
:data:`~geoguess_utils.data.reader.DEFAULT_MAX_PIXELS` pixels) and is at least the
640x640 pixels asked for (a tiny placeholder image fails its point) before it counts.

The API key never reaches the disk or the screen: it is removed, with any ``key=``
query parameter, from every message, status row and progress line (servers echo the
request URL in their error messages).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import CSV_NAME, HEADINGS
from geoguess_utils.datasets.download_driver import (
    DownloadRun,
    DownloadSource,
    Progress,
    download,
    looks_like_jpeg,
    read_status_table,
    run_download,
)
from geoguess_utils.datasets.download_driver import redact as redact
from geoguess_utils.datasets.http_retry import (
    MAX_RETRY_AFTER_S,
    RETRY_HTTP,
    RetryableError,
    RowError,
    read_capped,
    retry_after_s,
)
from geoguess_utils.datasets.streetview_checks import check_view, kept_rows
from geoguess_utils.errors import ConfigError, DataError, GeoguessError
from geoguess_utils.io import atomic_write_bytes, atomic_write_csv

DEFAULT_BASE_URL = "https://maps.googleapis.com/maps/api/streetview"
"""Street View Static API; the metadata endpoint is ``<base>/metadata``."""

IMAGE_SIZE_PX = 640
FIELD_OF_VIEW_DEG = 90
SOURCE_LABEL = "streetview"
STATUS_CSV = "streetview_status.csv"
STAGING_DIRNAME = ".partial"

TERMS_NOTICE = (
    "Street View images belong to Google. This downloader uses YOUR OWN Google Maps Platform API key: "
    "you pay for its requests and you accept Google's terms (https://cloud.google.com/maps-platform/terms), "
    "including what they allow you to do with the images. The project never bundles or shares them."
)

STATUS_COLUMNS: tuple[str, ...] = (
    "row_idx",
    "sample_latitude",
    "sample_longitude",
    "radius",
    "status",
    "panorama_id",
    "latitude",
    "longitude",
    "uuid",
    "date",
    "copyright",
    "attempts",
    "error",
)
"""Columns of ``streetview_status.csv``."""

TEXT_COLUMNS: tuple[str, ...] = ("status", "panorama_id", "uuid", "date", "copyright", "error")
"""Columns of ``streetview_status.csv`` read as text."""

DATA_COLUMNS: tuple[str, ...] = (
    "uuid",
    "latitude",
    "longitude",
    "panorama_id",
    "sample_latitude",
    "sample_longitude",
    "date",
    "copyright",
    "source",
)
"""Columns of ``data.csv`` (complete locations only)."""

# Final states are not retried when the command runs again.
FINAL_STATUSES = frozenset({"OK", "ZERO_RESULTS", "NOT_FOUND", "DUPLICATE", "OFF_MAINLAND"})
_RETRY_API = frozenset({"OVER_QUERY_LIMIT", "UNKNOWN_ERROR"})

MAX_METADATA_BYTES = 1_000_000
"""Largest metadata answer read, bytes (a real one is a few hundred)."""


class StreetViewError(GeoguessError):
    """The download cannot go on (bad key, no network, quota refused)."""


@dataclass(frozen=True)
class DownloadSettings:
    """Everything one download run needs.

    Attributes:
        key: The user's Google Maps Platform API key (never written to disk).
        n_locations: Number of points to sample on Croatia's mainland.
        out_dir: Dataset root to write (or resume).
        seed: Seed of the sampled points and uuids.
        radius_m: Search radius for the nearest panorama, metres.
        concurrency: Locations downloaded at the same time.
        rate_per_s: Most requests started per second, all endpoints together.
        max_retries: Retries per request after the first attempt.
        backoff_s: First retry delay; doubles on every retry (with jitter), capped at 60 s.
        max_image_bytes: Largest view download, bytes (a 640 px view is about 100 KB); a larger
            or endless body fails its location without being held in memory.
        max_retry_after_s: Longest ``Retry-After`` obeyed, seconds; a server asking for more
            fails the row at once (retried on the next run) instead of putting the run to sleep.
        timeout_s: Total time allowed for one request, seconds.
        base_url: Street View Static API address (a local mock in tests).
        save_every: Rewrite the CSV files after this many finished points.
    """

    key: str
    n_locations: int
    out_dir: Path
    seed: int = 0
    radius_m: int = 1000
    concurrency: int = 8
    rate_per_s: float = 20.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_image_bytes: int = 5_000_000
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    timeout_s: float = 30.0
    base_url: str = DEFAULT_BASE_URL
    save_every: int = 25

    def check(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        if not self.key or not self.key.strip():
            raise ConfigError("a Street View API key is needed (--key or the GEOGUESS_STREETVIEW_KEY variable)")
        if self.n_locations < 1:
            raise ConfigError(f"--locations must be at least 1, got {self.n_locations}")
        if self.radius_m < 1:
            raise ConfigError(f"--radius must be at least 1 metre, got {self.radius_m}")
        if self.max_image_bytes < 1:
            raise ConfigError(f"max_image_bytes must be at least 1, got {self.max_image_bytes}")
        if self.concurrency < 1 or self.rate_per_s <= 0 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError("concurrency and rate must be positive, retries non-negative, timeout positive")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ConfigError(f"the base URL must start with http:// or https://, got {self.base_url!r}")


def plan_samples(n_locations: int, seed: int, radius_m: int, existing: pd.DataFrame | None = None) -> pd.DataFrame:
    """The table of points to visit, extending an earlier plan when there is one.

    Points are uniform on Croatia's mainland; each gets a uuid4 from the same seeded
    generator, so the same seed gives the same plan. When ``existing`` has fewer rows
    than asked, new rows are drawn from a generator seeded with the seed and the
    number of rows already planned.

    Args:
        n_locations: Rows wanted.
        seed: Seed of points and uuids.
        radius_m: Search radius stored with new rows, metres.
        existing: An earlier status table, or ``None``.

    Returns:
        Status table with :data:`STATUS_COLUMNS`; new rows have status ``PENDING``.
    """
    from geoguess_utils.geo import borders

    have = 0 if existing is None else len(existing)
    parts = [] if existing is None else [existing]
    missing = n_locations - have
    if missing > 0:
        rng = np.random.default_rng([int(seed), have])
        lat, lon = borders.sample_points(missing, rng, variant="mainland")
        parts.append(
            pd.DataFrame(
                {
                    "row_idx": np.arange(have, n_locations),
                    "sample_latitude": lat,
                    "sample_longitude": lon,
                    "radius": int(radius_m),
                    "status": "PENDING",
                    "panorama_id": "",
                    "latitude": np.nan,
                    "longitude": np.nan,
                    "uuid": [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(missing)],
                    "date": "",
                    "copyright": "",
                    "attempts": 0,
                    "error": "",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[list(STATUS_COLUMNS)]


def read_status(path: Path) -> pd.DataFrame | None:
    """Read an earlier ``streetview_status.csv``; ``None`` when there is none.

    Raises:
        DataError: When the file is unreadable, lacks columns, or has unsafe or duplicated uuids.
    """
    return read_status_table(path, STATUS_COLUMNS, TEXT_COLUMNS)


class StreetViewSource(DownloadSource):
    """Street View's part of a download: metadata lookups, four Static API views per point.

    Args:
        settings: This run's settings (the key among them).
    """

    name = "streetview"
    status_csv = STATUS_CSV
    status_columns = STATUS_COLUMNS
    text_columns = TEXT_COLUMNS
    final_statuses = FINAL_STATUSES
    staging_dirname = STAGING_DIRNAME
    keep_staged_views = True  # views fetched before a failure are reused by the next run
    stop_error = StreetViewError
    notice = TERMS_NOTICE

    def __init__(self, settings: DownloadSettings) -> None:
        super().__init__(settings, settings.key)
        self.s = settings
        self.host = urlsplit(settings.base_url).netloc
        self.panoramas: dict[str, str] = {}  # panorama id -> uuid of the location that has it
        self.kept: pd.DataFrame | None = None

    # -- the driver's hooks -------------------------------------------------------------------

    def check(self) -> None:
        """Refuse bad settings, a root that keeps its images in ``data/``, and a file in place of the root."""
        self.s.check()
        if (self.root / "data").is_dir():
            raise DataError(
                f"{self.root} keeps its images in data/, but the downloader writes images/; the root would then "
                "have two image folders. Download into a new folder (and combine the roots when training)"
            )
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {self.root} exists and is not a folder")

    def plan(self, existing: pd.DataFrame | None) -> pd.DataFrame:
        """The earlier plan, extended to ``n_locations`` points (see :func:`plan_samples`)."""
        return plan_samples(self.s.n_locations, self.s.seed, self.s.radius_m, existing)

    def planned_rows(self, table: pd.DataFrame) -> range:
        """The first ``n_locations`` rows (a longer earlier plan keeps its extra rows untouched)."""
        return range(self.s.n_locations)

    def prepare(self, run: DownloadRun) -> None:
        """Note the panoramas already taken and the rows of ``data.csv`` to keep."""
        super().prepare(run)
        table = run.table
        self.panoramas = {
            str(p): str(u)
            for p, u, st in zip(table["panorama_id"], table["uuid"], table["status"], strict=True)
            if st == "OK" and p
        }
        self.kept = kept_rows(self.root / CSV_NAME, table)

    def opening_line(self, table: pd.DataFrame, todo: list[int]) -> str:
        """How many points are left to visit."""
        skipped = self.s.n_locations - len(todo)
        return f"{len(todo)} of {self.s.n_locations} points to visit ({skipped} already done) -> {self.root}"

    def progress_line(self, progress: Progress) -> str:
        """Points visited so far and how they ended."""
        return f"{progress.done}/{progress.total} points visited {dict(sorted(progress.counts.items()))}"

    def summary_line(self, table: pd.DataFrame) -> str:
        """Every status of the table and how often."""
        return f"finished: {table['status'].value_counts().to_dict()}"

    def write_outputs(self, table: pd.DataFrame) -> None:
        """The LUMEN ``data.csv``: rows kept from before, then the complete locations."""
        done = table[table["status"] == "OK"].copy()
        done["source"] = SOURCE_LABEL
        done = done[list(DATA_COLUMNS)]
        if self.kept is not None and len(self.kept):
            done = pd.concat([self.kept, done.astype(object)], ignore_index=True).fillna("")
        atomic_write_csv(done, self.root / CSV_NAME)

    # -- HTTP -------------------------------------------------------------------------------------

    async def _get(self, url: str, params: dict[str, str], want: str) -> Any:
        """GET with retries; returns parsed JSON (``want="json"``) or bytes (``"jpeg"``)."""
        query = {**params, "key": self.s.key}
        return await self.run.retrying(lambda: self._get_once(url, query, want), self.host)

    async def _get_once(self, url: str, params: dict[str, str], want: str) -> Any:
        async with self.run.session.get(url, params=params, timeout=self.run.request_timeout()) as response:
            if response.status in RETRY_HTTP:
                raise RetryableError(f"HTTP {response.status}", retry_after_s(response.headers))
            if response.status == 403:
                text = (await response.text())[:300]
                raise StreetViewError(
                    f"{self.host} refused the key (HTTP 403): {self.run.clean(text)}. Check that the key is "
                    "valid, has the Street View Static API enabled and billing set up"
                )
            if response.status != 200:
                raise RowError(f"HTTP {response.status}")
            if want == "json":
                body = await read_capped(response, MAX_METADATA_BYTES, "metadata answer")
                try:
                    return json.loads(body)
                except ValueError as exc:
                    raise RetryableError(f"unreadable JSON: {exc}") from None
            body = await read_capped(response, self.s.max_image_bytes, "image")
            if not looks_like_jpeg(body):
                raise RetryableError(f"incomplete or non-JPEG image ({len(body)} bytes)")
            return body

    # -- one point --------------------------------------------------------------------------------

    async def _metadata(self, row: pd.Series) -> dict[str, Any]:
        params = {
            "location": f"{row['sample_latitude']:.6f},{row['sample_longitude']:.6f}",
            "radius": str(int(row["radius"])),
            "source": "outdoor",
        }
        for attempt in range(self.s.max_retries + 1):
            meta = await self._get(f"{self.s.base_url}/metadata", params, "json")
            if not isinstance(meta, dict):
                raise RowError(f"the metadata answer is not a JSON object but {type(meta).__name__}")
            status = str(meta.get("status", ""))
            if status == "REQUEST_DENIED":
                message = self.run.clean(str(meta.get("error_message", "")))
                raise StreetViewError(f"the Street View API denied the request: {message or 'check your API key'}")
            if status not in _RETRY_API:
                return meta
            await asyncio.sleep(min(60.0, self.s.backoff_s * 2**attempt))
        raise RowError(f"metadata status {status} after {self.s.max_retries + 1} attempts")

    async def fetch_row(self, i: int) -> None:
        """Find point ``i``'s panorama (unless known), check it, then fetch its four views."""
        from geoguess_utils.geo import borders

        run = self.run
        row = run.table.loc[i]
        run.set(i, attempts=int(row["attempts"]) + 1)
        try:
            pano = str(row["panorama_id"])
            if not pano:
                meta = await self._metadata(row)
                status = str(meta.get("status", ""))
                if status != "OK":
                    run.set(i, status=status or "FAILED", error=str(meta.get("error_message", "")))
                    return
                pano = str(meta.get("pano_id", ""))
                lat, lon = _latlon(meta.get("location"))
                if not pano or not np.isfinite(lat) or not np.isfinite(lon):
                    raise RowError("metadata said OK but had no panorama id or location")
                run.set(
                    i,
                    panorama_id=pano,
                    latitude=lat,
                    longitude=lon,
                    date=str(meta.get("date", "")),
                    copyright=str(meta.get("copyright", "")),
                )
                if not bool(borders.is_on_land(lat, lon, variant="mainland", tolerance_km=0.3)):
                    run.set(i, status="OFF_MAINLAND")
                    return
            owner = self.panoramas.get(pano)
            if owner is not None and owner != row["uuid"]:
                run.set(i, status="DUPLICATE", error=f"same panorama as {owner}")
                return
            self.panoramas[pano] = str(row["uuid"])
            await self._views(str(row["uuid"]), pano)
            run.set(i, status="OK", error="")
        except RowError as exc:
            taken = str(run.table.loc[i, "panorama_id"])
            if self.panoramas.get(taken) == row["uuid"]:
                del self.panoramas[taken]
            run.set(i, status="FAILED", error=str(exc))

    async def _views(self, name: str, pano: str) -> None:
        if self.run.views_complete(name):
            return
        folder = self.run.staging / name
        for heading in HEADINGS:
            target = folder / f"{heading}.jpg"
            if target.is_file():
                continue  # fetched by an earlier, interrupted run
            params = {
                "size": f"{IMAGE_SIZE_PX}x{IMAGE_SIZE_PX}",
                "pano": pano,
                "heading": str(heading),
                "pitch": "0",
                "fov": str(FIELD_OF_VIEW_DEG),
                "return_error_code": "true",
            }
            atomic_write_bytes(target, await self._get(self.s.base_url, params, "jpeg"))
            try:
                check_view(target, (IMAGE_SIZE_PX, IMAGE_SIZE_PX))
            except DataError as exc:
                raise RowError(
                    f"location {name} (panorama {pano}): the server sent an image the reader refuses: {exc}"
                ) from None
        self.run.publish(name)


async def download_async(
    settings: DownloadSettings, say: Callable[[str], None] = print, session: Any = None
) -> pd.DataFrame:
    """Download (or resume) a Street View dataset; see :func:`download_streetview`."""
    return await run_download(StreetViewSource(settings), say, session)


def download_streetview(settings: DownloadSettings, say: Callable[[str], None] = print) -> pd.DataFrame:
    """Download (or resume) a Street View dataset in the LUMEN layout.

    Args:
        settings: Key, number of points, output folder and network settings.
        say: Receives progress lines (``print`` by default).

    Returns:
        The status table, one row per sampled point (also written to
        ``streetview_status.csv``).

    Raises:
        ConfigError: For unusable settings.
        StreetViewError: When the key is refused or the server cannot be reached; what
            was downloaded so far is kept and the next run resumes.
    """
    return download(StreetViewSource(settings), say)


def _latlon(location: Any) -> tuple[float, float]:
    """``(lat, lng)`` of a metadata answer's ``location``; NaN for anything malformed (a string, a missing key)."""
    try:
        return float(location["lat"]), float(location["lng"])
    except (TypeError, KeyError, ValueError, IndexError):
        return float("nan"), float("nan")
