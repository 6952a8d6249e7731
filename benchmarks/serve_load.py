"""Latency and throughput of ``geoguess serve`` under concurrent requests, batching on and off.

Starts a real ``geoguess serve`` process on 127.0.0.1 for each setting, warms it up,
then sends ``--requests`` predict requests ``--concurrency`` at a time (each with the
four photos of one synthetic location) and reports p50/p95 latency as the client sees
it and locations per second over the run. The client runs on the same machine and
shares its CPUs with the server, as a benchmark on one small machine must.

The model is the quick CPU configuration's (``configs/quick_cpu.yaml``: EfficientNet-Lite0
at 64 px, attention over the views, county_split cells). Speed does not depend on what the weights
learned, so by default the network is built with its installed ImageNet backbone and
an untrained head; ``--ckpt`` serves a trained checkpoint instead (for example the one
``make demo`` writes).

    python benchmarks/serve_load.py --work /tmp/geoguess_serve_bench --photo-size 640 --update-benchmarks

Uploaded JPEGs are decoded in draft mode (libjpeg's DCT scaling to the smallest 1/2, 1/4
or 1/8 not below the model's image size). ``--compare-full-decode`` adds a third server,
batching on, whose uploads are decoded at full size (the ``geoguess`` command started
through :data:`inference.FULL_DECODE_LAUNCHER`), measured in the same alternating rounds.
The "Serving" section also shows the ``"predict_decoding"`` entry that
``benchmarks/inference.py`` keeps in the same JSON file (``geoguess predict`` with draft
against full decoding, and how far draft decoding moves pixels and predictions).

``--update-benchmarks`` rewrites the "Serving" section of ``BENCHMARKS.md`` (between its
markers; appended when missing). ``benchmarks/run_all.py`` renders the rest of that file
and does not run this script: after re-rendering, run this one again.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from inference import FULL_DECODE_LAUNCHER

from geoguess_utils.io import atomic_path, atomic_write_text
from geoguess_utils.serve.loadtest import Server, run_load, start_server, stop_server

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- serve_load:start -->", "<!-- serve_load:end -->"
GOAL_RATE, GOAL_P95_MS = 50, 500
BATCHING_ON = ["--max-batch", "32", "--max-wait-ms", "5"]
BATCHING_OFF = ["--max-batch", "1"]
FULL_DECODE = "batching on, full decode"
QUICK_LABEL = (
    "the quick config's network (EfficientNet-Lite0 at 64 px, attention over the views, county_split cells; "
    "ImageNet backbone, untrained head)"
)
SETTINGS: dict[str, tuple[list[str], str]] = {
    "batching on": (BATCHING_ON, "draft"),
    FULL_DECODE: (BATCHING_ON, "full"),
    "batching off": (BATCHING_OFF, "draft"),
}
"""Setting name -> (options of ``geoguess serve``, decode path of its uploads: ``"draft"`` or ``"full"``)."""


def quick_checkpoint(path: Path, seed: int = 0) -> Path:
    """Write a checkpoint with the quick config's network, untrained head.

    EfficientNet-Lite0 at 64 px, attention over the four views, county_split cells with the
    county loss (``configs/quick_cpu.yaml``).
    """
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.geo import borders
    from geoguess_utils.tasks.classification import ClassificationTask

    lat, lon = borders.sample_points(1600, np.random.default_rng(seed), "mainland")  # a training split's size
    context = GeoContext.fit(lat, lon, scheme="county_split")
    task = ClassificationTask(
        backbone="efficientnet_lite0", pretrained=True, channels_last=True, pooling="attention", county_loss_weight=1.0
    )
    task.configure_context(context, image_size=64)
    record = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "epoch": 0,
        "global_step": 0,
        "geoguess": task.checkpoint_record(),
    }
    with atomic_path(path) as tmp:
        torch.save(record, tmp)
    return path


def sample_views(work: Path, photo_size: int) -> tuple[list[bytes], Path]:
    """The four JPEGs of one synthetic location at ``photo_size`` pixels (written once)."""
    from geoguess_utils.datasets.synthetic.write import generate_dataset

    root = work / f"sample_{photo_size}px"
    if not (root / "data.csv").is_file():
        generate_dataset(root, 4, size=photo_size, seed=1, workers=1, overwrite=True)
    folder = sorted(p for p in (root / "images").iterdir() if p.is_dir())[0]
    return [(folder / f"{h}.jpg").read_bytes() for h in (0, 90, 180, 270)], root


def start_full_decode_server(
    models_dir: Path, extra: Sequence[str], env: dict[str, str], timeout_s: float = 120.0
) -> Server:
    """Like :func:`~geoguess_utils.serve.loadtest.start_server`, with every uploaded JPEG decoded at full size.

    The process runs :data:`inference.FULL_DECODE_LAUNCHER` (the ``geoguess`` command with draft
    decoding turned off) instead of ``python -m geoguess_utils.cli``; it is stopped with
    :func:`~geoguess_utils.serve.loadtest.stop_server` like the others.
    """
    return start_server(models_dir, extra, timeout_s, env, launcher=(sys.executable, "-c", FULL_DECODE_LAUNCHER))


def start_settings(
    models: Path, views: list[bytes], concurrency: int, settings: dict[str, tuple[list[str], str]] = SETTINGS
) -> dict[str, Any]:
    """One warmed-up server process per setting (idle ones use no CPU while another is measured)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    servers = {}
    try:
        for name, (options, decode) in settings.items():
            extra = [*options, "--max-queue", str(4 * concurrency), "--preload"]
            start = start_full_decode_server if decode == "full" else start_server
            server = start(models, extra, env=env)
            servers[name] = server
            warm = run_load(server.url, "quick", views, 2 * concurrency, concurrency)
            if warm.failed:
                raise RuntimeError(f"{name}: warm-up failed: {warm.errors[:3]} {server.output()}")
    except BaseException:
        for server in servers.values():
            stop_server(server)
        raise
    return servers


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux ``/proc``; ``None`` elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(server: Any, views: list[bytes], requests: int, concurrency: int) -> dict[str, Any]:
    """One measured run against a running server: the load summary, the server's batching counters, CPU per location.

    CPU time is the steadier measure on a shared machine: other work slows the run down
    but does not add to the server's or the client's CPU seconds.
    """
    import httpx

    before = httpx.get(f"{server.url}/health", timeout=10).json()["batching"]
    server_cpu, client_cpu = process_cpu_s(server.pid), own_cpu_s()
    result = run_load(server.url, "quick", views, requests, concurrency)
    server_cpu = None if server_cpu is None else process_cpu_s(server.pid) - server_cpu
    client_cpu = own_cpu_s() - client_cpu
    after = httpx.get(f"{server.url}/health", timeout=10).json()["batching"]
    summary = result.summary()
    summary["server_cpu_ms_per_location"] = None if server_cpu is None else 1000 * server_cpu / max(result.ok, 1)
    summary["client_cpu_ms_per_location"] = 1000 * client_cpu / max(result.ok, 1)
    passes = after["batches"] - before["batches"]
    summary["forward_passes"] = passes
    summary["locations_per_pass"] = (after["locations"] - before["locations"]) / passes if passes else None
    summary["errors"] = result.errors[:5]
    summary["torch_threads"] = after["torch_threads"]
    summary["load_average"] = os.getloadavg()[0]
    return summary


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round (by locations/s) of a setting, with every round's rate and the total of failures."""
    ordered = sorted(rounds, key=lambda r: r["locations_per_s"])
    row = dict(ordered[len(ordered) // 2])
    row["failed"] = sum(r["failed"] for r in rounds)
    row["rounds_locations_per_s"] = [round(r["locations_per_s"], 1) for r in rounds]
    row["rounds_p95_ms"] = [round(r["p95_ms"]) for r in rounds]
    cpu = [r["server_cpu_ms_per_location"] for r in rounds if r.get("server_cpu_ms_per_location") is not None]
    row["server_cpu_ms_per_location"] = float(np.median(cpu)) if cpu else None
    row["client_cpu_ms_per_location"] = float(np.median([r["client_cpu_ms_per_location"] for r in rounds]))
    return row


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md table of a run (the median round of each setting)."""
    lines = [
        "| Setting | Requests | Concurrent | Failed (all rounds) | p50 ms | p95 ms | max ms | Locations/s "
        "| Locations per pass | Locations/s, every round | p95 ms, every round | Server CPU ms/location "
        "| Client CPU ms/location |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["settings"].items():
        every = ", ".join(f"{v:.1f}" for v in row["rounds_locations_per_s"])
        lines.append(
            f"| {name} | {row['requests']} | {row['concurrency']} | {row['failed']} | {row['p50_ms']:.0f} | "
            f"{row['p95_ms']:.0f} | {row['max_ms']:.0f} | {row['locations_per_s']:.1f} | "
            f"{row['locations_per_pass']:.1f} | {every} | {', '.join(str(v) for v in row['rounds_p95_ms'])} | "
            f"{_ms(row.get('server_cpu_ms_per_location'))} | {_ms(row.get('client_cpu_ms_per_location'))} |"
        )
    return "\n".join(lines)


def section(results: dict[str, Any], command: str) -> str:
    """The BENCHMARKS.md section of a run, between its markers."""
    on = results["settings"]["batching on"]
    return "\n".join(
        [
            START,
            "## Serving (`geoguess serve`)",
            "",
            f"A real `geoguess serve` process per setting on 127.0.0.1; in each of {results['rounds']} alternating "
            f"rounds, {on['requests']} predict requests with "
            f"{on['concurrency']} in flight at once, each uploading the four {results['photo_size']} px JPEGs of one "
            f"synthetic location ({results['photo_bytes'] / 1024:.0f} KiB together); latency as the client sees it "
            "(upload, decoding, queueing, the forward pass, the answer). Model: "
            f"{results['checkpoint']}. Client and server share the machine's {results['cpus']} CPUs "
            f"(the server's forward pass uses {on['torch_threads']} torch thread(s), its default: half the CPUs). "
            "Each server was warmed up first. The table shows each setting's median round (by locations/s); "
            "the last columns give every round.",
            "",
            markdown(results),
            "",
            f"Goal on 2 CPUs with the quick model: at least {GOAL_RATE} locations/s with batching and p95 under "
            f"{GOAL_P95_MS} ms at 16 concurrent requests. This run's median round: {on['locations_per_s']:.1f} "
            f"locations/s ({'met' if on['locations_per_s'] >= GOAL_RATE else 'NOT met'}), p95 {on['p95_ms']:.0f} ms "
            f"({'met' if on['p95_ms'] < GOAL_P95_MS else 'NOT met'}).",
            "",
            "CPU columns: the server process's and the load client's user + system CPU time per answered "
            "location (medians over the rounds); other work on the CPUs changes them far less than it "
            "changes the rates.",
            "",
            f"Batching on (median round): {on['forward_passes']} forward passes for {on['ok']} locations "
            f"(--max-batch 32 --max-wait-ms 5); off: one pass per request (--max-batch 1). "
            f"Load average (1 min) {results['load_average_before']:.2f} before, {results['load_average_after']:.2f} "
            f"after, on {results['date']}; a load above {results['cpus']} means other work shared the CPUs.",
            "",
            *decode_paragraphs(results),
            f"Command: `{command}`",
            END,
        ]
    )


def earlier_runs(earlier: list[dict[str, Any]]) -> list[str]:
    """A line on the earlier runs of ``benchmarks/inference.py`` kept in the JSON (none: no line)."""
    if not earlier:
        return []
    runs = [
        f"{run['date']}, load {run['load_average_before']:.1f} to {run['load_average_after']:.1f}: full / draft "
        f"{run['speedup']:.2f} (every round: {', '.join(f'{r:.2f}' for r in run['speedup_every_round'])}), "
        f"in CPU seconds {run['cpu_speedup']:.2f}, the command's CPU per location "
        f"{run['cpu_ms_per_location']['draft']:.0f} ms with draft and {run['cpu_ms_per_location']['full']:.0f} ms "
        "with full decoding"
        for run in earlier
    ]
    return [
        "Earlier runs of the same command (other work on the machine moves these ratios): " + "; ".join(runs) + ".",
        "",
    ]


def decode_paragraphs(results: dict[str, Any]) -> list[str]:
    """The section's lines on draft decoding: the serving A/B (when measured) and ``geoguess predict``'s."""
    lines = []
    full = results["settings"].get(FULL_DECODE)
    if full is not None:
        on = results["settings"]["batching on"]
        ratios = results["draft_vs_full_per_round"]
        cpu = on.get("server_cpu_ms_per_location"), full.get("server_cpu_ms_per_location")
        lines += [
            "**Draft decoding of uploads.** The server decodes an uploaded JPEG in draft mode: libjpeg scales it by "
            "the smallest 1/2, 1/4 or 1/8 whose sides stay at least the model's image size (640 px photos for a "
            "64 px model: 80 px), then resized to the model's size. The row "
            f'"{FULL_DECODE}" is the same server with every upload decoded at full size, measured in the same '
            f"alternating rounds: draft decoding serves {statistics.median(ratios):.2f} times as many locations per "
            f"second (median of the per-round ratios: {', '.join(f'{r:.2f}' for r in ratios)}) and costs the server "
            f"{_ms(cpu[0])} ms of CPU per location instead of {_ms(cpu[1])}.",
            "",
        ]
    predict = results.get("predict_decoding")
    if predict:
        timing, moves, pixels = predict["timing"], predict["predictions"], predict["pixels"]
        every = ", ".join(f"{r:.2f}" for r in timing["speedup_every_round"])
        cpu_ms = {
            decode: 1000 * (timing[decode]["user_s"] + timing[decode]["system_s"]) / timing["locations"]
            for decode in ("draft", "full")
        }
        lines += [
            "**`geoguess predict` reads JPEGs the same way** (the data pipeline's "
            "`geoguess_utils.data.images.load_view`). Over "
            f"{timing['locations']:,} generated locations of four {predict.get('photo_size', 640)} px JPEGs, "
            f"{len(timing['speedup_every_round'])} alternating rounds of the whole command (batch "
            f"{timing['batch_size']}), the median round: draft decoding {timing['draft']['wall_s']:.1f} s "
            f"({timing['draft']['locations_per_s']:.1f} locations/s), full decoding {timing['full']['wall_s']:.1f} s "
            f"({timing['full']['locations_per_s']:.1f} locations/s); full / draft wall time {timing['speedup']:.2f} "
            f"(every round: {every}), in CPU seconds {timing['cpu_speedup']:.2f}. Load average (1 min) "
            f"{timing['load_average_before']:.2f} before, {timing['load_average_after']:.2f} after, on "
            f"{predict['date']}. The command spent {cpu_ms['draft']:.0f} ms of CPU per location with draft "
            f"decoding and {cpu_ms['full']:.0f} with full decoding, of which decoding the four views takes about "
            f"{4 * pixels['draft_ms']:.0f} and {4 * pixels['full_ms']:.0f} ms: the rest, mostly the forward pass "
            "(torch's default of one thread per core), sets its speed.",
            "",
            *earlier_runs(predict.get("earlier", [])),
            f"What draft decoding changes, measured by the same run: over {pixels['views']:,} views decoded both "
            f"ways at {pixels['size']} px, a view's mean absolute difference is {pixels['median_mean_abs']:.2f} "
            f"levels of 255 (median; at most {pixels['max_mean_abs']:.2f}, its mean brightness moves by at most "
            f"{pixels['max_mean_shift']:.2f}; single pixels by up to {pixels['max_abs']}), at "
            f"{pixels['draft_ms']:.2f} against {pixels['full_ms']:.2f} ms of CPU per view. The model's predicted "
            f"points move by a median {moves['median_km']:.1f} km (95th percentile {moves['p95_km']:.1f} km, at "
            f"most {moves['max_km']:.1f} km) over the {moves['locations']:,} locations, and its mean error is "
            f"{moves['draft_error_km']:.1f} km with draft decoding and {moves['full_error_km']:.1f} km with "
            f"full decoding. Model: {predict['checkpoint_label']}.",
            "",
            "Tolerance, held by `tests/test_draft_decoding.py`: draft decoding changes a 64 px view of a 640 px "
            "JPEG by less than 2 levels of 255 in mean absolute difference and its mean brightness by less than "
            "0.75, and moves the points of a fixed test model by less than 15 km; the tests also hold the "
            "server's uploads and `geoguess predict` to the draft path (1/8 scale for a 64 px model). A trained "
            "model's points move more than its mean error changes: the differences scatter both ways.",
            "",
            f"Command: `{predict['command']}`",
            "",
        ]
    return lines


def update_benchmarks(text: str, path: Path = REPO / "BENCHMARKS.md") -> None:
    """Replace the serving section of BENCHMARKS.md (or append it)."""
    current = path.read_text()
    if START in current and END in current:
        head, rest = current.split(START, 1)
        updated = head + text + rest.split(END, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    atomic_write_text(path, updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/geoguess_serve_bench"))
    parser.add_argument("--ckpt", type=Path, help="serve this checkpoint instead of the built quick network")
    parser.add_argument("--photo-size", type=int, default=640, help="side of the uploaded JPEGs (LUMEN: 640)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of every setting")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "serve_results.json")
    parser.add_argument("--update-benchmarks", action="store_true", help="rewrite the section in BENCHMARKS.md")
    parser.add_argument(
        "--compare-full-decode",
        action="store_true",
        help=f"also measure a server that decodes uploads at full size ({FULL_DECODE!r}), in the same rounds",
    )
    args = parser.parse_args(argv)

    models = args.work / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / "quick.ckpt"
    if args.ckpt is not None:
        shutil.copyfile(args.ckpt, target)  # a copy: links out of the models folder are refused, by design
    elif not target.is_file():
        quick_checkpoint(target)
    views, _ = sample_views(args.work, args.photo_size)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results: dict[str, Any] = {
        "checkpoint": str(args.ckpt) if args.ckpt else QUICK_LABEL,
        "photo_size": args.photo_size,
        "photo_bytes": sum(map(len, views)),
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "settings": {},
    }
    settings = {name: value for name, value in SETTINGS.items() if args.compare_full_decode or name != FULL_DECODE}
    servers = start_settings(models, views, args.concurrency, settings)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    try:
        for index in range(args.rounds):
            for name, server in servers.items():
                rounds[name].append(measure(server, views, args.requests, args.concurrency))
                print(f"round {index + 1} {name}", json.dumps(rounds[name][-1]), flush=True)
    finally:
        for server in servers.values():
            stop_server(server)
    results["settings"] = {name: combine(rows) for name, rows in rounds.items()}
    if FULL_DECODE in rounds:
        results["draft_vs_full_per_round"] = [
            draft["locations_per_s"] / full["locations_per_s"]
            for draft, full in zip(rounds["batching on"], rounds[FULL_DECODE], strict=True)
        ]
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if "predict_decoding" in previous:  # written by benchmarks/inference.py: kept, and shown in the section
        results["predict_decoding"] = previous["predict_decoding"]
    results["all_rounds"] = rounds
    results["load_average_before"] = load_before
    results["load_average_after"] = os.getloadavg()[0]
    results["seconds"] = time.perf_counter() - started
    results["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"load average {load_before:.2f} before, {results['load_average_after']:.2f} after; wrote {args.out}")
    if args.update_benchmarks:
        shown = ["python", "benchmarks/serve_load.py", *(argv if argv is not None else sys.argv[1:])]
        update_benchmarks(section(results, " ".join(shown)))
        print("updated BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
