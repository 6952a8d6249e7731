"""Start a real ``geoguess serve`` process and put a bounded load on it.

Used by the load test and ``benchmarks/serve_load.py``: :func:`start_server` runs the
command on 127.0.0.1 and waits (bounded) for ``/health``; :func:`run_load` sends a fixed
number of predict requests, a fixed number at a time, each with a timeout, and
reports latency percentiles and throughput; :func:`stop_server` ends the process by
its PID (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from geoguess_utils.errors import GeoguessError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``geoguess serve`` process and the anonymous temporary file holding its output."""

    process: subprocess.Popen
    url: str
    log: IO[bytes]

    @property
    def pid(self) -> int:
        """The process id."""
        return int(self.process.pid)

    def output(self, chars: int = 4000) -> str:
        """The last ``chars`` characters the server printed."""
        self.log.flush()
        size = os.fstat(self.log.fileno()).st_size
        start = max(0, size - 4 * chars)
        return os.pread(self.log.fileno(), size - start, start).decode(errors="replace")[-chars:]


def start_server(
    models_dir: Path,
    extra: Sequence[str] = (),
    timeout_s: float = 120.0,
    env: dict | None = None,
    launcher: Sequence[str] | None = None,
) -> Server:
    """Run ``geoguess serve`` on 127.0.0.1 and a free port; return once ``/health`` answers.

    Args:
        models_dir: The ``--models`` folder.
        extra: More command-line options (``--max-batch 1``, ...).
        timeout_s: Longest wait for ``/health``, seconds.
        env: Environment of the process (default: this one's).
        launcher: The command before ``serve`` (default ``python -m geoguess_utils.cli``).

    Raises:
        GeoguessError: The server exited or did not answer in time (the log's tail is quoted).
    """
    import httpx

    port = free_port()
    command = [*(launcher or (sys.executable, "-m", "geoguess_utils.cli")), "serve", "--models", str(models_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra]
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the Server; anonymous
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env or dict(os.environ))
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GeoguessError(f"geoguess serve exited with status {process.returncode}: {server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    text = server.output()
    stop_server(server)
    raise GeoguessError(f"geoguess serve did not answer /health within {timeout_s:g} s: {text}")


def stop_server(server: Server, grace_s: float = 10.0) -> int:
    """End the server process by its PID: SIGTERM, then SIGKILL after ``grace_s``; return its exit status.

    The output file is kept open so :meth:`Server.output` still works; it is closed with the object.
    """
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(grace_s)
    return int(server.process.returncode)


@dataclass
class LoadResult:
    """What a load run measured."""

    requests: int
    concurrency: int
    ok: int
    statuses: dict[int, int]
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Requests that did not answer 200."""
        return self.requests - self.ok

    def summary(self) -> dict[str, Any]:
        """p50/p95/max latency (ms), locations per second and the forward-pass sizes seen."""
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "ok": self.ok,
            "failed": self.failed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
            "p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
            "max_ms": float(lat.max()) if lat.size else None,
            "wall_s": self.wall_s,
            "locations_per_s": self.ok / self.wall_s if self.wall_s > 0 else None,
            "mean_batch": float(np.mean(self.batch_sizes)) if self.batch_sizes else None,
        }


def run_load(
    url: str,
    model: str,
    views: Sequence[bytes],
    requests: int = 200,
    concurrency: int = 16,
    timeout_s: float = 60.0,
) -> LoadResult:
    """Send ``requests`` predict requests, ``concurrency`` at a time, and time each one.

    Args:
        url: The server's base URL.
        model: Model name.
        views: The four JPEGs (headings 0/90/180/270) every request sends.
        requests: Number of requests.
        concurrency: Requests in flight at once (one thread and connection each).
        timeout_s: Per-request timeout, seconds (so the run is bounded in time).

    Returns:
        Statuses, latencies of the successful requests and the wall time of the whole run.
    """
    import httpx

    if len(views) != 4:
        raise ValueError(f"expected four views, got {len(views)}")
    fields = [(str(h), (f"{h}.jpg", data, "image/jpeg")) for h, data in zip((0, 90, 180, 270), views, strict=True)]
    endpoint = f"{url}/models/{model}/predict"
    clients = [httpx.Client(timeout=timeout_s) for _ in range(concurrency)]

    def one(index: int) -> tuple[int, float, int | None, str | None]:
        client = clients[index % concurrency]
        start = time.perf_counter()
        try:
            response = client.post(endpoint, files=fields)
        except httpx.HTTPError as exc:
            return -1, 0.0, None, f"{type(exc).__name__}: {exc}"
        elapsed = 1000 * (time.perf_counter() - start)
        if response.status_code != 200:
            return response.status_code, elapsed, None, response.text[:300]
        return 200, elapsed, int(response.json()["timing"]["batch_size"]), None

    result = LoadResult(requests=requests, concurrency=concurrency, ok=0, statuses={})
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            outcomes = list(pool.map(one, range(requests)))
    finally:
        for client in clients:
            client.close()
    result.wall_s = time.perf_counter() - start
    for status, elapsed, batch, error in outcomes:
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status == 200:
            result.ok += 1
            result.latencies_ms.append(elapsed)
            result.batch_sizes.append(int(batch or 0))
        elif error:
            result.errors.append(f"{status}: {error}")
    return result
