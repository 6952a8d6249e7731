"""Inference speed and memory of ``geoguess predict``, run as its own process; draft against full JPEG decoding.

The command runs under a small Python parent whose only child it is, so the parent's
``RUSAGE_CHILDREN`` maximum resident set size is the command's peak memory.

Run as a script, it times ``geoguess predict`` over one dataset root with JPEGs decoded in
draft mode (as the command does) and with every JPEG decoded at full size, in alternating
rounds, and measures how far draft decoding moves the pixels and the predicted points::

    python benchmarks/inference.py --ckpt model.ckpt --data /tmp/sample_640px --rounds 3

The result goes under ``"predict_decoding"`` in ``benchmarks/serve_results.json`` (the
file ``benchmarks/serve_load.py`` writes; it keeps this entry and shows it in the
"Serving" section of ``BENCHMARKS.md`` on its next ``--update-benchmarks``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DECODES = ("draft", "full")

FULL_DECODE_LAUNCHER = (
    "import sys\n"
    "from geoguess_utils.data import images\n"
    "from geoguess_utils.serve import uploads\n"
    "draft_decode = images.load_view\n"
    "def full_decode(path, size, **options):\n"
    "    options['use_draft'] = False\n"
    "    return draft_decode(path, size, **options)\n"
    "images.load_view = uploads.load_view = full_decode\n"
    "from geoguess_utils.cli import main\n"
    "sys.exit(main())\n"
)
"""``python -c`` program: the ``geoguess`` command with every JPEG decoded at full size (training
data, ``geoguess predict`` and the server's uploads), to compare with the draft decoding they use."""

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


def geoguess_argv(decode: str = "draft") -> list[str]:
    """The command line that runs ``geoguess``: as installed (``"draft"``) or with full JPEG decoding (``"full"``).

    Both are three words long, so ``argv[3:]`` of a full command line is the sub-command and its options.
    """
    if decode == "draft":
        return [sys.executable, "-m", "geoguess_utils.cli"]
    if decode == "full":
        return [sys.executable, "-c", FULL_DECODE_LAUNCHER]
    raise ValueError(f"decode must be one of {', '.join(DECODES)}, got {decode!r}")


def time_predict(
    checkpoint: Path,
    data_root: Path,
    out_csv: Path,
    cache_dir: Path,
    locations: int,
    batch_size: int = 32,
    decode: str = "draft",
) -> dict[str, Any]:
    """Run ``geoguess predict`` on ``data_root``; locations/s over the whole command and its peak memory.

    Args:
        checkpoint: The checkpoint to predict with.
        data_root: The dataset root.
        out_csv: Where the command writes its predictions.
        cache_dir: The command's ``--cache-dir``.
        locations: Locations in the root (the rows the CSV must hold).
        batch_size: Locations per batch.
        decode: ``"draft"`` (the command as it is) or ``"full"`` (every JPEG decoded at full size).

    Raises:
        RuntimeError: When the command fails or writes the wrong number of rows.
    """
    argv = [
        *geoguess_argv(decode),
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
        decode=decode,
        locations_per_s=locations / result["wall_s"],
        command="geoguess " + " ".join(argv[3:]),
    )
    return result


def compare_decodes(
    checkpoint: Path, data_root: Path, work: Path, rounds: int = 3, batch_size: int = 32
) -> dict[str, Any]:
    """Time ``geoguess predict`` with draft and with full JPEG decoding, in alternating rounds.

    One untimed run first (it builds the enriched-table cache and fills the page cache);
    then ``rounds`` rounds, each timing both, the order flipped every round.

    Returns:
        ``rounds``: every timed run; ``speedup``: the median over the rounds of full wall
        seconds / draft wall seconds; ``cpu_speedup``: the same in the command's CPU
        seconds; ``draft`` and ``full``: each decode's median run; the load average before
        and after; the CSV of each decode's last run (``csv``).
    """
    from geoguess_utils.data.loading import load_locations

    locations = len(load_locations([data_root]))
    work.mkdir(parents=True, exist_ok=True)
    csv = {decode: work / f"predictions_{decode}.csv" for decode in DECODES}

    def run(decode: str) -> dict[str, Any]:
        return time_predict(checkpoint, data_root, csv[decode], work / "cache", locations, batch_size, decode)

    load_before = os.getloadavg()[0]
    run("draft")  # untimed: builds the enriched-table cache (both decodes share it) and fills the page cache
    timed: list[dict[str, Any]] = []
    for index in range(rounds):
        for decode in DECODES if index % 2 == 0 else DECODES[::-1]:
            result = run(decode)
            result["round"] = index + 1
            result["load_average"] = os.getloadavg()[0]
            timed.append({k: v for k, v in result.items() if k not in ("stdout", "stderr")})
            rate = result["locations_per_s"]
            print(f"round {index + 1} {decode}: {result['wall_s']:.1f} s, {rate:.1f} locations/s", flush=True)

    def of(decode: str, index: int) -> dict[str, Any]:
        return next(r for r in timed if r["decode"] == decode and r["round"] == index + 1)

    ratios = [of("full", i)["wall_s"] / of("draft", i)["wall_s"] for i in range(rounds)]
    cpu = [
        (of("full", i)["user_s"] + of("full", i)["system_s"]) / (of("draft", i)["user_s"] + of("draft", i)["system_s"])
        for i in range(rounds)
    ]
    median = {}
    for decode in DECODES:
        runs = sorted((r for r in timed if r["decode"] == decode), key=lambda r: r["wall_s"])
        median[decode] = runs[len(runs) // 2]
    return {
        "locations": locations,
        "batch_size": batch_size,
        "rounds": timed,
        "speedup": statistics.median(ratios),
        "speedup_every_round": ratios,
        "cpu_speedup": statistics.median(cpu),
        "draft": median["draft"],
        "full": median["full"],
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "csv": {decode: str(path) for decode, path in csv.items()},
    }


def prediction_changes(draft_csv: Path, full_csv: Path, data_root: Path | None = None) -> dict[str, Any]:
    """How far draft decoding moves each predicted point: great-circle km between the two CSVs' rows.

    Args:
        draft_csv: ``geoguess predict``'s output with draft decoding (``uuid,latitude,longitude``).
        full_csv: The same with full decoding.
        data_root: The dataset root, to add both decodes' mean error against the truth (km).

    Returns:
        ``median_km``, ``p95_km``, ``max_km`` and ``mean_km`` of the moves, the number of
        ``locations``, and with ``data_root`` ``draft_error_km`` and ``full_error_km``.
    """
    import pandas as pd

    from geoguess_utils.geo.distance import haversine_km

    draft = pd.read_csv(draft_csv).set_index("uuid")
    full = pd.read_csv(full_csv).set_index("uuid").loc[draft.index]
    moves = np.asarray(
        haversine_km(draft["latitude"], draft["longitude"], full["latitude"], full["longitude"]), dtype=np.float64
    )
    out: dict[str, Any] = {
        "locations": int(moves.size),
        "median_km": float(np.median(moves)),
        "p95_km": float(np.percentile(moves, 95)),
        "max_km": float(moves.max()),
        "mean_km": float(moves.mean()),
    }
    if data_root is not None:
        truth = pd.read_csv(Path(data_root) / "data.csv").set_index("uuid").loc[draft.index]
        for name, table in (("draft", draft), ("full", full)):
            errors = haversine_km(truth["latitude"], truth["longitude"], table["latitude"], table["longitude"])
            out[f"{name}_error_km"] = float(np.mean(errors))
    return out


def pixel_changes(data_root: Path, size: int, limit: int | None = None) -> dict[str, Any]:
    """How far draft decoding moves the pixels: every view of ``data_root`` decoded both ways at ``size`` px.

    Args:
        data_root: The dataset root.
        size: The model's image side, pixels.
        limit: Views of at most this many locations (all by default).

    Returns:
        Over the views, in levels of 0-255: ``median_mean_abs`` and ``max_mean_abs`` (a view's
        mean |draft - full| over its pixels and channels), ``max_abs`` (the largest single
        difference), ``max_mean_shift`` (the largest |mean(draft) - mean(full)| of a view);
        ``views`` and ``size``; ``draft_ms`` and ``full_ms``, CPU milliseconds per view of
        each decode in this process.
    """
    from geoguess_utils.data.images import load_view
    from geoguess_utils.data.layout import PATH_COLUMNS
    from geoguess_utils.data.loading import load_locations

    table = load_locations([data_root])
    paths = table[list(PATH_COLUMNS)].to_numpy(dtype=str)[:limit].ravel().tolist()
    mean_abs, max_abs, shift = [], 0, []
    cpu = {"draft": 0.0, "full": 0.0}
    for path in paths:
        views = {}
        for decode in DECODES:
            started = time.thread_time()
            views[decode] = load_view(path, size, use_draft=decode == "draft").astype(np.int16)
            cpu[decode] += time.thread_time() - started
        gap = np.abs(views["draft"] - views["full"])
        mean_abs.append(float(gap.mean()))
        max_abs = max(max_abs, int(gap.max()))
        shift.append(abs(float(views["draft"].mean() - views["full"].mean())))
    return {
        "views": len(paths),
        "size": size,
        "median_mean_abs": float(np.median(mean_abs)),
        "max_mean_abs": float(np.max(mean_abs)),
        "max_abs": max_abs,
        "max_mean_shift": float(np.max(shift)),
        "draft_ms": 1000 * cpu["draft"] / len(paths),
        "full_ms": 1000 * cpu["full"] / len(paths),
    }


def _photo_size(data_root: Path) -> int:
    """Width in pixels of the first view of the first location of ``data_root``."""
    from PIL import Image

    from geoguess_utils.data.layout import PATH_COLUMNS
    from geoguess_utils.data.loading import load_locations

    with Image.open(load_locations([data_root])[PATH_COLUMNS[0]].iloc[0]) as image:
        return int(image.size[0])


def run_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The timing of one run of this script in brief: date, locations, ratios per round, load."""
    timing = result["timing"]
    return {
        "date": result["date"],
        "locations": timing["locations"],
        "speedup": timing["speedup"],
        "speedup_every_round": timing["speedup_every_round"],
        "cpu_speedup": timing["cpu_speedup"],
        "cpu_ms_per_location": {
            decode: 1000 * (timing[decode]["user_s"] + timing[decode]["system_s"]) / timing["locations"]
            for decode in DECODES
        },
        "load_average_before": timing["load_average_before"],
        "load_average_after": timing["load_average_after"],
    }


EARLIER_RUNS = 3
"""Earlier runs whose timing summary is kept with the latest (the machine's load moves the ratios)."""


def merge_into(path: Path, key: str, value: Any) -> None:
    """Set ``key`` of the JSON object in ``path`` (created when missing), keeping its other entries."""
    from geoguess_utils.io import atomic_write_text

    current = json.loads(path.read_text()) if path.is_file() else {}
    current[key] = value
    atomic_write_text(path, json.dumps(current, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="geoguess predict with draft against full JPEG decoding")
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint to predict with")
    parser.add_argument("--data", type=Path, required=True, help="dataset root (LUMEN layout, 640 px JPEGs)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/geoguess_predict_decoding"))
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both decodes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pixel-locations", type=int, default=200, help="locations whose views are compared")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "serve_results.json")
    parser.add_argument("--label", help="the model in words, for BENCHMARKS.md (default: from its checkpoint)")
    args = parser.parse_args(argv)

    from geoguess_utils.checkpoints.files import load_checkpoint

    record = load_checkpoint(args.ckpt, mmap=True)["geoguess"]
    size = int(record["image_size"])
    trained = record.get("training_data") or {}
    label = args.label or (
        f"{record['backbone']} at {size} px, {record.get('pooling', 'concat')} over the views, trained on "
        f"{trained.get('train_locations', '?')} {trained.get('kind', '')} locations".replace("  ", " ")
    )
    started = time.perf_counter()
    timing = compare_decodes(args.ckpt, args.data, args.work, args.rounds, args.batch_size)
    result = {
        "checkpoint": str(args.ckpt),
        "data": str(args.data),
        "checkpoint_label": label,
        "image_size": size,
        "photo_size": _photo_size(args.data),
        "timing": timing,
        "predictions": prediction_changes(Path(timing["csv"]["draft"]), Path(timing["csv"]["full"]), args.data),
        "pixels": pixel_changes(args.data, size, args.pixel_locations),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": shlex.join(["python", "benchmarks/inference.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    result["seconds"] = time.perf_counter() - started
    previous = json.loads(args.out.read_text()).get("predict_decoding") if args.out.is_file() else None
    if previous and "timing" in previous:
        result["earlier"] = [run_summary(previous), *previous.get("earlier", [])][:EARLIER_RUNS]
    merge_into(args.out, "predict_decoding", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("timing", "earlier")}, indent=2))
    every = ", ".join(f"{r:.2f}" for r in timing["speedup_every_round"])
    print(f"full / draft wall time: {timing['speedup']:.2f} (every round: {every}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
