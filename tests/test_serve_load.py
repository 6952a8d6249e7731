"""A real ``geoguess serve`` process on 127.0.0.1 under 200 requests, 16 at a time, with batching on and off."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _serve_helpers import build_models, sample_uuids, view_bytes

from geoguess_utils.serve.loadtest import run_load, start_server, stop_server

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return build_models(tmp_path_factory.mktemp("serve_load"), locations=12)


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "options"), [("batching", ["--max-wait-ms", "20"]), ("no batching", ["--max-batch", "1"])]
)
def test_no_request_fails_under_concurrent_load(served, mode, options):
    sample, models = served
    server = start_server(models, [*options, "--max-queue", "64"], timeout_s=120, env=server_env())
    try:
        assert server.process.poll() is None
        result = run_load(server.url, "clf", view_bytes(sample, sample_uuids(sample)[0]), 200, 16, timeout_s=60)
    finally:
        status = stop_server(server)
    summary = result.summary()
    assert result.failed == 0, (summary, result.errors[:3], server.output())
    assert summary["statuses"] == {"200": 200}
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["max_ms"]
    if mode == "no batching":
        assert set(result.batch_sizes) == {1}
    else:  # 16 clients and one inference thread: requests pile up behind each pass and share the next
        assert max(result.batch_sizes) > 1
        assert max(result.batch_sizes) <= 16
    assert server.process.poll() is not None and status in (0, -15), server.output()
