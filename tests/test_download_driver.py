"""The resumable download driver on its own, with a fake source that needs no network."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from geoguess_utils.datasets import download_driver as driver
from geoguess_utils.datasets.http_retry import RetryableError, RowError
from geoguess_utils.errors import ConfigError, DataError

SECRET = "s3cret-token-42"
COLUMNS = ("row_idx", "status", "uuid", "attempts", "error")


class FakeStopError(Exception):
    pass


@dataclass(frozen=True)
class FakeSettings:
    out_dir: Path
    n_locations: int = 5
    concurrency: int = 2
    rate_per_s: float = 1000.0
    max_retries: int = 0
    backoff_s: float = 0.001
    max_retry_after_s: float = 300.0
    timeout_s: float = 5.0
    save_every: int = 2

    def check(self) -> None:
        if self.n_locations < 1:
            raise ConfigError("n_locations must be at least 1")


class FakeSource(driver.DownloadSource):
    """Rows ``loc-0``... whose outcome is scripted: ok, fail (one view staged), empty (final), fatal."""

    name = "fake"
    status_csv = "fake_status.csv"
    status_columns = COLUMNS
    text_columns = ("status", "uuid", "error")
    final_statuses = frozenset({"OK", "EMPTY"})
    staging_dirname = ".staging"
    keep_staged_views = True
    stop_error = FakeStopError
    notice = "terms of the fake source"

    def __init__(self, settings: FakeSettings, outcomes: dict[int, str] | None = None) -> None:
        super().__init__(settings, SECRET)
        self.n = settings.n_locations
        self.outcomes = outcomes or {}
        self.fetched: list[int] = []

    def plan(self, existing: pd.DataFrame | None) -> pd.DataFrame:
        have = 0 if existing is None else len(existing)
        new = pd.DataFrame(
            {
                "row_idx": range(have, max(have, self.n)),
                "status": "PENDING",
                "uuid": [f"loc-{i}" for i in range(have, max(have, self.n))],
                "attempts": 0,
                "error": "",
            }
        )
        return new if existing is None else pd.concat([existing, new], ignore_index=True)

    async def fetch_row(self, i: int) -> None:
        run = self.run
        self.fetched.append(i)
        name = str(run.table.loc[i, "uuid"])
        run.set(i, attempts=int(run.table.loc[i, "attempts"]) + 1)
        await asyncio.sleep(0)
        outcome = self.outcomes.get(i, "ok")
        if outcome == "fatal":
            raise FakeStopError(f"refused key {SECRET}")
        if outcome == "empty":
            run.set(i, status="EMPTY", error="nothing here")
            return
        folder = run.staging / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "0.jpg").write_bytes(b"view")
        if outcome == "fail":
            run.set(i, status="FAILED", error=f"GET /x?key={SECRET} failed ({SECRET})")
            return
        for heading in (90, 180, 270):
            (folder / f"{heading}.jpg").write_bytes(b"view")
        run.publish(name)
        run.set(i, status="OK", error="")

    def write_outputs(self, table: pd.DataFrame) -> None:
        table[table["status"] == "OK"][["uuid"]].to_csv(self.root / "data.csv", index=False)

    def opening_line(self, table: pd.DataFrame, todo: list[int]) -> str:
        return f"{len(todo)} to do, key={SECRET}"

    def progress_line(self, progress: driver.Progress) -> str:
        return f"{progress.done}/{progress.total} {dict(sorted(progress.counts.items()))}"

    def summary_line(self, table: pd.DataFrame) -> str:
        return f"finished {SECRET}: {table['status'].value_counts().to_dict()}"


def _run(source: FakeSource) -> tuple[pd.DataFrame, list[str]]:
    lines: list[str] = []
    table = asyncio.run(driver.run_download(source, lines.append, session=object()))
    return table, lines


def test_failed_rows_are_retried_done_rows_skipped_and_missing_views_refetched(tmp_path: Path) -> None:
    settings = FakeSettings(tmp_path / "root")
    images = settings.out_dir / "images"
    first = FakeSource(settings, {1: "fail", 3: "empty"})
    table, lines = _run(first)

    assert list(table["status"]) == ["OK", "FAILED", "OK", "EMPTY", "OK"]
    assert sorted(first.fetched) == [0, 1, 2, 3, 4]
    status = pd.read_csv(settings.out_dir / "fake_status.csv", keep_default_na=False)
    assert list(status.columns) == list(COLUMNS)
    assert list(status["status"]) == list(table["status"])
    assert "key=<key>" in status.loc[1, "error"]
    assert sorted(pd.read_csv(settings.out_dir / "data.csv")["uuid"]) == ["loc-0", "loc-2", "loc-4"]
    assert sorted(p.name for p in images.iterdir()) == ["loc-0", "loc-2", "loc-4"]
    assert sorted(p.name for p in (images / "loc-0").iterdir()) == ["0.jpg", "180.jpg", "270.jpg", "90.jpg"]
    assert (settings.out_dir / ".staging" / "loc-1" / "0.jpg").is_file()  # kept for the next run
    assert lines[0] == "terms of the fake source" and lines[1].startswith("5 to do, key=<key>")
    assert sum(line.startswith(("2/5", "4/5")) for line in lines) == 2  # a progress line after every 2 rows
    assert lines[-1].startswith("finished <key>:")
    written = "".join(p.read_text() for p in settings.out_dir.rglob("*.csv"))
    assert SECRET not in written and not any(SECRET in line for line in lines)

    # Rerun with one OK location's views gone: it is reset and fetched again, with the failed row.
    (images / "loc-2" / "90.jpg").unlink()
    second = FakeSource(settings)
    table, lines = _run(second)
    assert sorted(second.fetched) == [1, 2]
    assert list(table["status"]) == ["OK", "OK", "OK", "EMPTY", "OK"]
    assert list(table["attempts"]) == [1, 2, 2, 1, 1]
    assert lines[1].startswith("2 to do")
    assert not (settings.out_dir / ".staging").exists()  # emptied, then removed

    # Nothing left: a third run fetches nothing; a bigger plan fetches only the new rows.
    third = FakeSource(settings)
    _run(third)
    assert third.fetched == []
    bigger = FakeSource(replace(settings, n_locations=7))
    table, _ = _run(bigger)
    assert sorted(bigger.fetched) == [5, 6] and len(table) == 7


def test_a_fatal_error_stops_new_rows_saves_and_resumes(tmp_path: Path) -> None:
    settings = FakeSettings(tmp_path / "root", concurrency=1)
    source = FakeSource(settings, {2: "fatal"})
    with pytest.raises(FakeStopError):
        _run(source)
    assert source.fetched == [0, 1, 2]  # row 3 never started
    status = pd.read_csv(settings.out_dir / "fake_status.csv", keep_default_na=False)
    assert list(status["status"]) == ["OK", "OK", "PENDING", "PENDING", "PENDING"]

    again = FakeSource(settings)
    table, _ = _run(again)
    assert again.fetched == [2, 3, 4]
    assert list(table["status"]) == ["OK"] * 5


def test_after_a_fatal_error_no_other_worker_starts_a_row(tmp_path: Path) -> None:
    settings = FakeSettings(tmp_path / "root", n_locations=6, concurrency=2)
    source = FakeSource(settings, {0: "fatal"})
    with pytest.raises(FakeStopError):
        _run(source)
    assert sorted(source.fetched) == [0, 1]  # the row already running ends; none starts after it


def test_staged_views_are_removed_when_the_source_does_not_keep_them(tmp_path: Path) -> None:
    class Forgetful(FakeSource):
        keep_staged_views = False

    settings = FakeSettings(tmp_path / "root")
    table, _ = _run(Forgetful(settings, {0: "fail"}))
    assert table.loc[0, "status"] == "FAILED"
    assert not (settings.out_dir / ".staging").exists()


def test_settings_are_checked_before_anything_is_written(tmp_path: Path) -> None:
    settings = FakeSettings(tmp_path / "root", n_locations=0)
    with pytest.raises(ConfigError):
        _run(FakeSource(settings))
    assert not settings.out_dir.exists()


def test_retrying_redacts_the_last_failure(tmp_path: Path) -> None:
    source = FakeSource(FakeSettings(tmp_path / "root", max_retries=2))
    calls = []

    async def attempt() -> bytes:
        calls.append(1)
        raise RetryableError(f"HTTP 500 for /x?key={SECRET}", retry_after_s=0.0)

    async def go() -> None:
        run = driver.DownloadRun(source, object(), source.plan(None), lambda _: None)
        await run.retrying(attempt, "example.org")

    with pytest.raises(RowError) as info:
        asyncio.run(go())
    assert len(calls) == 3
    assert str(info.value).startswith("gave up after 3 attempts: RetryableError: HTTP 500 for /x?key=<key>")
    assert SECRET not in str(info.value)


def test_status_table_reading_refuses_unsafe_or_repeated_uuids(tmp_path: Path) -> None:
    path = tmp_path / "status.csv"
    assert driver.read_status_table(path, COLUMNS, ("status", "uuid", "error")) is None
    rows = {"row_idx": [0, 1], "status": ["OK", "NA"], "uuid": ["a", "b"], "attempts": [1, 0], "error": ["", ""]}
    pd.DataFrame(rows).to_csv(path, index=False)
    table = driver.read_status_table(path, COLUMNS, ("status", "uuid", "error"))
    assert table is not None and list(table["status"]) == ["OK", "NA"] and list(table["error"]) == ["", ""]
    with pytest.raises(DataError, match="missing columns"):
        driver.read_status_table(path, (*COLUMNS, "extra"), ("status", "uuid", "error"))
    pd.DataFrame(rows | {"uuid": ["a", "../b"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"line 3: uuid '\.\./b' is not a plain folder name"):
        driver.read_status_table(path, COLUMNS, ("status", "uuid", "error"))
    pd.DataFrame(rows | {"uuid": ["a", "a"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="appears more than once"):
        driver.read_status_table(path, COLUMNS, ("status", "uuid", "error"))


def test_unfinished_rows_resets_ok_rows_without_their_views(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    for heading in (0, 90, 180, 270):
        (images / "a" / f"{heading}.jpg").write_bytes(b"x")
    (images / "b").mkdir()
    (images / "b" / "0.jpg").write_bytes(b"x")
    table = pd.DataFrame({"status": ["OK", "OK", "EMPTY", "FAILED", "OK"], "uuid": ["a", "b", "c", "d", "e"]})
    todo = driver.unfinished_rows(table, images, frozenset({"OK", "EMPTY"}), range(4))
    assert todo == [1, 3]
    assert list(table["status"]) == ["OK", "PENDING", "EMPTY", "FAILED", "OK"]  # row 4 is out of range


def test_jpeg_sniffing() -> None:
    assert driver.looks_like_jpeg(b"\xff\xd8 body \xff\xd9")
    assert driver.looks_like_jpeg(b"\xff\xd8 body \xff\xd9\x00\x00")  # zero padding after EOI
    assert not driver.looks_like_jpeg(b"\xff\xd8 body cut")
    assert not driver.looks_like_jpeg(b"\x89PNG\r\n\x1a\n\xff\xd9")
    assert not driver.looks_like_jpeg(b"\xff\xd8\xff\xd9")
