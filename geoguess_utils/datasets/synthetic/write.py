"""Write the synthetic dataset in the LUMEN layout, in parallel and deterministically."""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from geoguess_utils.data.layout import CSV_NAME, HEADINGS, WRITTEN_IMAGE_DIR
from geoguess_utils.datasets.synthetic.density import Density, check_density, sample_locations, sample_rng
from geoguess_utils.datasets.synthetic.render import DEFAULT_SIZE, check_size, encode_jpeg, location_rng, render_scene
from geoguess_utils.datasets.synthetic.scene import SOURCE_LABEL, Scenes, describe_locations
from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.io import atomic_write_csv

CSV_COLUMNS = ("uuid", "latitude", "longitude", "source")


def _render_chunk(job: tuple[Scenes, list[str], list[int], int, int, str]) -> int:
    """Render and write the locations of one chunk; returns how many were written."""
    scenes, uuids, indices, seed, size, folder = job
    root = Path(folder)
    for row, (name, index) in enumerate(zip(uuids, indices, strict=True)):
        rng = location_rng(seed, index)
        views = render_scene(scenes.subset(slice(row, row + 1)), rng, size)
        quality = int(rng.integers(78, 93))
        target = root / name
        target.mkdir()
        for heading, picture in zip(HEADINGS, views, strict=True):
            (target / f"{heading}.jpg").write_bytes(encode_jpeg(picture, quality))
    return len(uuids)


def _default_workers(n_locations: int) -> int:
    if n_locations < 400:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork where the platform allows it (works from scripts and notebooks alike); spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def generate_dataset(
    out_dir: str | os.PathLike[str],
    n_locations: int,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    density: Density = "uniform",
) -> pd.DataFrame:
    """Write a synthetic dataset in the LUMEN layout.

    The images go to a hidden staging folder first and are moved into place in one
    rename, and ``data.csv`` is written atomically last: an interrupted run leaves no
    half-made dataset behind.

    Args:
        out_dir: Dataset root; created when missing.
        n_locations: Number of locations (folders), >= 1.
        size: Side of the square JPEGs in pixels, 32..640.
        seed: Seed of everything; the same seed gives the same bytes.
        workers: Processes drawing images; ``None`` picks one per CPU core (one for
            small datasets). The output does not depend on it.
        overwrite: Replace an existing ``data.csv`` and ``images/`` in ``out_dir``.
        progress: Called with ``(done, total)`` after each chunk of locations.
        density: Where the locations lie: ``"uniform"`` by area over the mainland (the
            default), or ``"settlements"``, dense around towns, along the roads between
            them and the coast and sparse in the mountains, like real Street View coverage
            (see :mod:`geoguess_utils.datasets.synthetic.density`).

    Returns:
        The table written to ``data.csv``: uuid, latitude, longitude, source.

    Raises:
        ConfigError: For a bad size, count or density, or when ``out_dir`` already holds a
            dataset and ``overwrite`` is false.
        GeoguessError: When the folder cannot be written.
    """
    check_size(size)
    check_density(density)
    if int(n_locations) < 1:
        raise ConfigError(f"the number of locations must be at least 1, got {n_locations}")
    root = Path(out_dir)
    csv_path, images_path = root / CSV_NAME, root / WRITTEN_IMAGE_DIR
    if not overwrite and (csv_path.exists() or images_path.exists()):
        raise ConfigError(
            f"{root} already holds a dataset ({CSV_NAME} or {WRITTEN_IMAGE_DIR}/); "
            "choose another folder or overwrite it"
        )
    n = int(n_locations)
    rng = sample_rng(seed)
    lat, lon = sample_locations(n, rng, density)
    uuids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    scenes = describe_locations(lat, lon)

    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{WRITTEN_IMAGE_DIR}.", suffix=".partial", dir=root))
    except OSError as exc:
        raise GeoguessError(f"could not create {root}: {exc.strerror or exc}") from exc
    try:
        n_workers = _default_workers(n) if workers is None else max(1, int(workers))
        chunk = max(1, min(64, math.ceil(n / (4 * n_workers))))
        jobs = [
            (
                scenes.subset(slice(s, s + chunk)),
                uuids[s : s + chunk],
                list(range(s, min(s + chunk, n))),
                int(seed),
                int(size),
                str(staging),
            )
            for s in range(0, n, chunk)
        ]
        done = 0
        if n_workers == 1:
            results = map(_render_chunk, jobs)
            for count in results:
                done += count
                if progress:
                    progress(done, n)
        else:
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=_pool_context()) as pool:
                for count in pool.map(_render_chunk, jobs):
                    done += count
                    if progress:
                        progress(done, n)
        csv_path.unlink(missing_ok=True)
        if images_path.exists():
            old = root / f".{WRITTEN_IMAGE_DIR}.old-{time.time_ns()}"
            os.replace(images_path, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, images_path)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GeoguessError(f"could not write the images under {root}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    table = pd.DataFrame(
        {"uuid": uuids, "latitude": lat, "longitude": lon, "source": SOURCE_LABEL}, columns=list(CSV_COLUMNS)
    )
    atomic_write_csv(table, csv_path)
    return table
