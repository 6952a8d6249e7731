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


def _round(rate: float, p95: float, failed: int = 0) -> dict:
    return {
        "requests": 200,
        "concurrency": 16,
        "ok": 200 - failed,
        "failed": failed,
        "p50_ms": p95 / 2,
        "p95_ms": p95,
        "max_ms": p95 + 1,
        "locations_per_s": rate,
        "locations_per_pass": 4.0,
        "forward_passes": 50,
        "torch_threads": 1,
        "server_cpu_ms_per_location": rate / 2.5,
        "client_cpu_ms_per_location": 2.0,
    }


def test_benchmark_reports_the_median_round_and_rewrites_only_its_section(tmp_path, monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    sys.modules.pop("serve_load", None)
    import serve_load

    rows = [_round(30.0, 400), _round(10.0, 900, failed=1), _round(20.0, 600)]
    combined = serve_load.combine(rows)
    assert combined["locations_per_s"] == 20.0 and combined["p95_ms"] == 600
    assert combined["failed"] == 1
    assert combined["rounds_locations_per_s"] == [30.0, 10.0, 20.0]
    results = {
        "checkpoint": "quick",
        "photo_size": 640,
        "photo_bytes": 4096,
        "cpus": 2,
        "rounds": 3,
        "settings": {"batching on": combined, "batching off": serve_load.combine([_round(5.0, 2000)])},
        "load_average_before": 1.0,
        "load_average_after": 1.5,
        "date": "today",
    }
    table = serve_load.markdown(results).splitlines()
    assert table[2].startswith("| batching on | 200 | 16 | 1 | 300 | 600 | 601 | 20.0 | 4.0 | 30.0, 10.0, 20.0 |")
    assert table[2].endswith("| 400, 900, 600 | 8.0 | 2.0 |")
    page = tmp_path / "BENCHMARKS.md"
    page.write_text("# Benchmarks\n\nother sections\n")
    serve_load.update_benchmarks(serve_load.section(results, "cmd one"), page)
    serve_load.update_benchmarks(serve_load.section(results, "cmd two"), page)
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nother sections\n")
    assert text.count(serve_load.START) == 1 and "cmd two" in text and "cmd one" not in text
