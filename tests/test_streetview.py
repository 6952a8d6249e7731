"""The Street View downloader against a small mock server on 127.0.0.1 (never the real network)."""

from __future__ import annotations

import asyncio
import functools
import io
import socket
import struct
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web
from PIL import Image

from geoguess_utils.data import layout
from geoguess_utils.datasets import streetview
from geoguess_utils.errors import ConfigError, DataError

KEY = "test-key-0123456789"


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A complete 16x16 JPEG whose frame header claims ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 30)).save(buffer, format="JPEG")
    payload = bytearray(buffer.getvalue())
    sof = payload.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    payload[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(payload)


@functools.cache
def _jpeg(seed: int, width: int = 640, height: int = 640) -> bytes:
    """A plain JPEG view; 640x640 pixels, the size the downloader asks for, unless told otherwise."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (seed * 40 % 256, 90, 160)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class MockStreetView:
    """Answers like the Street View metadata and image endpoints, with scripted failures.

    ``metadata`` maps a sample location string to a status (default ``OK``), or to a
    list of statuses answered one per request before ``OK``;
    ``scripts`` maps ``(pano, heading)`` to a list of actions consumed one per request
    (``"429"``, ``"500"``, ``"drop"``, ``"cut"``, ``"404"``, ``"bomb"``: a small JPEG declaring
    20000x20000 pixels, ``"tiny"``: a whole 8x8 JPEG, ``"short"``: a whole 640x480 JPEG,
    ``"echo"``: HTTP 400 whose text repeats the request URL), then success.
    A metadata status ``"INVALID_REQUEST"`` answers, as Google does, with an error message
    that repeats the request URL, key included.
    """

    def __init__(self) -> None:
        self.metadata: dict[str, str | list[str]] = {}
        self.scripts: dict[tuple[str, int], list[str]] = {}
        self.always_fail: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.keys: set[str] = set()

    def make_app(self) -> web.Application:
        """A fresh application (one per event loop) serving this mock's state."""
        app = web.Application()
        app.router.add_get("/sv/metadata", self._metadata)
        app.router.add_get("/sv", self._image)
        return app

    async def _metadata(self, request: web.Request) -> web.Response:
        self.keys.add(request.query.get("key", ""))
        location = request.query["location"]
        self.calls[f"meta {location}"] += 1
        planned = self.metadata.get(location, "OK")
        status = (planned.pop(0) if planned else "OK") if isinstance(planned, list) else planned
        malformed = {
            "LIST": [1, 2],
            "NULL": None,
            "LOCATION_TEXT": {"status": "OK", "pano_id": "p", "location": "abc"},
            "LAT_TEXT": {"status": "OK", "pano_id": "p", "location": {"lat": "abc", "lng": 15.0}},
        }
        if status in malformed:
            return web.json_response(malformed[status])
        if status == "INVALID_REQUEST":
            return web.json_response({"status": status, "error_message": f"Invalid request: {request.url}"})
        if status != "OK":
            return web.json_response({"status": status, "error_message": f"{status} for {location}"})
        lat, lon = (float(v) for v in location.split(","))
        pano = f"pano-{location}"
        return web.json_response(
            {
                "status": "OK",
                "pano_id": pano,
                "location": {"lat": lat, "lng": lon},
                "date": "2021-07",
                "copyright": "© Google",
            }
        )

    async def _image(self, request: web.Request) -> web.StreamResponse:
        self.keys.add(request.query.get("key", ""))
        assert request.query["size"] == "640x640" and request.query["fov"] == "90" and request.query["pitch"] == "0"
        pano, heading = request.query["pano"], int(request.query["heading"])
        self.calls[f"image {pano} {heading}"] += 1
        body = _jpeg(heading + len(pano))
        script = self.scripts.get((pano, heading), [])
        action = script.pop(0) if script else ("500" if pano in self.always_fail else "ok")
        if action in ("429", "500", "404"):
            headers = {"Retry-After": "0"} if action == "429" else {}
            return web.Response(status=int(action), text="try later", headers=headers)
        if action == "endless":  # an image body that never ends (no length declared)
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
            await response.prepare(request)
            chunk = b"\xff\xd8" + b"\0" * (1 << 16)
            for _ in range(64):  # 4 MB, far past the test's 200 KB limit; a real attack would not stop
                await response.write(chunk)
            await response.write_eof()
            return response
        if action == "429-a-day":  # a server asking to wait for more than a day
            return web.Response(status=429, text="come back tomorrow", headers={"Retry-After": "100000"})
        if action == "drop":  # promise the whole file, send half, hang up
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        if action == "bomb":
            return web.Response(body=_jpeg_declaring(20000, 20000), content_type="image/jpeg")
        if action in ("tiny", "short"):  # a whole, valid JPEG, but smaller than the 640x640 asked for
            small = _jpeg(heading, 8, 8) if action == "tiny" else _jpeg(heading, 640, 480)
            return web.Response(body=small, content_type="image/jpeg")
        if action == "echo":
            return web.Response(status=400, text=f"bad request {request.url} ({request.query_string})")
        if action == "cut":  # a complete HTTP answer whose JPEG is truncated
            return web.Response(body=body[: len(body) // 2], content_type="image/jpeg")
        return web.Response(body=body, content_type="image/jpeg")


def _settings(tmp_path: Path, n: int, **changes: object) -> streetview.DownloadSettings:
    base = streetview.DownloadSettings(
        key=KEY,
        n_locations=n,
        out_dir=tmp_path / "sv",
        seed=3,
        concurrency=3,
        rate_per_s=500.0,
        backoff_s=0.01,
        timeout_s=5.0,
    )
    return replace(base, **changes)


def _run(server: MockStreetView, settings: streetview.DownloadSettings) -> tuple[pd.DataFrame, list[str]]:
    lines: list[str] = []

    async def go() -> pd.DataFrame:
        runner = web.AppRunner(server.make_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await streetview.download_async(
                replace(settings, base_url=f"http://127.0.0.1:{port}/sv"), lines.append
            )
        finally:
            await runner.cleanup()

    return asyncio.run(go()), lines


def _location(plan: pd.DataFrame, i: int) -> str:
    return f"{plan.loc[i, 'sample_latitude']:.6f},{plan.loc[i, 'sample_longitude']:.6f}"


def _pano(plan: pd.DataFrame, i: int) -> str:
    return f"pano-{_location(plan, i)}"


def test_download_handles_every_failure_kind(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 7)
    plan = streetview.plan_samples(7, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.metadata[_location(plan, 1)] = "ZERO_RESULTS"
    server.scripts[(_pano(plan, 2), 90)] = ["429"]
    server.scripts[(_pano(plan, 3), 180)] = ["500", "500"]
    server.scripts[(_pano(plan, 4), 270)] = ["drop"]
    server.scripts[(_pano(plan, 5), 0)] = ["cut"]
    server.metadata[_location(plan, 6)] = ["OVER_QUERY_LIMIT"]

    table, lines = _run(server, settings)

    assert list(table["status"]) == ["OK", "ZERO_RESULTS", "OK", "OK", "OK", "OK", "OK"]
    assert server.calls[f"image {_pano(plan, 2)} 90"] == 2
    assert server.calls[f"image {_pano(plan, 3)} 180"] == 3
    assert server.calls[f"image {_pano(plan, 4)} 270"] == 2
    assert server.calls[f"image {_pano(plan, 5)} 0"] == 2
    assert server.calls[f"meta {_location(plan, 6)}"] == 2
    root = settings.out_dir
    data = pd.read_csv(root / layout.CSV_NAME)
    assert list(data.columns[:3]) == ["uuid", "latitude", "longitude"]
    assert set(data["source"]) == {"streetview"}
    assert sorted(data["uuid"]) == sorted(plan.loc[plan.index != 1, "uuid"])
    for row in data.itertuples():
        folder = root / layout.WRITTEN_IMAGE_DIR / row.uuid
        assert sorted(p.name for p in folder.iterdir()) == ["0.jpg", "180.jpg", "270.jpg", "90.jpg"]
        for heading in layout.HEADINGS:
            assert (folder / f"{heading}.jpg").read_bytes() == _jpeg(heading + len(row.panorama_id))
    assert not (root / layout.WRITTEN_IMAGE_DIR / plan.loc[1, "uuid"]).exists()
    assert not (root / streetview.STAGING_DIRNAME).exists()
    status = pd.read_csv(root / streetview.STATUS_CSV)
    assert set(streetview.STATUS_COLUMNS) <= set(status.columns)
    assert status.loc[1, "status"] == "ZERO_RESULTS"
    assert server.keys == {KEY}
    assert any("YOUR OWN" in line for line in lines)
    written = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert KEY.encode() not in written


@pytest.mark.timeout(120)
def test_malformed_metadata_answers_fail_their_point_and_the_run_goes_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 5)
    plan = streetview.plan_samples(5, settings.seed, settings.radius_m)
    server = MockStreetView()
    for i, kind in enumerate(["LIST", "NULL", "LOCATION_TEXT", "LAT_TEXT"]):
        server.metadata[_location(plan, i)] = kind
    table, _ = _run(server, settings)  # no crash, no row left PENDING
    assert list(table["status"]) == ["FAILED", "FAILED", "FAILED", "FAILED", "OK"]
    assert "not a JSON object" in table.loc[0, "error"] and "not a JSON object" in table.loc[1, "error"]
    assert all("no panorama id or location" in table.loc[i, "error"] for i in (2, 3))
    status = pd.read_csv(settings.out_dir / streetview.STATUS_CSV)
    assert "PENDING" not in set(status["status"])


@pytest.mark.timeout(120)
def test_an_endless_image_body_fails_its_point_without_being_held_in_memory(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 2, max_image_bytes=200_000)
    plan = streetview.plan_samples(2, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.scripts[(_pano(plan, 0), 180)] = ["endless"]
    table, _ = _run(server, settings)
    assert list(table["status"]) == ["FAILED", "OK"]
    assert "exceeds the limit of 200000 bytes" in table.loc[0, "error"]
    assert server.calls[f"image {_pano(plan, 0)} 180"] == 1  # refused, not retried
    with pytest.raises(ConfigError, match="max_image_bytes"):
        replace(settings, max_image_bytes=0).check()


@pytest.mark.timeout(120)
def test_a_retry_after_longer_than_the_cap_fails_the_point_for_the_next_run(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 3, max_retry_after_s=5.0)
    plan = streetview.plan_samples(3, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.scripts[(_pano(plan, 1), 90)] = ["429-a-day"]
    table, _ = _run(server, settings)  # returns at once: no day-long sleep
    assert list(table["status"]) == ["OK", "FAILED", "OK"]
    assert "Retry-After" in table.loc[1, "error"] and "100000" in table.loc[1, "error"]
    assert server.calls[f"image {_pano(plan, 1)} 90"] == 1
    status = pd.read_csv(settings.out_dir / streetview.STATUS_CSV)
    assert status.loc[1, "status"] == "FAILED"  # the status file is written, the point retried next run
    table, _ = _run(server, settings)
    assert list(table["status"]) == ["OK", "OK", "OK"]


def test_resume_skips_finished_points_and_refetches_only_missing_views(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 4, max_retries=1)
    plan = streetview.plan_samples(4, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.always_fail.add(_pano(plan, 2))  # every image of point 2 fails this time
    table, _ = _run(server, settings)
    assert list(table["status"]) == ["OK", "OK", "FAILED", "OK"]
    assert "gave up" in table.loc[2, "error"]
    images = settings.out_dir / layout.WRITTEN_IMAGE_DIR
    assert not (images / plan.loc[2, "uuid"]).exists()  # no partial folder among the finished ones

    server.always_fail.clear()
    server.calls.clear()
    bigger = replace(settings, n_locations=6)
    table, _ = _run(server, bigger)
    assert list(table["status"]) == ["OK"] * 6
    assert list(table["uuid"][:4]) == list(plan["uuid"])  # the earlier plan is kept and extended
    metadata_calls = {k for k in server.calls if k.startswith("meta")}
    assert metadata_calls == {f"meta {_location(table, i)}" for i in (4, 5)}  # point 2 kept its panorama id
    assert server.calls[f"image {_pano(plan, 0)} 0"] == 0
    assert all(server.calls[f"image {_pano(plan, 2)} {h}"] == 1 for h in layout.HEADINGS)
    assert len(list(images.iterdir())) == 6
    assert len(pd.read_csv(settings.out_dir / layout.CSV_NAME)) == 6


def test_partial_views_of_an_interrupted_point_are_reused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 1, max_retries=0)
    plan = streetview.plan_samples(1, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.scripts[(_pano(plan, 0), 180)] = ["500"]
    table, _ = _run(server, settings)
    assert table.loc[0, "status"] == "FAILED"
    server.calls.clear()
    table, _ = _run(server, settings)
    assert table.loc[0, "status"] == "OK"
    assert server.calls[f"image {_pano(plan, 0)} 0"] == 0  # already saved atomically before the failure
    assert server.calls[f"image {_pano(plan, 0)} 180"] == 1


def test_refused_key_stops_with_a_clear_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 2)
    plan = streetview.plan_samples(2, settings.seed, settings.radius_m)
    server = MockStreetView()
    for i in range(2):
        server.metadata[_location(plan, i)] = "REQUEST_DENIED"
    with pytest.raises(streetview.StreetViewError, match="denied"):
        _run(server, settings)
    assert (settings.out_dir / streetview.STATUS_CSV).exists()  # progress is saved for a later resume


def test_unreachable_server_fails_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free local port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = _settings(tmp_path, 1, max_retries=1, base_url=f"http://127.0.0.1:{port}/sv")
    with pytest.raises(streetview.StreetViewError, match=r"cannot reach.*internet"):
        streetview.download_streetview(settings, say=lambda _: None)


def test_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key"):
        streetview.download_streetview(_settings(tmp_path, 1, key=""), say=lambda _: None)
    with pytest.raises(ConfigError, match="locations"):
        streetview.download_streetview(_settings(tmp_path, 0), say=lambda _: None)


def test_plan_is_deterministic_and_on_the_mainland(tmp_path: Path) -> None:
    from geoguess_utils.geo import borders

    a = streetview.plan_samples(20, 5, 500)
    b = streetview.plan_samples(20, 5, 500)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(streetview.plan_samples(20, 6, 500))
    assert borders.is_on_land(a["sample_latitude"], a["sample_longitude"], variant="mainland").all()
    assert a["uuid"].str.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").all()
    extended = streetview.plan_samples(25, 5, 500, existing=a)
    pd.testing.assert_frame_equal(extended.iloc[:20], a)
    assert extended["uuid"].is_unique


def test_command_line_help_states_the_terms() -> None:
    import argparse

    from geoguess_utils.cli import download_streetview

    parser = argparse.ArgumentParser()
    download_streetview.add_arguments(parser)
    assert "YOUR OWN" in parser.format_help()


# -- hostile servers, existing roots ----------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, "AIza+secret/with=odd&chars"])
def test_the_key_never_reaches_a_file_or_a_line_even_when_the_server_echoes_it(tmp_path: Path, key: str) -> None:
    from urllib.parse import quote, quote_plus

    settings = _settings(tmp_path, 3, key=key, max_retries=0)
    plan = streetview.plan_samples(3, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.metadata[_location(plan, 0)] = "INVALID_REQUEST"  # Google repeats the URL, key and all
    server.scripts[(_pano(plan, 1), 90)] = ["echo"]
    table, lines = _run(server, settings)
    assert server.keys == {key}
    assert list(table["status"]) == ["INVALID_REQUEST", "FAILED", "OK"]
    assert "Invalid request" in table.loc[0, "error"] and "key=<key>" in table.loc[0, "error"]
    forms = {key, quote(key, safe=""), quote_plus(key)}
    written = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file())
    shown = "\n".join(lines) + "\n" + "\n".join(map(str, table["error"]))
    for form in forms:
        assert form not in written and form not in shown, form


def test_redaction_covers_encoded_keys_and_any_key_parameter() -> None:
    text = "GET https://x/sv?location=1,2&key=AIza%2Bsecret%2Fk&size=640 and key=other-key and monkey=fine"
    out = streetview.redact(text, "AIza+secret/k")
    assert "secret" not in out and "other-key" not in out
    assert out.count("key=<key>") == 2 and "monkey=fine" in out and "size=640" in out


def test_an_oversized_image_from_the_server_fails_its_location(tmp_path: Path) -> None:
    settings = _settings(tmp_path, 2, max_retries=0)
    plan = streetview.plan_samples(2, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.scripts[(_pano(plan, 1), 180)] = ["bomb"]
    table, _ = _run(server, settings)
    assert list(table["status"]) == ["OK", "FAILED"]
    assert "decompression bomb" in table.loc[1, "error"] and "180.jpg" in table.loc[1, "error"]
    root = settings.out_dir
    assert not (root / layout.WRITTEN_IMAGE_DIR / plan.loc[1, "uuid"]).exists()
    assert not any(p.name == "180.jpg" for p in (root / streetview.STAGING_DIRNAME).rglob("*"))
    assert list(pd.read_csv(root / layout.CSV_NAME)["uuid"]) == [plan.loc[0, "uuid"]]
    table, _ = _run(server, settings)  # the next run fetches the refused view again
    assert list(table["status"]) == ["OK", "OK"]


@pytest.mark.parametrize(("action", "size"), [("tiny", "8x8"), ("short", "640x480")])
def test_a_view_smaller_than_asked_for_fails_its_point(tmp_path: Path, action: str, size: str) -> None:
    settings = _settings(tmp_path, 2, max_retries=0)
    plan = streetview.plan_samples(2, settings.seed, settings.radius_m)
    server = MockStreetView()
    server.scripts[(_pano(plan, 1), 90)] = [action]
    table, _ = _run(server, settings)
    assert list(table["status"]) == ["OK", "FAILED"]
    error = table.loc[1, "error"]
    assert f"{size} pixels, smaller than the 640x640 asked for" in error
    assert plan.loc[1, "uuid"] in error and _pano(plan, 1) in error and "90.jpg" in error
    assert server.calls[f"image {_pano(plan, 1)} 90"] == 1  # refused at once, not retried
    root = settings.out_dir
    assert not (root / layout.WRITTEN_IMAGE_DIR / plan.loc[1, "uuid"]).exists()
    assert not any(p.name == "90.jpg" for p in (root / streetview.STAGING_DIRNAME).rglob("*"))
    assert list(pd.read_csv(root / layout.CSV_NAME)["uuid"]) == [plan.loc[0, "uuid"]]
    table, _ = _run(server, settings)  # the next run asks for the refused view again
    assert list(table["status"]) == ["OK", "OK"]
    with Image.open(root / layout.WRITTEN_IMAGE_DIR / plan.loc[1, "uuid"] / "90.jpg") as view:
        assert view.size == (640, 640)


def test_downloading_into_an_existing_dataset_keeps_its_rows(tmp_path: Path) -> None:
    from geoguess_utils import cli
    from geoguess_utils.data import validation

    root = tmp_path / "sv"
    argv = ["make-sample", "--out", str(root), "--locations", "6", "--size", "32", "--seed", "1", "--workers", "1"]
    assert cli.main(argv) == 0
    before = pd.read_csv(root / layout.CSV_NAME, dtype=str, keep_default_na=False)
    settings = _settings(tmp_path, 2)
    table, _ = _run(MockStreetView(), settings)
    assert list(table["status"]) == ["OK", "OK"]
    after = pd.read_csv(root / layout.CSV_NAME, dtype=str, keep_default_na=False)
    assert len(after) == 8
    pd.testing.assert_frame_equal(after.iloc[:6][list(before.columns)], before)  # kept exactly, in order
    assert list(after["uuid"].iloc[6:]) == list(table["uuid"])
    table, _ = _run(MockStreetView(), replace(settings, n_locations=3))  # resuming keeps them too
    assert len(pd.read_csv(root / layout.CSV_NAME)) == 9
    report = validation.validate_roots([root])  # the mock's 640x640 views differ in size from the sample's only
    assert {p.kind for p in report.problems} <= {"unexpected_size"}, [p.message for p in report.problems]
    assert len(report.locations) == 9


def test_a_root_with_a_data_image_folder_is_refused_untouched(tmp_path: Path) -> None:
    root = tmp_path / "sv"
    (root / "data" / "u1").mkdir(parents=True)
    (root / "data.csv").write_text("uuid,latitude,longitude\nu1,45.8,15.9\n")
    with pytest.raises(DataError, match="keeps its images in data/"):
        _run(MockStreetView(), _settings(tmp_path, 2))
    assert sorted(p.name for p in root.iterdir()) == ["data", "data.csv"]
    assert (root / "data.csv").read_text() == "uuid,latitude,longitude\nu1,45.8,15.9\n"
