"""Run the whole CPU benchmark suite; write ``benchmarks/results.json`` and ``BENCHMARKS.md``.

Sections (each a table in ``BENCHMARKS.md``):

* Data: images/s of full JPEG decode + resize, DCT-scaled (draft) decode + resize and the
  ``uint8`` cache at 224/112/56 px on generated 640x640 photos; DataLoader throughput
  with 0, 1 and 2 workers.
* Training step: the original recipe against the project's, on the CPU
  (:mod:`train_step`), resnet18 and EfficientNet-Lite0 at 112 px, frozen and unfrozen.
* Data wait: the share of step time a short ``configs/quick_cpu.yaml`` training spends
  waiting for batches (:mod:`data_wait`).
* Inference: locations/s and peak memory of ``geoguess predict`` on 1,000 generated
  locations, with the checkpoint of that short training (:mod:`inference`).
* Scale (``--scale``, minutes): generation, validation and cache build of 16,000
  locations at 128 px: time and disk.
* GPU: read from ``benchmarks/gpu_results.json`` when it exists (written from
  ``benchmarks/gpu_train.py`` runs on a GPU machine); otherwise marked not measured.

Every ratio compares two measurements of the same run on the same machine. The load
average before and after each section is recorded, because on a shared machine other
work slows everything down.

    python benchmarks/run_all.py --scale          # the full suite, 6 minutes on 2 idle cores
    python benchmarks/run_all.py --quick          # tiny settings, a couple of minutes: checks the suite
    python benchmarks/run_all.py --render-only    # rewrite BENCHMARKS.md from benchmarks/results.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import data_speed  # noqa: E402
import report  # noqa: E402


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def disk_bytes(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def generate(root: Path, locations: int, size: int, seed: int) -> dict[str, Any]:
    """Generate a synthetic dataset; return its table, generation seconds and disk bytes."""
    from geoguess_utils.datasets.synthetic import write

    start = time.perf_counter()
    write.generate_dataset(root, locations, size=size, seed=seed)
    seconds = time.perf_counter() - start
    return {"root": root, "seconds": seconds, "bytes": disk_bytes(root), "locations": locations, "size": size}


def validated_table(root: Path):
    """The validated location table of a root (raises if the generated data has problems)."""
    from geoguess_utils.data import validation

    found = validation.validate_roots([root])
    if not found.ok:
        raise RuntimeError(found.format())
    return found.locations


# ----------------------------------------------------------------------------- sections


def data_section(work: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    """Decode rates per size and DataLoader throughput on generated 640x640 photos."""
    made = generate(work / "photos640", cfg.data_locations, 640, seed=1)
    table = validated_table(made["root"])
    paths = data_speed.view_paths(table)
    decode = data_speed.decode_rates(
        paths, cfg.sizes, work / "cache640", rounds=cfg.rounds, min_seconds=cfg.min_seconds
    )
    loader = data_speed.loader_rates(table, cfg.loader_size, work / "cache640", workers=cfg.workers)
    return {
        "dataset": {**data_speed.dataset_summary(table), "generation_s": made["seconds"], "source_px": 640},
        "decode": decode,
        "loader": loader,
    }


def training_step_section(cfg: argparse.Namespace) -> dict[str, Any]:
    """The original training step against the project's, per backbone, frozen and unfrozen."""
    import train_step

    return train_step.run(
        cfg.backbones, cfg.step_size, seconds=cfg.step_seconds, rounds=cfg.step_rounds, batch=cfg.step_batch
    )


def data_wait_section(work: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    """A short quick-config training with the data-wait meter (its checkpoint feeds inference)."""
    import data_wait

    made = generate(work / "train_sample", cfg.train_locations, cfg.train_source_px, seed=2)
    run = data_wait.quick_training(
        made["root"], work / "quick_fit", epochs=cfg.train_epochs, frozen_epochs=1, extra=cfg.fit_extra
    )
    run["dataset"] = {"locations": cfg.train_locations, "source_px": cfg.train_source_px}
    run["command"] = run["command"].replace(str(work), "<work>")
    return run


def inference_section(work: Path, cfg: argparse.Namespace, checkpoint: str | None) -> dict[str, Any]:
    """``geoguess predict`` twice on generated locations: first run (builds its table cache), then again."""
    import inference

    if checkpoint is None:
        raise RuntimeError("no checkpoint: the quick training wrote none")
    made = generate(work / "predict_set", cfg.predict_locations, cfg.predict_source_px, seed=3)
    runs = []
    for label in ("first run", "second run"):
        measured = inference.time_predict(
            Path(checkpoint), made["root"], work / "predictions.csv", work / "predict_cache", cfg.predict_locations
        )
        measured["label"] = label
        measured["command"] = measured["command"].replace(str(work), "<work>")
        measured.pop("stdout", None)
        measured.pop("stderr", None)
        runs.append(measured)
    return {"dataset": {"locations": cfg.predict_locations, "source_px": cfg.predict_source_px}, "runs": runs}


def scale_section(work: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    """Generation, validation and cache builds at the real training set's size."""
    from geoguess_utils.data import validation
    from geoguess_utils.data.images import ImageCache

    made = generate(work / "scale", cfg.scale_locations, cfg.scale_px, seed=4)
    root = made["root"]
    validation.validate_roots([root])  # warm the page cache and the borders, as a second validation would be
    start = time.perf_counter()
    headers = validation.validate_roots([root])
    header_s = time.perf_counter() - start
    if not headers.ok or len(headers.locations) != cfg.scale_locations:
        raise RuntimeError(f"scale dataset failed validation: {headers.summary()}")
    start = time.perf_counter()
    deep = validation.validate_roots([root], deep=True)
    deep_s = time.perf_counter() - start
    paths = data_speed.view_paths(headers.locations)
    caches = []
    for size in cfg.scale_cache_sizes:
        start = time.perf_counter()
        cache = ImageCache.open_or_build(paths, size, work / "scale_cache", "scale", progress=False)
        caches.append({"size": size, "build_s": time.perf_counter() - start, "bytes": cache.data_path.stat().st_size})
    return {
        "locations": cfg.scale_locations,
        "source_px": cfg.scale_px,
        "generation_s": made["seconds"],
        "dataset_bytes": made["bytes"],
        "validate_headers_s": header_s,
        "validate_deep_s": deep_s,
        "deep_ok": deep.ok,
        "caches": caches,
    }


def gpu_section(path: Path) -> dict[str, Any] | None:
    """Results of ``benchmarks/gpu_train.py`` on a GPU machine, when recorded."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- driver


def run_section(results: dict[str, Any], name: str, work: Callable[[], Any]) -> Any:
    """Run one section, recording its result (or error), wall time and load averages."""
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
    before, start = load_average(), time.perf_counter()
    try:
        value = work()
        error = None
    except Exception as exc:  # a failing section must not lose the others
        value, error = None, f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    results["sections"][name] = {
        "wall_s": time.perf_counter() - start,
        "load_before": before,
        "load_after": load_average(),
        "error": error,
    }
    results[name] = value
    print(f"[{time.strftime('%H:%M:%S')}] {name} done in {time.perf_counter() - start:.0f} s", flush=True)
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=BENCHMARKS / "results.json", help="results file")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md", help="report file")
    parser.add_argument("--gpu-json", type=Path, default=BENCHMARKS / "gpu_results.json", help="GPU results to include")
    parser.add_argument(
        "--findings", type=Path, default=BENCHMARKS / "findings.md", help="hand-written notes appended to the report"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--scale", action="store_true", help="also run the 16,000-location scale section (minutes)")
    parser.add_argument("--quick", action="store_true", help="tiny settings that only check the suite works")
    parser.add_argument(
        "--render-only", action="store_true", help="measure nothing: rewrite the report from the existing --json"
    )
    parser.add_argument(
        "--only", nargs="+", choices=("data", "training_step", "data_wait", "inference", "scale"), default=None
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    full = not args.quick
    args.data_locations = 150 if full else 6
    args.sizes = [224, 112, 56]
    args.rounds = 3 if full else 1
    args.min_seconds = 0.5 if full else 0.05
    args.loader_size = 112
    args.workers = [0, 1, 2]
    args.backbones = ["resnet18", "efficientnet_lite0"]
    args.step_size = 112 if full else 32
    args.step_seconds = 3.0 if full else 0.2
    args.step_rounds = 3 if full else 1
    args.step_batch = 32 if full else 4
    args.train_locations = 2000 if full else 40  # the size of `make demo`'s sample
    args.train_source_px = 96 if full else 32
    args.train_epochs = 2
    args.fit_extra = [] if full else ["--data.image_size", "32", "--model.init_args.pretrained", "false"]
    args.predict_locations = 1000 if full else 20
    args.predict_source_px = 128 if full else 32
    args.scale_locations = 16_000 if full else 30
    args.scale_px = 128 if full else 32
    args.scale_cache_sizes = [112, 64] if full else [16]
    return args


def write_report(results: dict[str, Any], cfg: argparse.Namespace) -> None:
    """Write the JSON results and the Markdown report (with the hand-written findings, if any)."""
    from geoguess_utils.io import atomic_write_text

    findings = cfg.findings.read_text() if cfg.findings.is_file() else None
    previous = cfg.markdown.read_text(encoding="utf-8") if cfg.markdown.is_file() else ""
    rendered = report.render_markdown(results, findings)
    atomic_write_text(cfg.json, json.dumps(results, indent=1, default=str))
    atomic_write_text(cfg.markdown, report.keep_marked_sections(rendered, previous))
    print(f"wrote {cfg.json} and {cfg.markdown}")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    if cfg.render_only:
        results = json.loads(cfg.json.read_text())
        results["gpu"] = gpu_section(cfg.gpu_json)
        results["targets"] = [t.to_dict() for t in report.targets(results)]
        write_report(results, cfg)
        return 0
    import torch

    from geoguess_utils import precision

    results: dict[str, Any] = {
        "command": "python benchmarks/run_all.py " + " ".join(cfg.argv),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": precision.describe_device(),
        "cpu_count": os.cpu_count(),
        "native_bf16": precision.cpu_has_native_bf16(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "quick": cfg.quick,
        "load_average_start": load_average(),
        "sections": {},
    }
    work = cfg.work or Path(tempfile.mkdtemp(prefix="geoguess_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    wanted = set(cfg.only or ["data", "training_step", "data_wait", "inference", *(["scale"] if cfg.scale else [])])
    try:
        if "data" in wanted:
            run_section(results, "data", lambda: data_section(work, cfg))
        if "training_step" in wanted:
            run_section(results, "training_step", lambda: training_step_section(cfg))
        if "data_wait" in wanted or "inference" in wanted:
            fit = run_section(results, "data_wait", lambda: data_wait_section(work, cfg))
        if "inference" in wanted:
            checkpoint = fit["checkpoint"] if fit else None
            run_section(results, "inference", lambda: inference_section(work, cfg, checkpoint))
        if "scale" in wanted:
            run_section(results, "scale", lambda: scale_section(work, cfg))
    finally:
        if not cfg.keep and cfg.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results["gpu"] = gpu_section(cfg.gpu_json)
    results["load_average_end"] = load_average()
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["targets"] = [t.to_dict() for t in report.targets(results)]
    write_report(results, cfg)
    for target in report.targets(results):
        print(f"  {target.status:12s} {target.name}: {report.fmt(target.value)} (bound {report.fmt(target.threshold)})")
    failed = [name for name, section in results["sections"].items() if section["error"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
