"""Data-loading speed: per-image decode rates and DataLoader throughput.

* :func:`decode_rates` times three ways of getting one view as ``uint8`` (size, size, 3)
  pixels: a full JPEG decode then resize, a DCT-scaled (``Image.draft``) decode then
  resize, and a copy out of the pre-resized ``uint8`` cache. The three are timed in
  alternating rounds, so a change in the machine's load hits all of them alike, and
  each ratio is the median of the per-round ratios.
* :func:`loader_rates` times whole epochs of :class:`geoguess_utils.data.geodataset.GeoDataset`
  through a DataLoader with 0, 1 and 2 worker processes.

Files are read from the page cache (a warm-up pass reads them first), as in the second
and later epochs of a training run.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from geoguess_utils.data import augment, geodataset, layout
from geoguess_utils.data.images import ImageCache, load_view


def view_paths(table: pd.DataFrame) -> list[list[str]]:
    """The four view paths of each location, in heading order."""
    return table[list(layout.PATH_COLUMNS)].to_numpy(dtype=str).tolist()


def _timed_pass(work: Callable[[], int], min_seconds: float) -> tuple[int, float, float]:
    """Repeat ``work`` (returns items done) for at least ``min_seconds``: items, wall s, CPU s."""
    items, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        items += work()
        elapsed = time.perf_counter() - wall
        if elapsed >= min_seconds:
            return items, elapsed, time.process_time() - cpu


def _decode_all(paths: Sequence[str], size: int, use_draft: bool) -> int:
    for path in paths:
        load_view(path, size, use_draft=use_draft)
    return len(paths)


def _copy_all(pixels: np.ndarray) -> int:
    """Copy every location's views out of the cache, as a Dataset does; returns the number of views."""
    for index in range(len(pixels)):
        np.array(pixels[index])
    return pixels.shape[0] * pixels.shape[1]


def decode_rates(
    paths: Sequence[Sequence[str]],
    sizes: Sequence[int],
    cache_dir: Path,
    rounds: int = 2,
    min_seconds: float = 0.5,
) -> list[dict[str, object]]:
    """Images per second of full decode, draft decode and cache copy, per output size.

    Args:
        paths: Four view paths per location.
        sizes: Output sides in pixels (e.g. 224, 112, 56).
        cache_dir: Where the ``uint8`` caches are built (their build time and size are reported).
        rounds: Alternating rounds per size; rates are summed over rounds, ratios are medians.
        min_seconds: Least time one method is timed in one round (at least one full pass).

    Returns:
        One dict per size with ``*_images_per_s``, ``*_cpu_images_per_s`` (per CPU-second of
        this process), ``draft_vs_full``, ``cache_vs_full``, ``cache_build_s`` and ``cache_bytes``.
    """
    flat = [p for views in paths for p in views]
    rows = []
    for size in sizes:
        for stale in cache_dir.glob(f"bench_{size}px.*"):
            stale.unlink()
        start = time.perf_counter()
        cache = ImageCache.open_or_build(paths, size, cache_dir, "bench", progress=False)
        build_s = time.perf_counter() - start

        full = functools.partial(_decode_all, flat, size, False)
        draft = functools.partial(_decode_all, flat, size, True)
        cached = functools.partial(_copy_all, cache.array)
        draft()  # warm the page cache and Pillow
        totals = {name: [0, 0.0, 0.0] for name in ("full", "draft", "cache")}
        per_round: dict[str, list[float]] = {"draft": [], "cache": []}
        for _ in range(rounds):
            rates = {}
            for name, work in (("full", full), ("draft", draft), ("cache", cached)):
                items, wall, cpu = _timed_pass(work, min_seconds if name != "full" else 0.0)
                totals[name][0] += items
                totals[name][1] += wall
                totals[name][2] += cpu
                rates[name] = items / wall
            per_round["draft"].append(rates["draft"] / rates["full"])
            per_round["cache"].append(rates["cache"] / rates["full"])
        row: dict[str, object] = {"size": size, "images": len(flat)}
        for name, (items, wall, cpu) in totals.items():
            row[f"{name}_images_per_s"] = items / wall
            row[f"{name}_cpu_images_per_s"] = items / cpu if cpu > 0 else None
            row[f"{name}_us_per_image"] = 1e6 * wall / items
        row["draft_vs_full"] = statistics.median(per_round["draft"])
        row["cache_vs_full"] = statistics.median(per_round["cache"])
        row["cache_build_s"] = build_s
        row["cache_bytes"] = cache.data_path.stat().st_size
        rows.append(row)
    return rows


def _epochs(loader: DataLoader, epochs: int) -> tuple[int, float]:
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            seen += len(batch["uuid"])
    return seen, time.perf_counter() - start


def loader_rates(
    table: pd.DataFrame,
    size: int,
    cache_dir: Path,
    workers: Sequence[int] = (0, 1, 2),
    batch_size: int = 32,
    epochs: int = 2,
) -> list[dict[str, object]]:
    """Locations per second through a DataLoader, per image source and worker count.

    Sources: JPEG draft decode, the ``uint8`` cache held in memory, and the same cache
    with the training augmentation (random resized crop and colour jitter per view),
    which is what ``configs/quick_cpu.yaml`` trains with. Workers are persistent; one
    untimed epoch starts them and fills the page cache, then ``epochs`` epochs are timed.

    Returns:
        One dict per (source, workers) with ``locations_per_s`` and ``images_per_s``.
    """
    cache = ImageCache.open_or_build(view_paths(table), size, cache_dir, "loader", progress=False, in_memory=True)
    sources = {
        "JPEG draft decode": geodataset.GeoDataset(table, size, use_draft=True),
        "uint8 cache (memory)": geodataset.GeoDataset(table, size, image_cache=cache),
        "uint8 cache + augmentation": geodataset.GeoDataset(
            table, size, image_cache=cache, augment=augment.TrainAugmentation()
        ),
    }
    rows = []
    for source, dataset in sources.items():
        for n in workers:
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=n, persistent_workers=n > 0)
            _epochs(loader, 1)
            seen, wall = _epochs(loader, epochs)
            del loader
            rows.append(
                {
                    "source": source,
                    "workers": n,
                    "size": size,
                    "batch_size": batch_size,
                    "locations_per_s": seen / wall,
                    "images_per_s": 4 * seen / wall,
                }
            )
    return rows


def dataset_summary(table: pd.DataFrame) -> dict[str, object]:
    """Locations, JPEG count and mean JPEG size (bytes) of a dataset table."""
    sizes = [os.path.getsize(p) for views in view_paths(table) for p in views]
    return {"locations": len(table), "jpegs": len(sizes), "mean_jpeg_bytes": float(np.mean(sizes)) if sizes else 0.0}
