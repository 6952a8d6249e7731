"""The Mapillary downloader against a mock Graph API on 127.0.0.1 (never the real network)."""

from __future__ import annotations

import io
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _mapillary_mock import TOKEN, MockMapillary, seed_of
from PIL import Image

from geoguess_utils.cli import main
from geoguess_utils.datasets import mapillary, mapillary_records
from geoguess_utils.datasets.synthetic.render import render_location
from geoguess_utils.errors import ConfigError, DataError

SIZE = 32


def _settings(root: Path, server: MockMapillary, n: int, **changes: object) -> mapillary.MapillarySettings:
    base = mapillary.MapillarySettings(
        token=TOKEN,
        n_locations=n,
        out_dir=root,
        seed=5,
        size=SIZE,
        concurrency=1,
        rate_per_s=1000.0,
        max_retries=2,
        backoff_s=0.01,
        timeout_s=10.0,
        api_url=server.base,
    )
    return replace(base, **changes)


def _download(settings: mapillary.MapillarySettings) -> tuple[pd.DataFrame, list[str]]:
    lines: list[str] = []
    return mapillary.download_mapillary(settings, lines.append), lines


def _statuses(table: pd.DataFrame) -> list[str]:
    return list(table.sort_values("row_idx")["status"])


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-12))


def _assert_no_token(root: Path, lines: list[str]) -> None:
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".md"):
            assert "SECRET" not in path.read_text(encoding="utf-8"), path
    assert not any("SECRET" in line for line in lines)


def test_success_builds_a_root_that_validates(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary() as server:
        table, lines = _download(_settings(root, server, 3, concurrency=3))
    assert _statuses(table) == ["OK"] * 3
    data = pd.read_csv(root / "data.csv", dtype=str)
    assert list(data.columns) == list(mapillary.DATA_COLUMNS)
    assert set(data["source"]) == {"mapillary"} and set(data["licence"]) == {"CC BY-SA 4.0"}
    assert set(data["image_id"]) <= {str(5000 + n) for n in range(3)}  # the nearest panorama, never the far one
    assert all(c.startswith("driver_") for c in data["creator"])
    assert all(t.startswith("2021-07-01T") and t.endswith("Z") for t in data["captured_at"])
    attribution = (root / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in attribution
    for row in data.itertuples():
        assert row.image_id in attribution and row.creator in attribution and row.uuid in attribution
        for heading in (0, 90, 180, 270):
            assert _pixels(root / "images" / row.uuid / f"{heading}.jpg").shape == (SIZE, SIZE, 3)
    assert main(["validate", str(root)]) == 0
    # The token went to the API in the header only: never in a query, never to the image host, never to disk.
    assert server.auth_to_api == {f"OAuth {TOKEN}"}
    assert server.auth_to_images and set(server.auth_to_images) == {""}
    assert server.query_tokens == []
    _assert_no_token(root, lines)
    assert not (root / mapillary.STAGING_DIRNAME).exists()


def test_views_point_at_their_true_headings(tmp_path: Path) -> None:
    """The whole chain: a synthetic panorama with a computed compass angle -> the views drawn for 0/90/180/270."""
    root = tmp_path / "mly"
    with MockMapillary() as server:
        table, _ = _download(_settings(root, server, 2, size=48))
        served = dict(server.served)
    for row in table.itertuples():
        s = served[row.image_id]
        assert row.compass_angle == pytest.approx(s.compass)  # computed_compass_angle, not the raw EXIF angle
        drawn = render_location(s.lat, s.lon, seed=seed_of(s.n), size=48)
        for heading in (0, 90, 180, 270):
            got = _pixels(root / "images" / row.uuid / f"{heading}.jpg")
            same = _psnr(got, drawn[heading])
            assert same > 20.0, f"compass {s.compass}, heading {heading}: {same:.1f} dB"
            for other in {0, 90, 180, 270} - {heading}:
                assert same > _psnr(got, drawn[other]) + 2.0


def test_no_panorama_or_a_used_one_draws_another_point(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary(searches=["empty", "ok", "same", "empty"]) as server:
        table, _ = _download(_settings(root, server, 2))
    assert _statuses(table) == ["NO_PANORAMA", "OK", "DUPLICATE", "NO_PANORAMA", "OK"]
    assert server.calls["search"] == 5
    assert len(pd.read_csv(root / "data.csv")) == 2
    status = pd.read_csv(root / mapillary.STATUS_CSV)
    assert len(status) == 5 and status["uuid"].is_unique


def test_a_panorama_off_the_mainland_draws_another_point(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary(searches=["sea"]) as server:
        table, _ = _download(_settings(root, server, 1))
    assert _statuses(table) == ["OFF_MAINLAND", "OK"]
    assert server.calls["thumb 5000"] == 0  # its image was never fetched
    assert main(["validate", str(root)]) == 0


def test_no_server_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = mapillary.MapillarySettings(
        token=TOKEN, n_locations=1, out_dir=tmp_path / "mly", size=SIZE, max_retries=1, backoff_s=0.01,
        api_url=f"http://127.0.0.1:{port}",
    )  # fmt: skip
    with pytest.raises(mapillary.MapillaryError, match="cannot reach") as info:
        _download(settings)
    assert "SECRET" not in str(info.value)
    status = pd.read_csv(tmp_path / "mly" / mapillary.STATUS_CSV)
    assert list(status["status"]) == ["PENDING"]  # recorded, and retried by the next run


def test_429_then_success_is_retried(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary(searches=["429", "429"], images={"5000": ["429"]}) as server:
        table, _ = _download(_settings(root, server, 1))
    assert _statuses(table) == ["OK"]
    assert server.calls["search"] == 3 and server.calls["thumb 5000"] == 2
    assert int(table["attempts"].iloc[0]) == 1


def test_persistent_500_fails_the_point_and_another_is_drawn(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary(searches=["500"] * 3, images={"5000": ["500"]}) as server:
        table, _ = _download(_settings(root, server, 1, max_retries=2))
    assert _statuses(table) == ["FAILED", "OK"]
    assert "gave up after 3 attempts: HTTP 500" in table["error"].iloc[0]
    assert server.calls["search"] == 4
    assert server.calls["thumb 5000"] == 2  # one 500, then the image


def test_connection_dropped_mid_image_is_retried(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary(images={"5000": ["drop", "drop"]}) as server:
        table, _ = _download(_settings(root, server, 1))
    assert _statuses(table) == ["OK"]
    assert server.calls["thumb 5000"] == 3
    assert main(["validate", str(root)]) == 0


def test_truncated_jpeg_fails_the_location_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    with MockMapillary(images={"5000": ["cut"] * 3}) as server:
        table, _ = _download(_settings(root, server, 1, max_retries=2))
    assert _statuses(table) == ["FAILED", "OK"]
    assert "truncated JPEG" in table["error"].iloc[0]
    assert server.calls["thumb 5000"] == 3
    failed = table["uuid"].iloc[0]
    assert not (root / "images" / failed).exists()
    assert not (root / mapillary.STAGING_DIRNAME).exists()
    assert failed not in set(pd.read_csv(root / "data.csv")["uuid"])


@pytest.mark.parametrize(("action", "message"), [("big", "more than the limit"), ("html", "not a JPEG image")])
def test_oversized_or_non_image_download_fails_at_once(tmp_path: Path, action: str, message: str) -> None:
    root = tmp_path / "mly"
    with MockMapillary(images={"5000": [action]}, big_bytes=400_000) as server:
        table, _ = _download(_settings(root, server, 1, max_image_bytes=200_000))
    assert _statuses(table) == ["FAILED", "OK"]
    assert message in table["error"].iloc[0]
    assert server.calls["thumb 5000"] == 1  # not retried


def test_not_a_360_image_fails_the_location() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 90, 90)).save(buffer, format="JPEG")
    with pytest.raises(mapillary.RowError, match="not a 2:1 equirectangular"):
        mapillary.cut_views(buffer.getvalue(), 0.0, 16, max_pixels=10_000)
    with pytest.raises(mapillary.RowError, match="more than the limit"):
        mapillary.cut_views(buffer.getvalue(), 0.0, 16, max_pixels=1000)


def _foreign_root(root: Path) -> str:
    """A root made elsewhere: one location with its own data.csv row and four views."""
    name = "0b6f2c1e-3f7a-4c1b-9d2e-5a6b7c8d9e0f"
    folder = root / "images" / name
    folder.mkdir(parents=True)
    for heading in (0, 90, 180, 270):
        Image.new("RGB", (SIZE, SIZE), (heading % 250, 120, 60)).save(folder / f"{heading}.jpg", format="JPEG")
    (root / "data.csv").write_text(
        f"uuid,latitude,longitude,source,note\n{name},45.81500,15.98190,synthetic,kept as written\n", encoding="utf-8"
    )
    return name


def test_resume_extends_an_existing_root_and_never_truncates(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    foreign = _foreign_root(root)
    with MockMapillary(images={"5000": ["500"] * 3}) as server:
        first, _ = _download(_settings(root, server, 2, max_retries=2))
        assert _statuses(first) == ["FAILED", "OK", "OK"]
        data = pd.read_csv(root / "data.csv", dtype=str, keep_default_na=False)
        assert len(data) == 3
        kept = data[data["uuid"] == foreign].iloc[0]
        assert (kept["latitude"], kept["note"], kept["source"]) == ("45.81500", "kept as written", "synthetic")
        assert main(["validate", str(root)]) == 0
        searches = server.calls["search"]

        # The same command again: nothing to do, nothing fetched.
        again, _ = _download(_settings(root, server, 2))
        assert _statuses(again) == ["FAILED", "OK", "OK"] and server.calls["search"] == searches

        # Asking for one more: the failed point is retried first, from its stored image id.
        more, _ = _download(_settings(root, server, 3))
        assert _statuses(more) == ["OK", "OK", "OK"]
        assert server.calls["search"] == searches and server.calls["entity"] == 1
    data = pd.read_csv(root / "data.csv", dtype=str, keep_default_na=False)
    assert len(data) == 4 and foreign in set(data["uuid"]) and data["uuid"].is_unique
    assert main(["validate", str(root)]) == 0


def test_a_refused_token_stops_the_run_and_is_never_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mly"
    with MockMapillary(searches=["401"]) as server:
        with pytest.raises(mapillary.MapillaryError, match="refused the access token") as info:
            _download(_settings(root, server, 1))
        assert TOKEN not in str(info.value) and "<key>" in str(info.value)
        server.searches = ["401"]
        code = main(["download-mapillary", "--locations", "1", "--out", str(root), "--api-url", server.base,
                     "--token", TOKEN, "--size", str(SIZE)])  # fmt: skip
    assert code == 2
    out = capsys.readouterr()
    assert "refused the access token" in out.err
    assert "SECRET" not in out.out + out.err
    _assert_no_token(root, [])


def test_command_line_takes_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "cli"
    monkeypatch.setenv("MAPILLARY_TOKEN", TOKEN)
    with MockMapillary() as server:
        argv = ["download-mapillary", "--locations", "2", "--out", str(root), "--api-url", server.base]
        code = main([*argv, "--size", str(SIZE), "--seed", "1", "--rate", "500", "--concurrency", "2"])
    assert code == 0
    assert server.auth_to_api == {f"OAuth {TOKEN}"}
    out = capsys.readouterr().out
    assert "2 complete locations" in out and "SECRET" not in out
    assert main(["validate", str(root)]) == 0


def test_bad_settings_and_status_files_are_refused(tmp_path: Path) -> None:
    ok = mapillary.MapillarySettings(token=TOKEN, n_locations=2, out_dir=tmp_path)
    for change, message in [
        ({"token": " "}, "access token is needed"),
        ({"n_locations": 0}, "--locations"),
        ({"size": 8}, "--size"),
        ({"radius_m": 0.5}, "--radius-m"),
        ({"max_points": 1}, "--max-points"),
        ({"api_url": "ftp://x"}, "http"),
    ]:
        with pytest.raises(ConfigError, match=message):
            replace(ok, **change).check()
    (tmp_path / mapillary.STATUS_CSV).write_text("row_idx,status\n0,OK\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing columns"):
        mapillary.read_status(tmp_path / mapillary.STATUS_CSV)
    row = {c: "" for c in mapillary_records.STATUS_COLUMNS} | {"uuid": "../escape", "status": "OK", "attempts": "1"}
    pd.DataFrame([row]).to_csv(tmp_path / mapillary.STATUS_CSV, index=False)
    with pytest.raises(DataError, match="not a plain folder name"):
        mapillary.read_status(tmp_path / mapillary.STATUS_CSV)


@pytest.mark.parametrize("captured_at", [1e300, 99999999999999999, "soon", None, float("nan")])
def test_a_capture_time_no_calendar_holds_is_left_empty(captured_at) -> None:
    from geoguess_utils.datasets.mapillary_records import parse_candidate

    item = {
        "id": "1",
        "geometry": {"coordinates": [15.98, 45.81]},
        "compass_angle": 10.0,
        "thumb_2048_url": "http://x",
        "captured_at": captured_at,
    }
    parsed = parse_candidate(item)
    assert parsed is not None and parsed["captured_at"] == ""
    assert parse_candidate({**item, "captured_at": 1_600_000_000_000})["captured_at"] == "2020-09-13T12:26:40Z"


class _KilledError(Exception):
    """Stands for ``kill -9``: the run ends at once and writes nothing more."""


def _kill_after_publish(monkeypatch: pytest.MonkeyPatch, publishes: int) -> list[str]:
    """Make the download die right after its ``publishes``-th location folder is in place.

    From then on the run saves nothing (its final save included), as after ``kill -9``.
    Returns the uuids of the folders published before the kill.
    """
    from geoguess_utils.datasets.download_driver import DownloadRun

    published: list[str] = []
    real_publish, real_save = DownloadRun.publish, DownloadRun.save

    def publish(run: DownloadRun, name: str) -> None:
        if len(published) >= publishes:  # a location still in flight: the process is already gone
            raise _KilledError
        real_publish(run, name)
        published.append(name)
        if len(published) == publishes:
            raise _KilledError

    def save(run: DownloadRun) -> None:
        if len(published) < publishes:
            real_save(run)

    monkeypatch.setattr(DownloadRun, "publish", publish)
    monkeypatch.setattr(DownloadRun, "save", save)
    return published


@pytest.mark.parametrize(
    ("n", "concurrency", "searches", "publishes"),
    [
        (3, 1, [], 1),  # killed after the first location, before the first save
        (2, 1, ["empty", "empty"], 1),  # killed on a point planned to replace two without a panorama
        (3, 3, [], 2),  # killed with other locations in flight
    ],
)
def test_a_run_killed_at_any_moment_resumes_its_points_and_leaves_no_orphan_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, concurrency: int, searches: list[str], publishes: int
) -> None:
    root = tmp_path / "mly"
    with MockMapillary(searches=list(searches)) as server:
        with monkeypatch.context() as patch:
            published = _kill_after_publish(patch, publishes)
            with pytest.raises(_KilledError):
                _download(_settings(root, server, n, concurrency=concurrency))
        assert len(published) == publishes
        saved = pd.read_csv(root / mapillary.STATUS_CSV, dtype=str, keep_default_na=False)
        assert set(published) <= set(saved["uuid"])  # each folder's row was saved before its download began

        table, lines = _download(_settings(root, server, n, concurrency=concurrency))
    ok = table[table["status"] == "OK"]
    assert len(ok) == n
    assert set(published) <= set(ok["uuid"])  # the rerun finished the same points under the same uuids
    # A point searched again may get another panorama: its views are cut from the one its row names.
    assert all(server.calls[f"thumb {image}"] >= 1 for image in ok["image_id"])
    folders = {p.name for p in (root / "images").iterdir()}
    data = pd.read_csv(root / "data.csv", dtype=str, keep_default_na=False)
    assert folders == set(data["uuid"]) == set(ok["uuid"])
    assert len(folders) == len(ok)
    assert main(["validate", str(root)]) == 0
    assert not (root / mapillary.STAGING_DIRNAME).exists()
    assert not any("have no row" in line for line in lines)


def test_a_folder_without_a_row_is_reported_and_kept(tmp_path: Path) -> None:
    root = tmp_path / "mly"
    stray = root / "images" / "0b6f2c1e-3f7a-4c1b-9d2e-5a6b7c8d9e0f"
    stray.mkdir(parents=True)
    (stray / "0.jpg").write_bytes(b"not ours")
    with MockMapillary() as server:
        table, lines = _download(_settings(root, server, 1))
    assert _statuses(table) == ["OK"]
    assert (stray / "0.jpg").read_bytes() == b"not ours"
    assert stray.name not in set(table["uuid"])
    assert any("1 folder(s)" in line and stray.name in line and "untouched" in line for line in lines)
