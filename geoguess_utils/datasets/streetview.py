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
:data:`~geoguess_utils.data.reader.DEFAULT_MAX_PIXELS` pixels) before it counts.

The API key never reaches the disk or the screen: it is removed, with any ``key=``
query parameter, from every message, status row and progress line (servers echo the
request URL in their error messages).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import CSV_NAME, HEADINGS, WRITTEN_IMAGE_DIR, view_file
from geoguess_utils.data.reader import is_safe_uuid
from geoguess_utils.datasets.http_retry import RETRY_HTTP as _RETRY_HTTP
from geoguess_utils.datasets.http_retry import RateLimiter, retry_after_s, with_retries
from geoguess_utils.datasets.http_retry import RetryableError as _RetryableError
from geoguess_utils.datasets.http_retry import RowError as _RowError
from geoguess_utils.datasets.streetview_checks import check_view, kept_rows, redact
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
        if self.concurrency < 1 or self.rate_per_s <= 0 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError("concurrency and rate must be positive, retries non-negative, timeout positive")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ConfigError(f"the base URL must start with http:// or https://, got {self.base_url!r}")


@dataclass
class _Progress:
    done: int = 0
    since_save: int = 0
    counts: dict[str, int] = field(default_factory=dict)


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
        DataError: When the file lacks columns or has duplicated uuids.
    """
    if not path.exists():
        return None
    table = pd.read_csv(
        path, dtype={"panorama_id": str, "uuid": str, "status": str, "date": str, "copyright": str, "error": str}
    )
    missing = [c for c in STATUS_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; delete it to start over")
    dup = table["uuid"][table["uuid"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: uuid {dup.iloc[0]} appears more than once")
    unsafe = table.index[~table["uuid"].map(is_safe_uuid)]
    if len(unsafe):  # a folder name like ../../x would make the downloader write (and delete) outside its folder
        row = unsafe[0]
        raise DataError(
            f"{path} line {row + 2}: uuid {table.loc[row, 'uuid']!r} is not a plain folder name; "
            "delete the file to start over"
        )
    for column in ("panorama_id", "date", "copyright", "error"):
        table[column] = table[column].fillna("")
    return table[list(STATUS_COLUMNS)]


def _looks_like_jpeg(body: bytes) -> bool:
    """A complete JPEG starts with SOI (FF D8) and ends with EOI (FF D9)."""
    return len(body) > 4 and body[:2] == b"\xff\xd8" and body.rstrip(b"\x00")[-2:] == b"\xff\xd9"


class _Downloader:
    def __init__(
        self, settings: DownloadSettings, session: Any, table: pd.DataFrame, say: Callable[[str], None]
    ) -> None:
        self.s = settings
        self.session = session
        self.table = table
        self.say = say
        self.limiter = RateLimiter(settings.rate_per_s)
        self.progress = _Progress()
        self.root = Path(settings.out_dir)
        self.images = self.root / WRITTEN_IMAGE_DIR
        self.staging = self.root / STAGING_DIRNAME
        self.panoramas: dict[str, str] = {
            str(p): str(u)
            for p, u, st in zip(table["panorama_id"], table["uuid"], table["status"], strict=True)
            if st == "OK" and p
        }
        self.host = urlsplit(settings.base_url).netloc
        self.kept = kept_rows(self.root / CSV_NAME, table)

    # -- HTTP ---------------------------------------------------------------------

    async def _get(self, url: str, params: dict[str, str], want: str) -> Any:
        """GET with retries; returns parsed JSON (``want="json"``) or bytes (``"jpeg"``)."""
        return await with_retries(
            lambda: self._get_once(url, {**params, "key": self.s.key}, want),
            self.limiter,
            self.s.max_retries,
            self.s.backoff_s,
            unreachable=lambda exc: StreetViewError(
                f"cannot reach {self.host}: {redact(str(exc), self.s.key)}. This command needs internet "
                "access; run it again when online and it resumes where it stopped"
            ),
            describe=lambda exc: redact(self._describe(exc), self.s.key),
        )

    @staticmethod
    def _describe(exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _get_once(self, url: str, params: dict[str, str], want: str) -> Any:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.s.timeout_s)
        async with self.session.get(url, params=params, timeout=timeout) as response:
            if response.status in _RETRY_HTTP:
                raise _RetryableError(f"HTTP {response.status}", retry_after_s(response.headers))
            if response.status == 403:
                text = (await response.text())[:300]
                raise StreetViewError(
                    f"{self.host} refused the key (HTTP 403): {redact(text, self.s.key)}. Check that the key is "
                    "valid, has the Street View Static API enabled and billing set up"
                )
            if response.status != 200:
                raise _RowError(f"HTTP {response.status}")
            body = await response.read()
            expected = response.content_length
            if expected is not None and len(body) != expected:
                raise _RetryableError(f"truncated body: {len(body)} of {expected} bytes")
            if want == "json":
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise _RetryableError(f"unreadable JSON: {exc}") from None
            if not _looks_like_jpeg(body):
                raise _RetryableError(f"incomplete or non-JPEG image ({len(body)} bytes)")
            return body

    # -- one location ---------------------------------------------------------------

    async def _metadata(self, row: pd.Series) -> dict[str, Any]:
        params = {
            "location": f"{row['sample_latitude']:.6f},{row['sample_longitude']:.6f}",
            "radius": str(int(row["radius"])),
            "source": "outdoor",
        }
        for attempt in range(self.s.max_retries + 1):
            meta = await self._get(f"{self.s.base_url}/metadata", params, "json")
            status = str(meta.get("status", ""))
            if status == "REQUEST_DENIED":
                message = redact(str(meta.get("error_message", "")), self.s.key)
                raise StreetViewError(f"the Street View API denied the request: {message or 'check your API key'}")
            if status not in _RETRY_API:
                return meta
            await asyncio.sleep(min(60.0, self.s.backoff_s * 2**attempt))
        raise _RowError(f"metadata status {status} after {self.s.max_retries + 1} attempts")

    async def _location(self, i: int) -> None:
        from geoguess_utils.geo import borders

        row = self.table.loc[i]
        self.table.loc[i, "attempts"] = int(row["attempts"]) + 1
        try:
            pano = str(row["panorama_id"])
            if not pano:
                meta = await self._metadata(row)
                status = str(meta.get("status", ""))
                if status != "OK":
                    self._set(i, status=status or "FAILED", error=str(meta.get("error_message", "")))
                    return
                pano = str(meta.get("pano_id", ""))
                where = meta.get("location") or {}
                lat, lon = float(where.get("lat", np.nan)), float(where.get("lng", np.nan))
                if not pano or not np.isfinite(lat) or not np.isfinite(lon):
                    raise _RowError("metadata said OK but had no panorama id or location")
                self._set(
                    i,
                    panorama_id=pano,
                    latitude=lat,
                    longitude=lon,
                    date=str(meta.get("date", "")),
                    copyright=str(meta.get("copyright", "")),
                )
                if not bool(borders.is_on_land(lat, lon, variant="mainland", tolerance_km=0.3)):
                    self._set(i, status="OFF_MAINLAND")
                    return
            owner = self.panoramas.get(pano)
            if owner is not None and owner != row["uuid"]:
                self._set(i, status="DUPLICATE", error=f"same panorama as {owner}")
                return
            self.panoramas[pano] = str(row["uuid"])
            await self._images(str(row["uuid"]), pano)
            self._set(i, status="OK", error="")
        except _RowError as exc:
            if self.panoramas.get(str(self.table.loc[i, "panorama_id"])) == row["uuid"]:
                del self.panoramas[str(self.table.loc[i, "panorama_id"])]
            self._set(i, status="FAILED", error=str(exc))

    async def _images(self, name: str, pano: str) -> None:
        final = self.images / name
        if final.is_dir() and all((final / view_file(h)).is_file() for h in HEADINGS):
            return
        folder = self.staging / name
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
            body = await self._get(self.s.base_url, params, "jpeg")
            atomic_write_bytes(target, body)
            try:
                check_view(target)
            except DataError as exc:
                raise _RowError(f"the server sent an image the reader refuses: {exc}") from None
        self.images.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(folder, final)

    def _set(self, i: int, **values: Any) -> None:
        for column, value in values.items():
            self.table.loc[i, column] = redact(value, self.s.key) if isinstance(value, str) else value

    # -- the run ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the status table and the LUMEN ``data.csv``: rows kept from before, then complete locations."""
        table = self.table.copy()
        table["error"] = table["error"].map(lambda text: redact(text, self.s.key))
        atomic_write_csv(table, self.root / STATUS_CSV)
        done = table[table["status"] == "OK"].copy()
        done["source"] = SOURCE_LABEL
        done = done[list(DATA_COLUMNS)]
        if self.kept is not None and len(self.kept):
            done = pd.concat([self.kept, done.astype(object)], ignore_index=True).fillna("")
        atomic_write_csv(done, self.root / CSV_NAME)

    async def _worker(self, queue: asyncio.Queue[int], total: int) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await self._location(i)
            status = str(self.table.loc[i, "status"])
            self.progress.counts[status] = self.progress.counts.get(status, 0) + 1
            self.progress.done += 1
            self.progress.since_save += 1
            if self.progress.since_save >= self.s.save_every:
                self.progress.since_save = 0
                self.save()
                self.say(f"{self.progress.done}/{total} points visited {dict(sorted(self.progress.counts.items()))}")

    async def run(self, todo: list[int]) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in todo:
            queue.put_nowait(i)
        workers = [
            asyncio.create_task(self._worker(queue, len(todo))) for _ in range(min(self.s.concurrency, len(todo)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.save()
            if self.staging.is_dir() and not any(self.staging.iterdir()):
                self.staging.rmdir()


def _is_done(row: pd.Series, images: Path) -> bool:
    if row["status"] not in FINAL_STATUSES:
        return False
    if row["status"] != "OK":
        return True
    folder = images / str(row["uuid"])
    return all((folder / view_file(h)).is_file() for h in HEADINGS)


async def download_async(
    settings: DownloadSettings, say: Callable[[str], None] = print, session: Any = None
) -> pd.DataFrame:
    """Download (or resume) a Street View dataset; see :func:`download_streetview`."""
    import aiohttp

    settings.check()
    root = Path(settings.out_dir)
    if (root / "data").is_dir():
        raise DataError(
            f"{root} keeps its images in data/, but the downloader writes images/; the root would then have two "
            "image folders. Download into a new folder (and combine the roots when training)"
        )
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root} exists and is not a folder")
    original_say = say

    def say(line: str) -> None:
        original_say(redact(line, settings.key))

    table = plan_samples(settings.n_locations, settings.seed, settings.radius_m, read_status(root / STATUS_CSV))
    images = root / WRITTEN_IMAGE_DIR
    todo = [i for i in range(settings.n_locations) if not _is_done(table.loc[i], images)]
    for i in todo:
        if table.loc[i, "status"] == "OK":
            table.loc[i, "status"] = "PENDING"  # its images went missing: fetch them again
    say(TERMS_NOTICE)
    skipped = settings.n_locations - len(todo)
    say(f"{len(todo)} of {settings.n_locations} points to visit ({skipped} already done) -> {root}")
    own_session = session is None
    if own_session:
        connector = aiohttp.TCPConnector(limit=settings.concurrency * 2)
        session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "geoguess-streetview"})
    try:
        downloader = _Downloader(settings, session, table, say)
        root.mkdir(parents=True, exist_ok=True)
        await downloader.run(todo)
    finally:
        if own_session:
            await session.close()
    counts = table["status"].value_counts().to_dict()
    say(f"finished: {counts}")
    return table


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
    try:
        return asyncio.run(download_async(settings, say))
    except OSError as exc:
        raise StreetViewError(f"download stopped: {redact(exc, settings.key)}") from exc
