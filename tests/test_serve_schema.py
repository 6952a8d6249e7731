"""Requests generated from the server's own OpenAPI schema: none may get a 5xx answer.

A real ``geoguess serve`` on 127.0.0.1 with a sample folder (so that every endpoint is
live), stopped by its PID; a bounded number of examples per operation. Model names are
mostly replaced by those of the models folder, so that the generated bodies reach the
photo readers instead of a 404.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from _serve_helpers import build_models
from hypothesis import HealthCheck, settings
from test_serve_regions import add_calibrated_models

from geoguess_utils.serve.loadtest import start_server, stop_server

schemathesis = pytest.importorskip("schemathesis")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    base = tmp_path_factory.mktemp("schema")
    sample, models = build_models(base, locations=6)
    add_calibrated_models(sample, models, base / "cache")  # cal.ckpt: answers carry a search region
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    server = start_server(models, ["--sample", str(sample)], timeout_s=120, env=env)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def api_schema(running):
    return schemathesis.openapi.from_url(f"{running.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_gets_a_server_error(case, running):
    name = (case.path_parameters or {}).get("name")
    if name is not None:  # most generated names are unknown (404): aim most requests at real models
        case.path_parameters["name"] = ["clf", "cal", "reg", "junk", name][len(name) % 5]
    response = case.call(timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"


def test_the_schema_covers_the_prediction_endpoints(running):
    paths = httpx.get(f"{running.url}/openapi.json", timeout=30).json()["paths"]
    assert {"/models/{name}/predict", "/models/{name}/predict-batch", "/health", "/models"} <= set(paths)
