"""Slow and greedy clients against a real ``geoguess serve`` on 127.0.0.1: time limits, connection and upload caps.

One server, started with small limits (headers 2 s, body 5 s, one upload at a time, none
waiting) and an open-file limit of 200, so that its connection cap is lowered to fit.
Every socket read is bounded by a timeout; the server is stopped by its PID.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from pathlib import Path

import httpx
import pytest
from _serve_helpers import build_models, sample_uuids, view_bytes, view_fields

from geoguess_utils.serve.connections import FD_RESERVE, ConnectionLimits, fitted_to_file_limit
from geoguess_utils.serve.loadtest import start_server, stop_server

REPO = Path(__file__).resolve().parents[1]
FILE_LIMIT = 200
HEADER_S = 2.0
BODY_S = 5.0


def _small_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import subprocess

    sample, models = build_models(tmp_path_factory.mktemp("slow_clients"), locations=6)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    options = ["--header-timeout", str(HEADER_S), "--body-timeout", str(BODY_S), "--max-connections", "1000"]
    options += ["--max-uploads", "1", "--max-waiting-uploads", "0"]
    real_popen = subprocess.Popen

    def popen_with_limit(*args, **kwargs):
        return real_popen(*args, preexec_fn=_small_file_limit, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess, "Popen", popen_with_limit)
        running = start_server(models, options, timeout_s=120, env=env)
    yield running, sample
    stop_server(running)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took (bounded)."""
    sock.settimeout(limit_s)
    started = time.monotonic()
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def test_partial_headers_are_answered_408_and_closed(server):
    running, _ = server
    with socket.create_connection(_address(running.url), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        answer, waited = _read_until_closed(sock, limit_s=30)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"headers" in answer
    assert waited < 30  # closed by the server, not by this test's bound


def test_a_silent_connection_is_closed(server):
    running, _ = server
    with socket.create_connection(_address(running.url), timeout=5) as sock:
        answer, waited = _read_until_closed(sock, limit_s=30)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < 30


def test_a_keep_alive_connection_times_its_next_request_too(server):
    running, _ = server
    with socket.create_connection(_address(running.url), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(30)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        time.sleep(0.2)
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        answer, waited = _read_until_closed(sock, limit_s=30)
    assert b"408" in answer.split(b"\r\n", 1)[0], answer[:200]
    assert waited < 30


def test_a_slow_body_is_answered_408_and_frees_its_upload_slot(server):
    running, sample = server
    uuid = sample_uuids(sample)[0]
    with socket.create_connection(_address(running.url), timeout=5) as sock:
        head = (
            "POST /models/clf/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
        )
        sock.sendall(head.encode() + b"--xyz\r\n")
        time.sleep(0.5)  # the request now holds the only upload slot
        busy = httpx.post(f"{running.url}/models/clf/predict", files=view_fields(view_bytes(sample, uuid)), timeout=60)
        assert busy.status_code == 503, busy.text
        assert "--max-uploads" in busy.json()["error"]["message"]
        assert busy.headers["retry-after"] == "1"
        answer, waited = _read_until_closed(sock, limit_s=60)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body" in answer
    assert waited < 60
    after = httpx.post(f"{running.url}/models/clf/predict", files=view_fields(view_bytes(sample, uuid)), timeout=60)
    assert after.status_code == 200, after.text


def test_connections_beyond_the_cap_are_refused_at_once_and_the_server_recovers(server):
    running, _ = server
    cap = FILE_LIMIT - FD_RESERVE
    assert f"lowered to {cap}" in running.output()
    held = []
    try:
        for _ in range(cap + 20):
            held.append(socket.create_connection(_address(running.url), timeout=5))
        refused = 0
        for sock in held[-10:]:
            answer, _ = _read_until_closed(sock, limit_s=30)
            refused += answer.startswith(b"HTTP/1.1 503")
        assert refused == 10
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 60
    status = None
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"{running.url}/health", timeout=10).status_code
        except httpx.HTTPError:
            status = None
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200
    assert "Too many open files" not in running.output()


def test_limits_are_checked_and_fitted_to_the_file_limit(monkeypatch):
    with pytest.raises(ValueError, match="max_connections"):
        ConnectionLimits(max_connections=0)
    with pytest.raises(ValueError, match="positive"):
        ConnectionLimits(header_timeout_s=0)
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    assert fitted_to_file_limit(ConnectionLimits(max_connections=256)).max_connections == 256
    assert fitted_to_file_limit(ConnectionLimits(max_connections=5000)).max_connections == 1024 - FD_RESERVE
