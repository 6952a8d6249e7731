"""Data-loading speed: validation, and one epoch via full JPEG decode, DCT-scaled decode, and the uint8 cache.

Writes a generated dataset in the LUMEN layout (640x640 photo-like JPEGs of about
75 KB, like the real ones) once, then times:

* ``geoguess validate``-style header checks (and ``--deep`` decoding) of all locations;
* one pass over every location through :class:`geoguess_utils.data.geodataset.GeoDataset` and a
  DataLoader at the chosen size, decoding each JPEG at full size, with
  ``Image.draft`` (DCT scaling), and from a pre-resized memory-mapped cache (whose
  one-off build time is reported separately);
* optionally, header validation of 16,000 folders (hard links to the same files).

Files are read from the page cache after the first pass (warm cache), as they would
be in the second and later epochs of a training run. Wall-clock and CPU seconds of
the main process are both reported: on a shared machine the CPU time is the steadier
measure of the work done (worker processes' CPU is not included).

    python benchmarks/data_epoch.py --dir /tmp/geoguess_bench --locations 2000 --size 112 --workers 0 2 --validate-16k
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from geoguess_utils.data import geodataset, layout, loading, validation
from geoguess_utils.data.images import ImageCache
from geoguess_utils.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _write_part(args: tuple[str, int, str, bool, int]) -> str:
    from _lumen_fixtures import write_lumen_root

    root, n, layout, extra, seed = args
    write_lumen_root(
        root, n, layout=layout, image_size=640, extra_columns=extra, seed=seed, pattern="photo", town_offset=seed
    )
    return root


def make_dataset(base: Path, locations: int, processes: int) -> list[Path]:
    """Write the dataset as several roots (alternately data/ and images/ with extra columns) unless already there."""
    count = max(2, min(processes, locations))
    sizes = [locations // count + (i < locations % count) for i in range(count)]
    parts = [
        (str(base / f"root{i:02d}"), n, "data" if i % 2 == 0 else "images", i % 2 == 1, i + 1)
        for i, n in enumerate(sizes)
    ]
    roots = [Path(p[0]) for p in parts]
    marker = base / f"complete-{locations}-{count}"
    if marker.is_file():
        return roots
    if base.exists() and any(base.iterdir()):
        raise SystemExit(f"{base} exists but holds no complete {locations}-location dataset; remove it first")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=processes) as pool:
        list(pool.map(_write_part, parts))
    atomic_write_text(marker, "")
    print(f"wrote {locations} locations ({4 * locations} JPEGs) in {time.perf_counter() - start:.0f} s")
    return roots


def time_epoch(dataset: geodataset.GeoDataset, batch_size: int, workers: int) -> tuple[float, float]:
    """Wall-clock and main-process CPU seconds of one pass over ``dataset``."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    wall, cpu = time.perf_counter(), time.process_time()
    seen = 0
    for batch in loader:
        seen += len(batch["uuid"])
    assert seen == len(dataset)
    return time.perf_counter() - wall, time.process_time() - cpu


def timed(results: dict[str, tuple[float, float]], name: str, run: Callable[[], object]) -> object:
    wall, cpu = time.perf_counter(), time.process_time()
    value = run()
    results[name] = (time.perf_counter() - wall, time.process_time() - cpu)
    return value


def many_folders(source_roots: list[Path], target: Path, folders: int) -> Path:
    """A root of ``folders`` locations whose images are hard links to the generated ones."""
    if (target / "data.csv").is_file():
        return target
    table = loading.load_locations(source_roots)
    rows = []
    image_dir = target / "data"
    image_dir.mkdir(parents=True)
    for i in range(folders):
        source = table.iloc[i % len(table)]
        uuid = f"{i:08d}-0000-4000-8000-000000000000"
        (image_dir / uuid).mkdir()
        for heading in layout.HEADINGS:
            os.link(source[f"path_{heading}"], image_dir / uuid / f"{heading}.jpg")
        rows.append((uuid, source["latitude"], source["longitude"]))
    pd.DataFrame(rows, columns=["uuid", "latitude", "longitude"]).to_csv(target / "data.csv")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/geoguess_bench"), help="where the dataset is written")
    parser.add_argument("--locations", type=int, default=2000)
    parser.add_argument("--size", type=int, default=112, help="model input side, pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="DataLoader worker counts to time")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads in the main process")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="processes writing the dataset")
    parser.add_argument("--validate-16k", action="store_true", help="also validate 16,000 folders (hard links)")
    parser.add_argument("--json", type=Path, help="write the timings here")
    args = parser.parse_args()

    torch.set_num_threads(args.torch_threads)
    roots = make_dataset(args.dir, args.locations, args.processes)
    results: dict[str, tuple[float, float]] = {}
    validation.validate_roots(roots)  # warm the page cache and the borders
    report = timed(results, "validate_headers", lambda: validation.validate_roots(roots))
    assert report.ok, report.format()
    timed(results, "validate_deep", lambda: validation.validate_roots(roots, deep=True))

    table = report.locations
    size = args.size
    full = geodataset.GeoDataset(table, size, use_draft=False)
    draft = geodataset.GeoDataset(table, size, use_draft=True)
    time_epoch(draft, args.batch_size, 0)  # warm-up pass
    paths = table[list(layout.PATH_COLUMNS)].to_numpy(dtype=str).tolist()
    cache_dir = args.dir / "cache"
    for stale in cache_dir.glob(f"bench_{size}px.*"):
        stale.unlink()
    cache = timed(
        results, "cache_build", lambda: ImageCache.open_or_build(paths, size, cache_dir, "bench", progress=False)
    )
    timed(results, "cache_reopen", lambda: ImageCache.open_or_build(paths, size, cache_dir, "bench", progress=False))
    cached = geodataset.GeoDataset(table, size, image_cache=cache)
    assert (cache[0] == draft.views_uint8(0).permute(0, 2, 3, 1).numpy()).all(), "cache and draft decode differ"
    for workers in args.workers:
        results[f"epoch_full_decode_w{workers}"] = time_epoch(full, args.batch_size, workers)
        results[f"epoch_draft_w{workers}"] = time_epoch(draft, args.batch_size, workers)
        results[f"epoch_cache_w{workers}"] = time_epoch(cached, args.batch_size, workers)

    if args.validate_16k:
        big = many_folders(roots, args.dir / "folders16k", 16_000)
        validation.validate_roots([big])
        report16 = timed(results, "validate_16k_headers", lambda: validation.validate_roots([big]))
        assert report16.ok and len(report16.locations) == 16_000

    n = len(table)
    print(
        f"{n} locations ({4 * n} JPEGs, 640x640) -> {size}px, batch {args.batch_size}, "
        f"torch threads {args.torch_threads}, {os.cpu_count()} CPUs"
    )
    print(f"  {'step':28s} {'wall s':>8s} {'cpu s':>8s}")
    for name, (wall, cpu) in results.items():
        rate = f"  ({n / wall:,.0f} locations/s)" if name.startswith("epoch_") else ""
        print(f"  {name:28s} {wall:8.2f} {cpu:8.2f}{rate}")
    if args.json:
        payload = {"locations": n, "size": size, "cpus": os.cpu_count(), "wall_cpu_s": results}
        atomic_write_text(args.json, json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
