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
resumes. The access token is sent in the ``Authorization`` header to the API host only,
never to the image host, and never written anywhere; it is removed from every message.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import CSV_NAME, HEADINGS, view_file
from geoguess_utils.datasets.http_retry import RETRY_HTTP as _RETRY_HTTP
from geoguess_utils.datasets.http_retry import RateLimiter, retry_after_s, with_retries
from geoguess_utils.datasets.http_retry import RetryableError as _RetryableError
from geoguess_utils.datasets.http_retry import RowError as _RowError
from geoguess_utils.datasets.mapillary_records import (
    ATTRIBUTION_MD,
    DATA_COLUMNS,
    LICENCE,
    SOURCE_LABEL,
    STATUS_CSV,
    TERMS_NOTICE,
    attribution_text,
    bbox_around,
    foreign_rows,
    image_dir,
    is_done,
    parse_candidate,
    plan_points,
    read_status,
)
from geoguess_utils.datasets.streetview import _looks_like_jpeg
from geoguess_utils.datasets.streetview_checks import redact as _redact
from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.io import atomic_write_bytes, atomic_write_csv, atomic_write_text

DEFAULT_API_URL = "https://graph.mapillary.com"
FIELDS = "id,geometry,computed_geometry,compass_angle,computed_compass_angle,captured_at,creator,thumb_2048_url"
STAGING_DIRNAME = ".partial-mapillary"
JPEG_QUALITY = 90


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
        _RowError: When the image is not a readable 2:1 JPEG of at most ``max_pixels``.
    """
    from PIL import Image

    from geoguess_utils.datasets.panorama import panorama_views

    try:
        with Image.open(io.BytesIO(body), formats=["JPEG"]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise _RowError(f"panorama is {width}x{height} pixels, more than the limit of {max_pixels}")
            if abs(width - 2 * height) > max(2, width // 100):
                raise _RowError(f"image is {width}x{height}, not a 2:1 equirectangular 360° panorama")
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _RowError(f"unreadable panorama image: {exc}") from None
    out = {}
    for heading, view in panorama_views(pixels, compass_deg, size, HEADINGS).items():
        buffer = io.BytesIO()
        Image.fromarray(view).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        out[heading] = buffer.getvalue()
    return out


class _Downloader:
    def __init__(
        self, settings: MapillarySettings, session: Any, table: pd.DataFrame, say: Callable[[str], None]
    ) -> None:
        self.s = settings
        self.session = session
        self.table = table
        self.say = say
        self.root = Path(settings.out_dir)
        self.images = image_dir(self.root)
        self.staging = self.root / STAGING_DIRNAME
        self.limiter = RateLimiter(settings.rate_per_s)
        self.api_host = urlsplit(settings.api_url).netloc
        self.used: dict[str, str] = {
            str(i): str(u)
            for i, u, st in zip(table["image_id"], table["uuid"], table["status"], strict=True)
            if st == "OK" and i
        }
        self.queue: list[int] = []
        self.in_flight = 0
        self.stopped = False
        self.changed = asyncio.Condition()
        self.finished = 0
        self.taken: set[str] = set()
        self.foreign = pd.DataFrame()

    # -- HTTP -----------------------------------------------------------------------------

    async def _get(self, url: str, params: dict[str, str] | None, want: str) -> Any:
        """GET with retries; parsed JSON for ``want="json"``, JPEG bytes for ``"jpeg"``."""
        return await with_retries(
            lambda: self._get_once(url, params, want),
            self.limiter,
            self.s.max_retries,
            self.s.backoff_s,
            unreachable=lambda exc: MapillaryError(
                f"cannot reach {urlsplit(url).netloc}: {self._clean(str(exc))}. This command needs "
                "internet access; run it again when online and it resumes where it stopped"
            ),
            describe=lambda exc: self._clean(
                str(exc) if isinstance(exc, _RetryableError) else f"{type(exc).__name__}: {exc}"
            ),
        )

    def _clean(self, text: str) -> str:
        return _redact(text, self.s.token)

    async def _get_once(self, url: str, params: dict[str, str] | None, want: str) -> Any:
        import aiohttp
        from yarl import URL

        to_api = urlsplit(url).netloc == self.api_host
        headers = {"Authorization": f"OAuth {self.s.token}"} if want == "json" and to_api else {}
        timeout = aiohttp.ClientTimeout(total=self.s.timeout_s)
        # An image URL is used exactly as the API gave it (signed CDN links break when re-quoted).
        target = URL(url) if params is not None else URL(url, encoded=True)
        async with self.session.get(target, params=params, headers=headers, timeout=timeout) as response:
            if response.status in _RETRY_HTTP:
                raise _RetryableError(f"HTTP {response.status}", retry_after_s(response.headers))
            if response.status in (401, 403) and want == "json":
                text = self._clean((await response.text())[:300])
                raise MapillaryError(
                    f"{self.api_host} refused the access token (HTTP {response.status}): {text}. Check the token at "
                    "https://www.mapillary.com/dashboard/developers"
                )
            if response.status != 200:
                raise _RowError(f"HTTP {response.status} from {urlsplit(url).netloc}")
            if want == "json":
                body = await response.read()
                if response.content_length is not None and len(body) != response.content_length:
                    raise _RetryableError(f"truncated answer: {len(body)} of {response.content_length} bytes")
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise _RetryableError(f"unreadable JSON: {exc}") from None
            return await self._read_image(response)

    async def _read_image(self, response: Any) -> bytes:
        limit = self.s.max_image_bytes
        if response.content_length is not None and response.content_length > limit:
            raise _RowError(f"panorama download is {response.content_length} bytes, more than the limit of {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise _RowError(f"panorama download exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if response.content_length is not None and size != response.content_length:
            raise _RetryableError(f"truncated download: {size} of {response.content_length} bytes")
        if body[:2] != b"\xff\xd8":
            kind = response.headers.get("Content-Type", "unknown type")
            raise _RowError(f"panorama download is not a JPEG image ({kind}, {size} bytes)")
        if not _looks_like_jpeg(body):
            raise _RetryableError(f"truncated JPEG ({size} bytes, no end marker)")
        return body

    # -- one location ---------------------------------------------------------------------

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
            raise _RowError("the API answer has no 'data' list")
        found = [c for c in map(parse_candidate, items) if c is not None]
        if not found:
            return None
        km = distance.haversine_km(lat, lon, np.array([c["latitude"] for c in found]), [c["longitude"] for c in found])
        order = np.argsort(np.asarray(km), kind="stable")
        fresh = [found[k] for k in order if found[k]["image_id"] not in self.used]
        return fresh[0] if fresh else {"duplicate_of": self.used[found[int(order[0])]["image_id"]]}

    async def _location(self, i: int) -> None:
        from geoguess_utils.geo import borders

        row = self.table.loc[i]
        name = str(row["uuid"])
        self._set(i, attempts=int(row["attempts"]) + 1)
        try:
            if not str(row["image_id"]) or not np.isfinite(float(row["compass_angle"])):
                pano = await self._search(row)
                if pano is None:
                    self._set(i, status="NO_PANORAMA", error="no 360° image within the search box")
                    return
                if "duplicate_of" in pano:
                    self._set(
                        i, status="DUPLICATE", error=f"nearby panoramas already used, e.g. by {pano['duplicate_of']}"
                    )
                    return
                self._set(i, **{k: v for k, v in pano.items() if k != "url"})
                if not bool(borders.is_on_land(pano["latitude"], pano["longitude"], "mainland", tolerance_km=0.3)):
                    self._set(i, status="OFF_MAINLAND", error="the nearest panorama is off Croatia's mainland")
                    return
                url = pano["url"]
            else:
                url = ""  # searched before; the image URL is not stored (it expires), so ask again below
            owner = self.used.get(str(self.table.loc[i, "image_id"]))
            if owner is not None and owner != name:
                self._set(i, status="DUPLICATE", error=f"same panorama as {owner}")
                return
            self.used[str(self.table.loc[i, "image_id"])] = name
            await self._views(i, url)
            self._set(i, status="OK", error="")
        except _RowError as exc:
            image = str(self.table.loc[i, "image_id"])
            if self.used.get(image) == name:
                del self.used[image]
            self._set(i, status="FAILED", error=str(exc))

    async def _image_url(self, image_id: str) -> str:
        answer = await self._get(f"{self.s.api_url}/{image_id}", {"fields": "thumb_2048_url"}, "json")
        url = answer.get("thumb_2048_url") if isinstance(answer, dict) else None
        if not url:
            raise _RowError(f"the API gave no thumb_2048_url for image {image_id}")
        return str(url)

    async def _views(self, i: int, url: str) -> None:
        name = str(self.table.loc[i, "uuid"])
        final = self.images / name
        if final.is_dir() and all((final / view_file(h)).is_file() for h in HEADINGS):
            return
        body = await self._get(url or await self._image_url(str(self.table.loc[i, "image_id"])), None, "jpeg")
        compass = float(self.table.loc[i, "compass_angle"])
        views = await asyncio.to_thread(cut_views, body, compass, self.s.size, self.s.max_image_pixels)
        folder = self.staging / name
        for heading, jpeg in views.items():
            atomic_write_bytes(folder / f"{heading}.jpg", jpeg)
        self.images.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(folder, final)

    def _set(self, i: int, **values: Any) -> None:
        for column, value in values.items():
            self.table.loc[i, column] = value

    # -- scheduling -------------------------------------------------------------------------

    def _ok(self) -> int:
        return int((self.table["status"] == "OK").sum())

    def _next_row(self) -> int | None:
        """A row to work on now, planning new points when needed; ``None`` when none may start."""
        if self.stopped or self._ok() + self.in_flight >= self.s.n_locations:
            return None
        if not self.queue:
            room = self.s.point_budget - len(self.table)
            count = min(self.s.n_locations - self._ok() - self.in_flight, room)
            if count <= 0:
                return None
            new = plan_points(count, self.s.seed, self.s.radius_m, len(self.table), self.taken)
            new.index = range(len(self.table), len(self.table) + count)
            self.table = pd.concat([self.table, new]) if len(self.table) else new
            self.queue.extend(new.index)
        return self.queue.pop(0)

    async def _worker(self) -> None:
        while True:
            async with self.changed:
                i = self._next_row()
                while i is None and self.in_flight > 0:
                    await self.changed.wait()
                    i = self._next_row()
                if i is None:
                    return
                self.in_flight += 1
            try:
                await self._location(i)
            except BaseException:  # a fatal error (token refused, no network): start nothing more
                self.stopped = True
                raise
            finally:
                async with self.changed:
                    self.in_flight -= 1
                    self.changed.notify_all()
            self.finished += 1
            if self.finished % self.s.save_every == 0:
                self.save()
                counts = self.table["status"].value_counts().to_dict()
                self.say(f"{self._ok()}/{self.s.n_locations} locations, {len(self.table)} points {counts}")

    async def run(self, todo: list[int]) -> None:
        self.queue = list(todo)
        workers = [asyncio.create_task(self._worker()) for _ in range(self.s.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.save()
            if self.staging.is_dir():
                shutil.rmtree(self.staging, ignore_errors=True)

    # -- output -----------------------------------------------------------------------------

    def save(self) -> None:
        """Write the status table, ``data.csv`` (kept foreign rows + complete locations) and ATTRIBUTION.md."""
        atomic_write_csv(self.table, self.root / STATUS_CSV)
        done = self.table[self.table["status"] == "OK"].copy()
        done["source"] = SOURCE_LABEL
        done["licence"] = LICENCE
        ours = done[list(DATA_COLUMNS)]
        data = pd.concat([self.foreign, ours.astype(object)], ignore_index=True) if len(self.foreign) else ours
        atomic_write_csv(data, self.root / CSV_NAME)
        atomic_write_text(self.root / ATTRIBUTION_MD, attribution_text(done))


async def download_async(
    settings: MapillarySettings, say: Callable[[str], None] = print, session: Any = None
) -> pd.DataFrame:
    """Download, resume or extend a Mapillary dataset; see :func:`download_mapillary`."""
    import aiohttp

    settings.check()
    root = Path(settings.out_dir)
    table = read_status(root / STATUS_CSV)
    images = image_dir(root)
    todo = [i for i in range(len(table)) if not is_done(table.loc[i], images)]
    for i in todo:
        if table.loc[i, "status"] == "OK":
            table.loc[i, "status"] = "PENDING"  # its images went missing: fetch them again
    say(TERMS_NOTICE)
    ok = int((table["status"] == "OK").sum())
    say(f"{ok} of {settings.n_locations} locations already complete, {len(todo)} points to retry -> {root}")
    own_session = session is None
    if own_session:
        connector = aiohttp.TCPConnector(limit=settings.concurrency * 2)
        session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "geoguess-mapillary"})
    try:
        downloader = _Downloader(settings, session, table, say)
        downloader.foreign = foreign_rows(root, set(table["uuid"]))
        downloader.taken = set(table["uuid"]) | set(downloader.foreign.get("uuid", []))
        if images.is_dir():
            downloader.taken |= {entry.name for entry in os.scandir(images)}
        root.mkdir(parents=True, exist_ok=True)
        await downloader.run(todo)
        table = downloader.table
    finally:
        if own_session:
            await session.close()
    counts = table["status"].value_counts().to_dict()
    say(f"finished: {int((table['status'] == 'OK').sum())} locations complete, {len(table)} points {counts}")
    return table


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
    try:
        return asyncio.run(download_async(settings, say))
    except OSError as exc:
        raise MapillaryError(f"download stopped: {_redact(str(exc), settings.token)}") from exc
