"""Resident memory of `geoguess serve` over 50 reloads of one checkpoint (the file touched before each request).

    python benchmarks/serve_reload_memory.py [LABEL]

Builds a tiny classifier and sample with the tests' helpers, serves them in process, and prints the
resident memory before and after, and how many models `/health` says are loaded.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _serve_helpers import build_models, sample_uuids, view_bytes, view_fields
from fastapi.testclient import TestClient

from geoguess_utils.serve.app import ServeConfig, create_app

RELOADS = 50


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(row for row in status if row.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    sample, models = build_models(Path(tempfile.mkdtemp()) / "served", locations=4)
    for name in ("junk.ckpt", "plain.ckpt", "notes.txt", "outside.ckpt", "reg.ckpt"):
        (models / name).unlink()
    checkpoint = models / "clf.ckpt"
    fields = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    with TestClient(create_app(ServeConfig(models_dir=models))) as client:
        client.post("/models/clf/predict", files=fields)
        gc.collect()
        start = resident_mb()
        for _ in range(RELOADS):
            stamp = checkpoint.stat().st_mtime_ns + 10**9
            os.utime(checkpoint, ns=(stamp, stamp))
            assert client.post("/models/clf/predict", files=fields).status_code == 200
        gc.collect()
        loaded = client.get("/health").json()["loaded"]
    print(f"{label}: {RELOADS} reloads: resident {start:.0f} -> {resident_mb():.0f} MB, /health loaded = {loaded}")


if __name__ == "__main__":
    main()
