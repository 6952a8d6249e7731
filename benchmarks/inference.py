"""Inference speed and memory of ``geoguess predict``, run as its own process.

The command runs under a small Python parent whose only child it is, so the parent's
``RUSAGE_CHILDREN`` maximum resident set size is the command's peak memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

_PARENT = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "wall = time.perf_counter() - start\n"
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'rc': done.returncode, 'wall_s': wall, 'max_rss_kib': usage.ru_maxrss,\n"
    "    'user_s': usage.ru_utime, 'system_s': usage.ru_stime, 'stdout': done.stdout[-2000:],\n"
    "    'stderr': done.stderr[-4000:]}))\n"
)


def run_measured(argv: list[str], cwd: Path | None = None, timeout_s: float = 1800) -> dict[str, Any]:
    """Run a command; return its exit code, wall seconds, peak RSS (MiB), CPU seconds and output tails."""
    done = subprocess.run(
        [sys.executable, "-c", _PARENT, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {argv[:4]} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = result.pop("max_rss_kib") / 1024  # Linux reports KiB
    return result


def time_predict(
    checkpoint: Path, data_root: Path, out_csv: Path, cache_dir: Path, locations: int, batch_size: int = 32
) -> dict[str, Any]:
    """Run ``geoguess predict`` on ``data_root``; locations/s over the whole command and its peak memory.

    Raises:
        RuntimeError: When the command fails or writes the wrong number of rows.
    """
    argv = [
        sys.executable,
        "-m",
        "geoguess_utils.cli",
        "predict",
        "--ckpt",
        str(checkpoint),
        "--data",
        str(data_root),
        "--out",
        str(out_csv),
        "--cache-dir",
        str(cache_dir),
        "--batch-size",
        str(batch_size),
    ]
    result = run_measured(argv)
    if result["rc"] != 0:
        raise RuntimeError(f"geoguess predict failed ({result['rc']}): {result['stderr']}")
    rows = sum(1 for _ in out_csv.open()) - 1
    if rows != locations:
        raise RuntimeError(f"geoguess predict wrote {rows} rows for {locations} locations")
    result.update(
        locations=locations,
        batch_size=batch_size,
        locations_per_s=locations / result["wall_s"],
        command="geoguess " + " ".join(argv[3:]),
    )
    return result
