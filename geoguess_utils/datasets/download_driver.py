"""The resumable loop behind every dataset downloader (Street View, Mapillary).

A downloader only knows its own requests and what one row of its status table means;
it says so by subclassing :class:`DownloadSource`. Everything around that is done here,
the same way for every source, by :func:`run_download`:

1. read the status table an earlier run left in the root (``<root>/<status csv>``) and
   let the source complete its plan;
2. pick the rows still to do: a row is done when its status is final and, for ``OK``,
   its location folder holds the four views ``0,90,180,270.jpg``; an ``OK`` row whose
   views went missing is set back to ``PENDING`` and fetched again;
3. open one aiohttp session, start requests no faster than the rate limit and retry
   each with backoff (:func:`~geoguess_utils.datasets.http_retry.with_retries`);
4. run ``concurrency`` workers, each asking the source for a row and fetching it; after
   every ``save_every`` finished rows the tables are rewritten (atomically) and a
   progress line is said;
5. on the way out, after a fatal error as well, save once more, tidy the staging folder
   and say the summary.

A location's views are written into ``<root>/<staging>/<uuid>/`` first and the folder
is renamed into the image folder only when all four are there
(:meth:`DownloadRun.publish`), so an interrupted run never leaves a partial location.
The user's secret (API key, access token) is removed by :func:`redact` from every
value stored in the table, every line said and every error raised.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import quote, quote_plus

import pandas as pd

from geoguess_utils.data.layout import HEADINGS, IMAGE_DIR_NAMES, WRITTEN_IMAGE_DIR, view_file
from geoguess_utils.data.reader import is_safe_uuid
from geoguess_utils.datasets.http_retry import RateLimiter, with_retries
from geoguess_utils.errors import DataError
from geoguess_utils.io import atomic_write_csv

T = TypeVar("T")

_SECRET_PARAMETER = re.compile(r"(?i)\b(key|signature)(=|%3D)[^&\s\"'<>]*")


# -- small helpers ----------------------------------------------------------------------------


def redact(text: object, key: str) -> str:
    """``str(text)`` with the secret, in clear or URL-encoded, and every ``key=...`` query value removed.

    Args:
        text: A message, an error returned by the server, a URL, a progress line.
        key: The user's API key or access token (may be empty).

    Returns:
        The text with each occurrence replaced by ``<key>``.
    """
    out = str(text)
    if key:
        for form in sorted({key, quote(key, safe=""), quote_plus(key)}, key=len, reverse=True):
            out = out.replace(form, "<key>")
    return _SECRET_PARAMETER.sub(lambda m: f"{m.group(1)}{m.group(2)}<key>", out)


def looks_like_jpeg(body: bytes) -> bool:
    """Whether a downloaded body is a whole JPEG: it starts with SOI (FF D8) and ends with EOI (FF D9).

    Args:
        body: The bytes received; trailing zero padding is ignored.

    Returns:
        ``False`` for anything shorter than 5 bytes, another format, or a cut-off JPEG.
    """
    return len(body) > 4 and body[:2] == b"\xff\xd8" and body.rstrip(b"\x00")[-2:] == b"\xff\xd9"


def describe_exception(exc: BaseException) -> str:
    """``"TypeName: message"``, or just the type's name when the message is empty."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def image_dir(root: Path) -> Path:
    """The root's image folder: an existing ``data/`` or ``images/``, else ``images/``."""
    for name in IMAGE_DIR_NAMES:
        if (root / name).is_dir():
            return root / name
    return root / WRITTEN_IMAGE_DIR


def has_all_views(folder: Path) -> bool:
    """Whether ``folder`` holds a file for each of the four headings (``0.jpg`` ... ``270.jpg``)."""
    return all((folder / view_file(h)).is_file() for h in HEADINGS)


def row_is_done(row: pd.Series, images: Path, final_statuses: frozenset[str]) -> bool:
    """Whether a status row needs no more work.

    Args:
        row: One row of a status table (``status`` and ``uuid`` are read).
        images: The root's image folder.
        final_statuses: Statuses a later run does not retry.

    Returns:
        ``True`` for a final status, except ``OK`` without its four views on disk.
    """
    if row["status"] not in final_statuses:
        return False
    return row["status"] != "OK" or has_all_views(images / str(row["uuid"]))


def unfinished_rows(table: pd.DataFrame, images: Path, final_statuses: frozenset[str], rows: range) -> list[int]:
    """The rows of ``rows`` that still need work; ``OK`` rows among them are set back to ``PENDING``.

    Args:
        table: Status table, changed in place.
        images: The root's image folder.
        final_statuses: Statuses a later run does not retry.
        rows: Row labels to consider.

    Returns:
        Labels of the rows to fetch, in order.
    """
    todo = [i for i in rows if not row_is_done(table.loc[i], images, final_statuses)]
    for i in todo:
        if table.loc[i, "status"] == "OK":
            table.loc[i, "status"] = "PENDING"  # its views went missing: fetch them again
    return todo


def read_status_table(path: Path, columns: Sequence[str], text_columns: Sequence[str]) -> pd.DataFrame | None:
    """Read a status table written by an earlier run; ``None`` when there is none.

    Args:
        path: The status CSV.
        columns: Columns it must have (returned in this order).
        text_columns: Columns read as text; empty cells become ``""``.

    Returns:
        The table with a fresh 0..n-1 index.

    Raises:
        DataError: When the file is not a readable CSV, lacks a column, holds a uuid that
            is not a plain folder name (it would lead outside the image folder) or repeats one.
    """
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path, dtype={c: str for c in text_columns}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not a readable CSV file: {exc}; delete it to start over") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; delete it to start over")
    for column in text_columns:
        table[column] = table[column].fillna("").astype(str)
    for line, name in enumerate(table["uuid"], start=2):
        if not is_safe_uuid(name):  # a name like ../x would make the downloader write (and delete) outside its root
            raise DataError(
                f"{path} line {line}: uuid {name!r} is not a plain folder name; delete the file to start over"
            )
    repeated = table["uuid"][table["uuid"].duplicated()]
    if len(repeated):
        raise DataError(f"{path}: uuid {repeated.iloc[0]} appears more than once")
    return table[list(columns)].reset_index(drop=True)


# -- what a source supplies -------------------------------------------------------------------


class RunSettings(Protocol):
    """The settings every downloader has (its own dataclass adds the rest)."""

    @property
    def out_dir(self) -> Path:
        """Dataset root to write, resume or extend."""

    @property
    def concurrency(self) -> int:
        """Rows fetched at the same time."""

    @property
    def rate_per_s(self) -> float:
        """Most requests started per second."""

    @property
    def max_retries(self) -> int:
        """Retries per request after the first attempt."""

    @property
    def backoff_s(self) -> float:
        """First retry delay, seconds."""

    @property
    def max_retry_after_s(self) -> float:
        """Longest ``Retry-After`` obeyed, seconds; a longer one fails the row for the next run."""

    @property
    def timeout_s(self) -> float:
        """Total time allowed for one request, seconds."""

    @property
    def save_every(self) -> int:
        """Rewrite the tables after this many finished rows."""

    def check(self) -> None:
        """Raise :class:`~geoguess_utils.errors.ConfigError` for values that cannot work."""


class DownloadSource(ABC):
    """One downloader's own part: its plan, its requests and what each row means.

    Subclasses set the class attributes and implement the abstract methods; the driver
    calls them in this order: :meth:`check`, :meth:`plan`, :meth:`planned_rows`,
    :meth:`opening_line`, :meth:`prepare`, :meth:`start`, then :meth:`next_row` and
    :meth:`fetch_row` from every worker, :meth:`write_outputs` on every save,
    :meth:`progress_line` and :meth:`summary_line`.

    Attributes:
        name: Short name; requests carry the User-Agent ``geoguess-<name>``.
        status_csv: File name of the status table in the root.
        status_columns: Columns of the status table.
        text_columns: Its text columns.
        final_statuses: Statuses a later run does not retry.
        staging_dirname: Folder in the root where a location's views wait until all four are there.
        keep_staged_views: Keep views staged by a failed row for the next run (otherwise
            the staging folder is removed at the end).
        stop_error: Raised (with a message) when the whole download cannot go on.
        notice: The terms line said before anything is fetched.
        settings: This run's settings.
        secret: The user's key or token; removed from everything written or said.
        run: The run in progress (set by :meth:`prepare`).
        queue: Rows still to hand out (set by :meth:`start`).
    """

    name: ClassVar[str]
    status_csv: ClassVar[str]
    status_columns: ClassVar[tuple[str, ...]]
    text_columns: ClassVar[tuple[str, ...]]
    final_statuses: ClassVar[frozenset[str]]
    staging_dirname: ClassVar[str]
    keep_staged_views: ClassVar[bool] = False
    stop_error: ClassVar[type[Exception]]
    notice: ClassVar[str]
    run: DownloadRun

    def __init__(self, settings: RunSettings, secret: str) -> None:
        self.settings = settings
        self.secret = secret
        self.queue: list[int] = []

    @property
    def root(self) -> Path:
        """The dataset root."""
        return Path(self.settings.out_dir)

    def check(self) -> None:
        """Refuse unusable settings or roots before anything is read or fetched."""
        self.settings.check()

    @abstractmethod
    def plan(self, existing: pd.DataFrame | None) -> pd.DataFrame:
        """The status table to work on: the earlier one (``None`` when none), extended as needed."""

    def planned_rows(self, table: pd.DataFrame) -> range:
        """Row labels of ``table`` this run is about (all of them by default)."""
        return range(len(table))

    def prepare(self, run: DownloadRun) -> None:
        """Remember the run; subclasses also read what they need from the root here."""
        self.run = run

    def start(self, todo: list[int]) -> None:
        """Receive the unfinished rows, just before the workers start."""
        self.queue = list(todo)

    def next_row(self) -> int | None:
        """The next row to fetch, ``None`` when none may start now (the default hands out ``todo`` in order)."""
        return self.queue.pop(0) if self.queue else None

    @abstractmethod
    async def fetch_row(self, i: int) -> None:
        """Do one row's work and record the outcome with :meth:`DownloadRun.set`.

        A failure of this row alone should end as a status (``FAILED``); an exception
        stops the whole download (after a final save).
        """

    @abstractmethod
    def write_outputs(self, table: pd.DataFrame) -> None:
        """Write the root's other files (``data.csv``, ...) from the status table just saved."""

    @abstractmethod
    def opening_line(self, table: pd.DataFrame, todo: list[int]) -> str:
        """The line said before fetching starts."""

    @abstractmethod
    def progress_line(self, progress: Progress) -> str:
        """The line said after each periodic save."""

    @abstractmethod
    def summary_line(self, table: pd.DataFrame) -> str:
        """The line said when the run is over."""

    def describe_failure(self, exc: BaseException) -> str:
        """The text of a request's last failure, for the row's error."""
        return describe_exception(exc)


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Progress:
    """What the workers finished so far.

    Attributes:
        total: Rows that were unfinished when the run started.
        done: Rows fetched since (each counted once, whatever its outcome).
        counts: Status -> rows fetched since that ended with it.
    """

    total: int = 0
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class DownloadRun:
    """The state shared by a run's workers: the table, the session, the limiter, the folders.

    Attributes:
        source: The downloader being driven.
        session: An open ``aiohttp.ClientSession``.
        table: The status table (a source may replace it with a longer one).
        root: The dataset root.
        images: The root's image folder.
        staging: Where views wait until their location is complete.
        in_flight: Rows being fetched right now.
        stopped: Set after a fatal error: no further row starts.
        progress: What the workers finished.
    """

    def __init__(self, source: DownloadSource, session: Any, table: pd.DataFrame, say: Callable[[str], None]) -> None:
        self.source = source
        self.session = session
        self.table = table
        self.say = say
        self.root = source.root
        self.images = image_dir(self.root)
        self.staging = self.root / source.staging_dirname
        self.limiter = RateLimiter(source.settings.rate_per_s)
        self.in_flight = 0
        self.stopped = False
        self.progress = Progress()
        self._changed = asyncio.Condition()

    # -- helpers for the source ---------------------------------------------------------------

    def clean(self, text: object) -> str:
        """``text`` without the user's secret."""
        return redact(text, self.source.secret)

    def set(self, i: int, **values: Any) -> None:
        """Store values in row ``i`` of the table; text is stored without the secret."""
        for column, value in values.items():
            self.table.loc[i, column] = self.clean(value) if isinstance(value, str) else value

    def request_timeout(self) -> Any:
        """An ``aiohttp.ClientTimeout`` of the settings' ``timeout_s`` in total."""
        import aiohttp

        return aiohttp.ClientTimeout(total=self.source.settings.timeout_s)

    async def retrying(self, attempt: Callable[[], Awaitable[T]], host: str) -> T:
        """Await ``attempt()`` under the rate limit, retrying it with backoff.

        Args:
            attempt: One request; raises ``RetryableError``, an aiohttp error or a timeout
                when it may be tried again.
            host: The server's name, for the message when it cannot be reached.

        Returns:
            What the successful attempt returned.

        Raises:
            RowError: Every attempt failed; the message ends with :meth:`DownloadSource.describe_failure`.
            Exception: The source's ``stop_error`` when the last attempt could not connect at all.
        """
        settings = self.source.settings
        return await with_retries(
            attempt,
            self.limiter,
            settings.max_retries,
            settings.backoff_s,
            unreachable=lambda exc: self.source.stop_error(
                f"cannot reach {host}: {self.clean(str(exc))}. This command needs internet access; "
                "run it again when online and it resumes where it stopped"
            ),
            describe=lambda exc: self.clean(self.source.describe_failure(exc)),
            max_retry_after_s=settings.max_retry_after_s,
        )

    def views_complete(self, name: str) -> bool:
        """Whether location ``name`` already has its four views in the image folder."""
        return (self.images / name).is_dir() and has_all_views(self.images / name)

    def publish(self, name: str) -> None:
        """Move the complete staging folder of ``name`` into the image folder (replacing an old one)."""
        final = self.images / name
        self.images.mkdir(parents=True, exist_ok=True)
        if final.exists():
            shutil.rmtree(final)
        os.replace(self.staging / name, final)

    # -- the loop --------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the status table (atomically, errors without the secret), then the source's files."""
        table = self.table.copy()
        table["error"] = table["error"].map(self.clean)
        atomic_write_csv(table, self.root / self.source.status_csv)
        self.source.write_outputs(table)

    def _next(self) -> int | None:
        return None if self.stopped else self.source.next_row()

    async def _worker(self) -> None:
        while True:
            async with self._changed:
                i = self._next()
                while i is None and self.in_flight > 0:  # a row still running may fail and call for another
                    await self._changed.wait()
                    i = self._next()
                if i is None:
                    return
                self.in_flight += 1
            try:
                await self.source.fetch_row(i)
            except BaseException:  # a fatal error (key refused, no network): start nothing more
                self.stopped = True
                raise
            finally:
                async with self._changed:
                    self.in_flight -= 1
                    self._changed.notify_all()
            status = str(self.table.loc[i, "status"])
            self.progress.counts[status] = self.progress.counts.get(status, 0) + 1
            self.progress.done += 1
            if self.progress.done % self.source.settings.save_every == 0:
                self.save()
                self.say(self.source.progress_line(self.progress))

    async def run(self, todo: list[int]) -> None:
        """Fetch the rows (and any the source adds) with ``concurrency`` workers; always save at the end."""
        self.progress.total = len(todo)
        self.source.start(todo)
        workers = [asyncio.create_task(self._worker()) for _ in range(self.source.settings.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.save()
            if self.staging.is_dir():
                if not self.source.keep_staged_views:
                    shutil.rmtree(self.staging, ignore_errors=True)
                elif not any(self.staging.iterdir()):
                    self.staging.rmdir()


async def run_download(source: DownloadSource, say: Callable[[str], None] = print, session: Any = None) -> pd.DataFrame:
    """Download, resume or extend a dataset root with ``source``.

    Args:
        source: The downloader, with its settings and secret.
        say: Receives the terms notice, progress lines and the summary (without the secret).
        session: An open ``aiohttp.ClientSession`` to use; by default one is opened and closed.

    Returns:
        The status table, one row per planned row (also written to the source's status CSV).

    Raises:
        ConfigError: For unusable settings (from :meth:`DownloadSource.check`).
        DataError: For an unreadable status table or root.
        Exception: The source's ``stop_error`` when the download cannot go on; what was
            fetched so far is saved and the next run resumes.
    """
    import aiohttp

    source.check()

    def tell(line: str) -> None:
        say(redact(line, source.secret))

    existing = read_status_table(source.root / source.status_csv, source.status_columns, source.text_columns)
    table = source.plan(existing)
    todo = unfinished_rows(table, image_dir(source.root), source.final_statuses, source.planned_rows(table))
    tell(source.notice)
    tell(source.opening_line(table, todo))
    own_session = session is None
    if own_session:
        connector = aiohttp.TCPConnector(limit=source.settings.concurrency * 2)
        session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": f"geoguess-{source.name}"})
    try:
        run = DownloadRun(source, session, table, tell)
        source.prepare(run)
        source.root.mkdir(parents=True, exist_ok=True)
        await run.run(todo)
        table = run.table
    finally:
        if own_session:
            await session.close()
    tell(source.summary_line(table))
    return table


def download(source: DownloadSource, say: Callable[[str], None] = print) -> pd.DataFrame:
    """:func:`run_download` on a fresh event loop; an ``OSError`` becomes the source's ``stop_error``.

    Args:
        source: The downloader, with its settings and secret.
        say: Receives progress lines (the secret never appears).

    Returns:
        The status table.
    """
    try:
        return asyncio.run(run_download(source, say))
    except OSError as exc:
        raise source.stop_error(f"download stopped: {redact(exc, source.secret)}") from exc
