"""Build a LUMEN dataset from Mapillary's openly licensed 360° panoramas.

Mapillary's street-level images are licensed CC BY-SA 4.0: anyone may use and share
them, with attribution, and derived images are shared under the same licence. The
Graph API needs a free access token (https://www.mapillary.com/dashboard/developers).

For every sampled point on Croatia's mainland the downloader asks
``GET {api}/images?is_pano=true&bbox=...`` for the 360° images within ``radius_m``
of it, takes the nearest one not used yet, downloads its equirectangular thumbnail
(``thumb_2048_url``) and cuts four square 90° views at the true headings 0, 90, 180
and 270 (:mod:`geoguess_utils.datasets.panorama`). A point with no panorama nearby,
a panorama already used, or one off the mainland, is replaced by another point
until ``n_locations`` locations are complete or ``max_points`` points were tried.

Output, in the LUMEN layout (see DATA_FORMAT.md)::

    ROOT/data.csv                   uuid, latitude, longitude, source, image_id, captured_at, creator, licence, ...
    ROOT/images/<uuid>/{0,90,180,270}.jpg
    ROOT/ATTRIBUTION.md             creator and image id of every location (CC BY-SA 4.0)
    ROOT/mapillary_status.csv       every sampled point and what happened to it

An existing root is extended: rows of ``data.csv`` that this downloader did not write
are kept. A location's folder appears only once its four views are on disk (written
atomically into a staging folder that is then renamed), and running the command again
resumes. New points are written to the status file before any of them is fetched, so
even a run killed at once leaves no location folder without its row: the next run
finds the same points under the same uuids. The access token is sent in the
``Authorization`` header to the API host only, never to the image host, and never
written anywhere; it is removed from every message.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
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
    run_download,
)
from geoguess_utils.datasets.http_retry import (
    MAX_RETRY_AFTER_S,
    RETRY_HTTP,
    RetryableError,
    RowError,
    read_capped,
    retry_after_s,
)
from geoguess_utils.datasets.mapillary_records import (
    ATTRIBUTION_MD,
    DATA_COLUMNS,
    FINAL_STATUSES,
    LICENCE,
    SOURCE_LABEL,
    STATUS_COLUMNS,
    STATUS_CSV,
    TERMS_NOTICE,
    TEXT_COLUMNS,
    attribution_text,
    bbox_around,
    empty_status,
    foreign_rows,
    parse_candidate,
    plan_points,
)
from geoguess_utils.datasets.mapillary_records import read_status as read_status
from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.io import atomic_write_bytes, atomic_write_csv, atomic_write_text

DEFAULT_API_URL = "https://graph.mapillary.com"
FIELDS = "id,geometry,computed_geometry,compass_angle,computed_compass_angle,captured_at,creator,thumb_2048_url"
STAGING_DIRNAME = ".partial-mapillary"
JPEG_QUALITY = 90
MAX_ANSWER_BYTES = 20_000_000
"""Largest Graph API answer read, bytes (a page of candidates is a few kilobytes)."""


class MapillaryError(GeoguessError):
    """The download cannot go on (token refused, no network)."""


@dataclass(frozen=True)
class MapillarySettings:
    """Everything one download run needs.

    Attributes:
        token: The user's Mapillary access token (never written to disk).
        n_locations: Complete locations wanted in the root (this downloader's rows).
        out_dir: Dataset root to write, resume or extend.
        seed: Seed of the sampled points and uuids.
        size: Side of the square views, pixels.
        radius_m: Half side of the search box around each point, metres.
        max_points: Most points ever sampled (default ``50 * n_locations``).
        concurrency: Locations downloaded at the same time.
        rate_per_s: Most requests started per second, API and images together.
        max_retries: Retries per request after the first attempt.
        backoff_s: First retry delay; doubles on every retry (with jitter), capped at 60 s.
        max_retry_after_s: Longest ``Retry-After`` obeyed, seconds; a server asking for more
            fails the row at once (retried on the next run) instead of putting the run to sleep.
        timeout_s: Total time allowed for one request, seconds.
        max_image_bytes: Larger panorama downloads fail their location.
        max_image_pixels: Panoramas with more pixels fail their location.
        api_url: Graph API address (a local mock in tests).
        save_every: Rewrite the CSV files after this many finished points.
    """

    token: str
    n_locations: int
    out_dir: Path
    seed: int = 0
    size: int = 640
    radius_m: float = 100.0
    max_points: int | None = None
    concurrency: int = 4
    rate_per_s: float = 10.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    timeout_s: float = 60.0
    max_image_bytes: int = 20_000_000
    max_image_pixels: int = 40_000_000
    api_url: str = DEFAULT_API_URL
    save_every: int = 25

    @property
    def point_budget(self) -> int:
        """The most points this run may sample in total."""
        return int(self.max_points) if self.max_points is not None else 50 * int(self.n_locations)

    def check(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        if not self.token or not self.token.strip():
            raise ConfigError("a Mapillary access token is needed (--token or the MAPILLARY_TOKEN variable)")
        if self.n_locations < 1:
            raise ConfigError(f"--locations must be at least 1, got {self.n_locations}")
        if not 16 <= self.size <= 2048:
            raise ConfigError(f"--size must be between 16 and 2048 pixels, got {self.size}")
        if not 1.0 <= self.radius_m <= 5000.0:
            raise ConfigError(f"--radius-m must be between 1 and 5000 metres, got {self.radius_m}")
        if self.point_budget < self.n_locations:
            raise ConfigError(f"--max-points ({self.point_budget}) must be at least --locations ({self.n_locations})")
        if self.concurrency < 1 or self.rate_per_s <= 0 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ConfigError("concurrency and rate must be positive, retries non-negative, timeout positive")
        if self.max_image_bytes < 1 or self.max_image_pixels < 1:
            raise ConfigError("the image size limits must be positive")
        if urlsplit(self.api_url).scheme not in ("http", "https"):
            raise ConfigError(f"the API URL must start with http:// or https://, got {self.api_url!r}")


def cut_views(body: bytes, compass_deg: float, size: int, max_pixels: int) -> dict[int, bytes]:
    """Decode an equirectangular JPEG and encode its four views (0/90/180/270) as JPEG.

    Raises:
        RowError: When the image is not a readable 2:1 JPEG of at most ``max_pixels``.
    """
    from PIL import Image

    from geoguess_utils.datasets.panorama import panorama_views

    try:
        with Image.open(io.BytesIO(body), formats=["JPEG"]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise RowError(f"panorama is {width}x{height} pixels, more than the limit of {max_pixels}")
            if abs(width - 2 * height) > max(2, width // 100):
                raise RowError(f"image is {width}x{height}, not a 2:1 equirectangular 360° panorama")
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RowError(f"unreadable panorama image: {exc}") from None
    out = {}
    for heading, view in panorama_views(pixels, compass_deg, size, HEADINGS).items():
        buffer = io.BytesIO()
        Image.fromarray(view).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        out[heading] = buffer.getvalue()
    return out


class MapillarySource(DownloadSource):
    """Mapillary's part of a download: search near each point, fetch the panorama, cut four views.

    Points are planned while the run goes on: one that ends without a location (no
    panorama, a used one, off the mainland, failed) is replaced by a new point until
    ``n_locations`` locations are complete or ``point_budget`` points were sampled.

    Args:
        settings: This run's settings (the token among them).
    """

    name = "mapillary"
    status_csv = STATUS_CSV
    status_columns = STATUS_COLUMNS
    text_columns = TEXT_COLUMNS
    final_statuses = FINAL_STATUSES
    staging_dirname = STAGING_DIRNAME
    keep_staged_views = False  # the four views are cut at once: nothing half-done is worth keeping
    stop_error = MapillaryError
    notice = TERMS_NOTICE

    def __init__(self, settings: MapillarySettings) -> None:
        super().__init__(settings, settings.token)
        self.s = settings
        self.api_host = urlsplit(settings.api_url).netloc
        self.used: dict[str, str] = {}  # image id -> uuid of the location cut from it
        self.taken: set[str] = set()  # uuids that exist in the root in any form
        self.foreign = pd.DataFrame()

    # -- the driver's hooks -------------------------------------------------------------------

    def plan(self, existing: pd.DataFrame | None) -> pd.DataFrame:
        """The earlier table as it is (new points are planned while the run goes on)."""
        return empty_status() if existing is None else existing

    def prepare(self, run: DownloadRun) -> None:
        """Note the image ids used, the rows of ``data.csv`` to keep and every uuid taken in the root."""
        super().prepare(run)
        table = run.table
        self.used = {
            str(i): str(u)
            for i, u, st in zip(table["image_id"], table["uuid"], table["status"], strict=True)
            if st == "OK" and i
        }
        self.foreign = foreign_rows(self.root, set(table["uuid"]))
        self.taken = set(table["uuid"]) | set(self.foreign.get("uuid", []))
        if run.images.is_dir():
            names = {entry.name: entry.is_dir() for entry in os.scandir(run.images)}
            # A folder without a row may hold the user's own data: it is never deleted, only reported.
            unlisted = sorted(
                n for n, is_dir in names.items() if is_dir and not n.startswith(".") and n not in self.taken
            )
            if unlisted:
                run.say(
                    f"note: {len(unlisted)} folder(s) in {run.images} have no row in {CSV_NAME} or {STATUS_CSV} "
                    f"(e.g. {unlisted[0]}); the downloader leaves them untouched and never reuses their names "
                    "(`geoguess validate` reports them as missing rows)"
                )
            self.taken |= set(names)

    def _ok(self) -> int:
        return int((self.run.table["status"] == "OK").sum())

    def next_row(self) -> int | None:
        """A row to work on now, planning new points when needed; ``None`` when none may start."""
        run = self.run
        if self._ok() + run.in_flight >= self.s.n_locations:
            return None
        if not self.queue:
            room = self.s.point_budget - len(run.table)
            count = min(self.s.n_locations - self._ok() - run.in_flight, room)
            if count <= 0:
                return None
            new = plan_points(count, self.s.seed, self.s.radius_m, len(run.table), self.taken)
            new.index = range(len(run.table), len(run.table) + count)
            run.table = pd.concat([run.table, new]) if len(run.table) else new
            # The new rows reach the status file before any of them is fetched: a run stopped
            # at any moment (even by kill -9) leaves no location folder without its row, and
            # the next run resumes these points under the same uuids.
            run.save()
            self.queue.extend(new.index)
        return self.queue.pop(0)

    def opening_line(self, table: pd.DataFrame, todo: list[int]) -> str:
        """Locations complete so far and points to retry."""
        ok = int((table["status"] == "OK").sum())
        return f"{ok} of {self.s.n_locations} locations already complete, {len(todo)} points to retry -> {self.root}"

    def progress_line(self, progress: Progress) -> str:
        """Locations complete and points sampled so far, by status."""
        counts = self.run.table["status"].value_counts().to_dict()
        return f"{self._ok()}/{self.s.n_locations} locations, {len(self.run.table)} points {counts}"

    def summary_line(self, table: pd.DataFrame) -> str:
        """Locations complete and points sampled, by status."""
        ok = int((table["status"] == "OK").sum())
        return f"finished: {ok} locations complete, {len(table)} points {table['status'].value_counts().to_dict()}"

    def write_outputs(self, table: pd.DataFrame) -> None:
        """``data.csv`` (kept foreign rows, then complete locations) and ATTRIBUTION.md."""
        done = table[table["status"] == "OK"].copy()
        done["source"] = SOURCE_LABEL
        done["licence"] = LICENCE
        ours = done[list(DATA_COLUMNS)]
        data = pd.concat([self.foreign, ours.astype(object)], ignore_index=True) if len(self.foreign) else ours
        atomic_write_csv(data, self.root / CSV_NAME)
        atomic_write_text(self.root / ATTRIBUTION_MD, attribution_text(done))

    def describe_failure(self, exc: BaseException) -> str:
        """A retryable failure's own message; other errors with their type's name."""
        return str(exc) if isinstance(exc, RetryableError) else f"{type(exc).__name__}: {exc}"

    # -- HTTP -------------------------------------------------------------------------------------

    async def _get(self, url: str, params: dict[str, str] | None, want: str) -> Any:
        """GET with retries; parsed JSON for ``want="json"``, JPEG bytes for ``"jpeg"``."""
        return await self.run.retrying(lambda: self._get_once(url, params, want), urlsplit(url).netloc)

    async def _get_once(self, url: str, params: dict[str, str] | None, want: str) -> Any:
        from yarl import URL

        to_api = urlsplit(url).netloc == self.api_host
        headers = {"Authorization": f"OAuth {self.s.token}"} if want == "json" and to_api else {}
        # An image URL is used exactly as the API gave it (signed CDN links break when re-quoted).
        target = URL(url) if params is not None else URL(url, encoded=True)
        timeout = self.run.request_timeout()
        async with self.run.session.get(target, params=params, headers=headers, timeout=timeout) as response:
            if response.status in RETRY_HTTP:
                raise RetryableError(f"HTTP {response.status}", retry_after_s(response.headers))
            if response.status in (401, 403) and want == "json":
                text = self.run.clean((await response.text())[:300])
                raise MapillaryError(
                    f"{self.api_host} refused the access token (HTTP {response.status}): {text}. Check the token at "
                    "https://www.mapillary.com/dashboard/developers"
                )
            if response.status != 200:
                raise RowError(f"HTTP {response.status} from {urlsplit(url).netloc}")
            if want == "json":
                body = await read_capped(response, MAX_ANSWER_BYTES, "API answer")
                try:
                    return json.loads(body)
                except ValueError as exc:
                    raise RetryableError(f"unreadable JSON: {exc}") from None
            return await self._read_image(response)

    async def _read_image(self, response: Any) -> bytes:
        body = await read_capped(response, self.s.max_image_bytes, "panorama download")
        size = len(body)
        if body[:2] != b"\xff\xd8":
            kind = response.headers.get("Content-Type", "unknown type")
            raise RowError(f"panorama download is not a JPEG image ({kind}, {size} bytes)")
        if not looks_like_jpeg(body):
            raise RetryableError(f"truncated JPEG ({size} bytes, no end marker)")
        return body

    # -- one point --------------------------------------------------------------------------------

    async def _search(self, row: pd.Series) -> dict[str, Any] | None:
        """The nearest unused panorama around the row's point, ``None`` when there is none."""
        from geoguess_utils.geo import distance

        lat, lon = float(row["sample_latitude"]), float(row["sample_longitude"])
        params = {
            "is_pano": "true",
            "bbox": bbox_around(lat, lon, float(row["radius_m"])),
            "fields": FIELDS,
            "limit": "100",
        }
        answer = await self._get(f"{self.s.api_url}/images", params, "json")
        items = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise RowError("the API answer has no 'data' list")
        found = [c for c in map(parse_candidate, items) if c is not None]
        if not found:
            return None
        km = distance.haversine_km(lat, lon, np.array([c["latitude"] for c in found]), [c["longitude"] for c in found])
        order = np.argsort(np.asarray(km), kind="stable")
        fresh = [found[k] for k in order if found[k]["image_id"] not in self.used]
        return fresh[0] if fresh else {"duplicate_of": self.used[found[int(order[0])]["image_id"]]}

    async def fetch_row(self, i: int) -> None:
        """Find point ``i``'s panorama (unless known), check it, then cut and store its four views."""
        from geoguess_utils.geo import borders

        run = self.run
        row = run.table.loc[i]
        name = str(row["uuid"])
        run.set(i, attempts=int(row["attempts"]) + 1)
        try:
            if not str(row["image_id"]) or not np.isfinite(float(row["compass_angle"])):
                pano = await self._search(row)
                if pano is None:
                    run.set(i, status="NO_PANORAMA", error="no 360° image within the search box")
                    return
                if "duplicate_of" in pano:
                    run.set(
                        i, status="DUPLICATE", error=f"nearby panoramas already used, e.g. by {pano['duplicate_of']}"
                    )
                    return
                run.set(i, **{k: v for k, v in pano.items() if k != "url"})
                if not bool(borders.is_on_land(pano["latitude"], pano["longitude"], "mainland", tolerance_km=0.3)):
                    run.set(i, status="OFF_MAINLAND", error="the nearest panorama is off Croatia's mainland")
                    return
                url = pano["url"]
            else:
                url = ""  # searched before; the image URL is not stored (it expires), so ask again below
            image = str(run.table.loc[i, "image_id"])
            owner = self.used.get(image)
            if owner is not None and owner != name:
                run.set(i, status="DUPLICATE", error=f"same panorama as {owner}")
                return
            self.used[image] = name
            await self._views(i, url)
            run.set(i, status="OK", error="")
        except RowError as exc:
            image = str(run.table.loc[i, "image_id"])
            if self.used.get(image) == name:
                del self.used[image]
            run.set(i, status="FAILED", error=str(exc))

    async def _image_url(self, image_id: str) -> str:
        answer = await self._get(f"{self.s.api_url}/{image_id}", {"fields": "thumb_2048_url"}, "json")
        url = answer.get("thumb_2048_url") if isinstance(answer, dict) else None
        if not url:
            raise RowError(f"the API gave no thumb_2048_url for image {image_id}")
        return str(url)

    async def _views(self, i: int, url: str) -> None:
        """Cut and store the four views of row ``i``'s panorama.

        ``url`` is empty when the panorama's id comes from the saved status table: a
        complete folder of the row was then cut from that panorama and is kept. After a
        new search (``url`` given) the panorama may differ from the one an earlier,
        interrupted run cut the folder from, so the views are cut again.
        """
        name = str(self.run.table.loc[i, "uuid"])
        if not url and self.run.views_complete(name):
            return
        body = await self._get(url or await self._image_url(str(self.run.table.loc[i, "image_id"])), None, "jpeg")
        compass = float(self.run.table.loc[i, "compass_angle"])
        views = await asyncio.to_thread(cut_views, body, compass, self.s.size, self.s.max_image_pixels)
        for heading, jpeg in views.items():
            atomic_write_bytes(self.run.staging / name / f"{heading}.jpg", jpeg)
        self.run.publish(name)


async def download_async(
    settings: MapillarySettings, say: Callable[[str], None] = print, session: Any = None
) -> pd.DataFrame:
    """Download, resume or extend a Mapillary dataset; see :func:`download_mapillary`."""
    return await run_download(MapillarySource(settings), say, session)


def download_mapillary(settings: MapillarySettings, say: Callable[[str], None] = print) -> pd.DataFrame:
    """Download (or resume, or extend) a LUMEN dataset from Mapillary's 360° images.

    Args:
        settings: Token, number of locations, output folder and network settings.
        say: Receives progress lines (``print`` by default); the token never appears.

    Returns:
        The status table, one row per sampled point (also ``mapillary_status.csv``).

    Raises:
        ConfigError: For unusable settings.
        DataError: For an unreadable status file or data.csv in the root.
        MapillaryError: When the token is refused or the API cannot be reached; what was
            downloaded so far is kept and the next run resumes.
    """
    return download(MapillarySource(settings), say)
