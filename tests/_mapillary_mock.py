"""A mock of Mapillary's Graph API and image host on 127.0.0.1, serving synthetic 360° panoramas.

Runs an aiohttp application on its own event loop in a background thread, so both
``download_async`` and the synchronous command line can talk to it. Never reaches the
real network.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from geoguess_utils.datasets.synthetic.panorama import render_panorama

TOKEN = "MLY|1234567890|abcdefSECRETtoken"
SIGNED_QUERY = "stp=s2048x1024&_nc_sid=a1%2bb%3D%3D&oh=00_AfB&ccb=%7E1"  # like a signed CDN link: kept byte for byte
VIEW_SIZE = 48  # the synthetic panoramas are stitched from views of this size


def compass_of(n: int) -> float:
    """Compass angle of the n-th image the mock hands out (varied on purpose)."""
    return float((37 + 61 * n) % 360)


def seed_of(n: int) -> int:
    return 100 + n


@dataclass
class Served:
    """What the mock said about one image id."""

    n: int
    lat: float
    lon: float
    compass: float


@dataclass
class MockMapillary:
    """Answers like ``GET /images``, ``GET /<id>`` and the thumbnail host, with scripted failures.

    ``searches`` is consumed one action per search request (then ``"ok"``): ``"ok"``,
    ``"empty"``, ``"429"``, ``"500"``, ``"same"`` (the image of the previous search
    again), ``"sea"`` (a panorama out in the open Adriatic), ``"401"``.

    ``images`` maps an image id to actions consumed one per download (then ``"ok"``):
    ``"ok"``, ``"429"``, ``"500"``, ``"drop"`` (promise the whole body, send half,
    hang up), ``"cut"`` (a complete HTTP answer whose JPEG lacks its end), ``"big"``
    (a body larger than ``big_bytes``), ``"html"``.
    """

    searches: list[str] = field(default_factory=list)
    images: dict[str, list[str]] = field(default_factory=dict)
    big_bytes: int = 300_000
    calls: Counter[str] = field(default_factory=Counter)
    auth_to_api: set[str] = field(default_factory=set)
    auth_to_images: list[str] = field(default_factory=list)
    served: dict[str, Served] = field(default_factory=dict)
    query_tokens: list[str] = field(default_factory=list)
    base: str = ""
    _count: int = 0
    _last: str = ""
    _cache: dict[str, bytes] = field(default_factory=dict)

    # -- handlers ---------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/images", self._search)
        app.router.add_get("/thumb/{image_id}.jpg", self._thumb)
        app.router.add_get("/{image_id}", self._entity)
        return app

    def _item(self, image_id: str) -> dict[str, Any]:
        s = self.served[image_id]
        return {
            "id": image_id,
            "geometry": {"type": "Point", "coordinates": [s.lon + 0.0004, s.lat]},
            "computed_geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
            "compass_angle": (s.compass + 50.0) % 360.0,  # the raw EXIF angle; the computed one must win
            "computed_compass_angle": s.compass,
            "captured_at": 1625140800000 + s.n * 1000,
            "creator": {"username": f"driver_{s.n}", "id": str(9000 + s.n)},
            "thumb_2048_url": f"{self.base}/thumb/{image_id}.jpg?{SIGNED_QUERY}",
        }

    async def _search(self, request: web.Request) -> web.Response:
        self.calls["search"] += 1
        self.auth_to_api.add(request.headers.get("Authorization", ""))
        self.query_tokens.extend(v for v in request.query.values() if "SECRET" in v)
        action = self.searches.pop(0) if self.searches else "ok"
        assert request.query["is_pano"] == "true"
        fields = request.query["fields"].split(",")
        assert {"id", "computed_geometry", "computed_compass_angle", "thumb_2048_url", "creator"} <= set(fields)
        if action in ("429", "500"):
            return web.Response(status=int(action), text="busy", headers={"Retry-After": "0"})
        if action == "401":
            return web.json_response({"error": {"message": f"Invalid OAuth access token {TOKEN}"}}, status=401)
        if action == "empty":
            return web.json_response({"data": []})
        if action == "same" and self._last:
            return web.json_response({"data": [self._item(self._last)]})
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in request.query["bbox"].split(","))
        lat, lon = (min_lat + max_lat) / 2.0, (min_lon + max_lon) / 2.0
        if action == "sea":
            lat, lon = 43.0, 15.5
        n = self._count
        self._count += 1
        image_id = str(5000 + n)
        self.served[image_id] = Served(n, lat + 0.0002, lon, compass_of(n))
        far = str(7000 + n)  # a second, farther panorama: the nearest one must be taken
        self.served[far] = Served(n, lat + 0.0008, lon, compass_of(n))
        self._last = image_id
        return web.json_response({"data": [self._item(far), self._item(image_id)]})

    async def _entity(self, request: web.Request) -> web.Response:
        self.calls["entity"] += 1
        self.auth_to_api.add(request.headers.get("Authorization", ""))
        image_id = request.match_info["image_id"]
        if image_id not in self.served:
            return web.json_response({"error": {"message": "unknown image"}}, status=404)
        return web.json_response({"id": image_id, "thumb_2048_url": self._item(image_id)["thumb_2048_url"]})

    def panorama_jpeg(self, image_id: str) -> bytes:
        """The synthetic equirectangular JPEG served for an image id."""
        if image_id not in self._cache:
            s = self.served[image_id]
            pano = render_panorama(s.lat, s.lon, s.compass, seed=seed_of(s.n), view_size=VIEW_SIZE)
            buffer = io.BytesIO()
            Image.fromarray(pano).save(buffer, format="JPEG", quality=95)
            self._cache[image_id] = buffer.getvalue()
        return self._cache[image_id]

    async def _thumb(self, request: web.Request) -> web.StreamResponse:
        image_id = request.match_info["image_id"]
        self.calls[f"thumb {image_id}"] += 1
        self.auth_to_images.append(request.headers.get("Authorization", ""))
        if request.rel_url.raw_query_string != SIGNED_QUERY:
            return web.Response(status=403, text=f"bad signature {request.rel_url.raw_query_string}")
        script = self.images.get(image_id, [])
        action = script.pop(0) if script else "ok"
        body = self.panorama_jpeg(image_id)
        if action in ("429", "500"):
            return web.Response(status=int(action), text="busy", headers={"Retry-After": "0"})
        if action == "html":
            return web.Response(text="<html>not found</html>", content_type="text/html")
        if action == "big":
            return web.Response(body=body + b"\0" * self.big_bytes, content_type="image/jpeg")
        if action == "cut":
            return web.Response(body=body[: len(body) // 2], content_type="image/jpeg")
        if action == "drop":
            response = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=body, content_type="image/jpeg")

    # -- running ----------------------------------------------------------------------------

    def __enter__(self) -> MockMapillary:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        self._loop = loop

        async def start() -> None:
            self._runner = web.AppRunner(self._app())
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", 0).start()
            self.base = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        if not started.wait(timeout=30):
            raise RuntimeError("the mock Mapillary server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)


def _measure_rate() -> None:
    """Download rate against this mock: ``python tests/_mapillary_mock.py [--locations 40] [--size 640] ...``.

    Every image id gets the same 2048x1024 synthetic panorama (rendered once), so the
    number measures the downloader (requests, decoding, reprojection, encoding, writes),
    not the mock's rendering.
    """
    import argparse
    import tempfile
    import time
    from pathlib import Path

    from geoguess_utils.datasets import mapillary

    parser = argparse.ArgumentParser(description=_measure_rate.__doc__)
    parser.add_argument("--locations", type=int, default=40)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    pano = render_panorama(45.24, 13.94, 0.0, seed=1, view_size=640, width=2048)
    buffer = io.BytesIO()
    Image.fromarray(pano).save(buffer, format="JPEG", quality=90)
    body = buffer.getvalue()

    class _OnePanorama(MockMapillary):
        def panorama_jpeg(self, image_id: str) -> bytes:
            return body

    with tempfile.TemporaryDirectory() as folder, _OnePanorama() as server:
        settings = mapillary.MapillarySettings(
            token=TOKEN,
            n_locations=args.locations,
            out_dir=Path(folder) / "root",
            size=args.size,
            concurrency=args.concurrency,
            rate_per_s=args.rate,
            api_url=server.base,
        )
        start = time.perf_counter()
        table = mapillary.download_mapillary(settings, lambda _: None)
        seconds = time.perf_counter() - start
    done = int((table["status"] == "OK").sum())
    print(
        f"{done} locations in {seconds:.2f} s: {done / seconds:.2f} locations/s "
        f"(views {args.size} px from a {pano.shape[1]}x{pano.shape[0]} panorama of {len(body)} bytes, "
        f"concurrency {args.concurrency}, rate limit {args.rate:g} requests/s)"
    )


if __name__ == "__main__":
    _measure_rate()
