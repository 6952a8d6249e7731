"""What the course does with data and trained models, so the notebooks stay thin.

Four groups of helpers, in the order the course meets them:

* **Looking at a dataset** (notebook 01): the folder layout, one location's views, how
  many locations each region holds, and a copy with known faults to try the validator on.
* **Training runs** (notebook 04, ``make demo``): the arguments of ``geoguess fit`` for
  a run folder that can be found again, training through that same LightningCLI entry
  point, the checkpoints of a run, and its training curves from the CSV log.
* **Predictions** (notebook 05, ``geoguess map``): a table of true and predicted points
  with per-location class probabilities, for one split of the training run or for whole
  dataset roots, from a task or a checkpoint.
* **Errors**: summaries, comparison of tasks, errors per grid cell, their figures, and
  the interactive map.

Coordinates are ``(lat, lon)`` in degrees and distances in km at every public edge.
Nothing is read or computed at import time.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geoguess_utils import geo, lumen, metrics, paths
from geoguess_utils.errors import CheckpointError, ConfigError, DataError, GeoguessError
from geoguess_utils.io import atomic_write_bytes, atomic_write_csv

if TYPE_CHECKING:
    import folium
    from matplotlib.figure import Figure

    from geoguess_utils.tasks import GeoTask

# ----------------------------------------------------------------------------- looking at a dataset

DENSITY_MIN_AREA_KM2 = 200.0
"""Cells with less Croatian land than this are left out of density statistics (too noisy)."""

FAULT_KINDS: tuple[str, ...] = ("missing_image", "truncated_image", "swapped_coordinates", "missing_row")
"""Faults :func:`write_faulty_copy` puts into its copy, one location each."""


def dataset_layout(root: str | os.PathLike[str], examples: int = 2) -> str:
    """A short tree of a LUMEN dataset root: the CSV, the image folder and a few locations.

    Args:
        root: Dataset root holding ``data.csv`` and ``data/`` or ``images/``.
        examples: How many location folders to list.

    Returns:
        Several lines of text, the root's own name first.

    Raises:
        DataError: When the root has no image folder or its CSV cannot be read.
    """
    folder = Path(root)
    image_dir = lumen.find_image_dir(folder)
    csv = folder / lumen.CSV_NAME
    locations = sorted(p for p in image_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    lines = [f"{folder.name}/"]
    if csv.is_file():
        table = lumen.read_data_csv(csv)
        columns = ", ".join(str(c) for c in pd.read_csv(csv, nrows=0).columns)
        lines.append(f"├── {lumen.CSV_NAME:<12} {len(table)} rows: {columns}")
    else:
        lines.append(f"├── (no {lumen.CSV_NAME}: this root can be predicted but not trained on)")
    lines.append(f"└── {image_dir.name + '/':<12} {len(locations)} folders, one per uuid")
    shown = locations[: max(0, int(examples))]
    for i, location in enumerate(shown):
        last = i == len(shown) - 1 and len(shown) == len(locations)
        files = sorted((p.name for p in location.iterdir()), key=_view_order)
        size = _image_size_text(location / files[0]) if files else ""
        lines.append(f"    {'└──' if last else '├──'} {location.name}/  {' '.join(files)}{size}")
    if len(locations) > len(shown):
        lines.append(f"    └── ... {len(locations) - len(shown)} more")
    return "\n".join(lines)


def _view_order(name: str) -> tuple[int, str]:
    stem = Path(name).stem
    return (int(stem), name) if stem.isdigit() else (10**6, name)


def _image_size_text(path: Path) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return f"  ({image.width}x{image.height} px {image.format})"
    except (OSError, UnidentifiedImageError):
        return "  (unreadable image)"


def location_views(location: Mapping[str, object]) -> dict[int, np.ndarray]:
    """The four views of one location, at their stored size.

    Args:
        location: A row of :func:`geoguess_utils.lumen.load_locations` (it needs the
            ``path_0`` ... ``path_270`` columns).

    Returns:
        ``{heading: uint8 array (H, W, 3)}`` for headings 0, 90, 180, 270.

    Raises:
        DataError: When a view is missing or cannot be decoded (the file is named).
    """
    from PIL import Image, UnidentifiedImageError

    views = {}
    for heading, column in zip(lumen.HEADINGS, lumen.PATH_COLUMNS, strict=True):
        path = str(location[column])
        try:
            with Image.open(path) as image:
                views[heading] = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: cannot read the view at heading {heading}: {exc}") from exc
    return views


def location_summary(locations: pd.DataFrame) -> pd.DataFrame:
    """Counts and coordinate ranges, per dataset root and overall.

    Args:
        locations: Output of :func:`geoguess_utils.lumen.load_locations`.

    Returns:
        One row per root plus ``"all"``: ``locations``, ``lat_min``, ``lat_max``,
        ``lon_min``, ``lon_max`` (degrees), ``north_south_km`` and ``east_west_km``
        (extent through the middle of the box).
    """
    rows = {}
    groups = [(str(root), part) for root, part in locations.groupby("root", sort=False)]
    if len(groups) != 1:
        groups.append(("all", locations))
    else:
        groups = [("all", locations)]
    for name, part in groups:
        lat, lon = part["latitude"].to_numpy(float), part["longitude"].to_numpy(float)
        mid_lat, mid_lon = (np.nanmin(lat) + np.nanmax(lat)) / 2, (np.nanmin(lon) + np.nanmax(lon)) / 2
        rows[name] = {
            "locations": len(part),
            "lat_min": np.nanmin(lat),
            "lat_max": np.nanmax(lat),
            "lon_min": np.nanmin(lon),
            "lon_max": np.nanmax(lon),
            "north_south_km": float(geo.haversine_km(np.nanmin(lat), mid_lon, np.nanmax(lat), mid_lon)),
            "east_west_km": float(geo.haversine_km(mid_lat, np.nanmin(lon), mid_lat, np.nanmax(lon))),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def on_islands(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Whether each location lies on a Croatian island (land of the full country, not the mainland).

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).

    Returns:
        Boolean array, shape (N,).
    """
    from geoguess_utils import borders

    return borders.is_on_land(lat, lon, "full") & ~borders.is_on_land(lat, lon, "mainland")


def cell_density(lat: np.ndarray, lon: np.ndarray, spacing_deg: float = 0.3, variant: str = "mainland") -> pd.DataFrame:
    """Locations per grid cell, and per 1,000 km² of the cell's Croatian land.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        spacing_deg: Cell side, degrees.
        variant: Croatia variant the cells are clipped to (``"mainland"`` or ``"full"``).

    Returns:
        One row per grid cell that intersects Croatia: ``cell_id``, ``lon_min``,
        ``lat_min``, ``lon_max``, ``lat_max``, ``land_km2`` (area of Croatia inside the
        cell, computed in the projected CRS), ``n`` (locations inside) and
        ``per_1000_km2`` (NaN where ``land_km2`` is below :data:`DENSITY_MIN_AREA_KM2`).
    """
    import shapely

    from geoguess_utils import borders, grid

    cells = grid.build_grid(spacing_deg, variant)  # type: ignore[arg-type]
    land = borders.croatia(variant)  # type: ignore[arg-type]
    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    rows = []
    for cell in cells.itertuples():
        piece = shapely.intersection(cell.geometry, land)
        area_km2 = float(shapely.area(shapely.transform(piece, _projector()))) / 1e6
        inside = (lon_a >= cell.lon_min) & (lon_a < cell.lon_max) & (lat_a >= cell.lat_min) & (lat_a < cell.lat_max)
        rows.append(
            {
                "cell_id": int(cell.cell_id),
                "lon_min": float(cell.lon_min),
                "lat_min": float(cell.lat_min),
                "lon_max": float(cell.lon_max),
                "lat_max": float(cell.lat_max),
                "land_km2": area_km2,
                "n": int(inside.sum()),
            }
        )
    table = pd.DataFrame(rows)
    big = table["land_km2"] >= DENSITY_MIN_AREA_KM2
    table["per_1000_km2"] = np.where(big, table["n"] / table["land_km2"].clip(lower=1e-9) * 1000.0, np.nan)
    return table


def density_dispersion(density: pd.DataFrame) -> float:
    """How unevenly locations are spread over the land: 1 for uniform, far above 1 for clustered.

    The index of dispersion of the counts per cell, each cell's expected count being its
    share of the land: ``sum((n - e)^2 / e) / (cells - 1)`` over the cells with at least
    :data:`DENSITY_MIN_AREA_KM2` of land. Locations drawn uniformly over the land give
    about 1 (Poisson noise only); locations that follow roads and towns give much more.

    Args:
        density: Output of :func:`cell_density`.

    Returns:
        The index (dimensionless, >= 0).

    Raises:
        DataError: With fewer than two large cells or no location in them.
    """
    big = density[density["land_km2"] >= DENSITY_MIN_AREA_KM2]
    total = big["n"].sum()
    if len(big) < 2 or total == 0:
        raise DataError("too few cells or locations to measure how evenly the locations are spread")
    expected = total * big["land_km2"] / big["land_km2"].sum()
    return float((((big["n"] - expected) ** 2) / expected).sum() / (len(big) - 1))


def _projector():  # noqa: ANN202 - a coordinate function for shapely.transform
    def project(coords: np.ndarray) -> np.ndarray:
        x, y = geo.to_projected(coords[:, 1], coords[:, 0])
        return np.column_stack([x, y])

    return project


def plot_locations_and_density(lat: np.ndarray, lon: np.ndarray, density: pd.DataFrame, title: str = "") -> Figure:
    """Two maps side by side: every location, and locations per 1,000 km² of each cell.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        density: Output of :func:`cell_density`.
        title: Figure title.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    from geoguess_utils import maps

    fig, (left, right) = plt.subplots(1, 2, figsize=(13.0, 5.8))
    maps.plot_locations(lat, lon, title=f"{len(lat)} locations", ax=left, size=4)
    right.set_facecolor(maps.SEA_COLOUR)
    maps.draw_croatia(right)
    values = density["per_1000_km2"]
    vmax = float(np.nanpercentile(values, 95)) if values.notna().any() else 1.0
    _draw_cells(right, density, values.to_numpy(), "viridis", 0.0, vmax, "locations per 1,000 km² of land")
    _degree_axes(right)
    right.set_title(f"density per cell (cells with < {DENSITY_MIN_AREA_KM2:.0f} km² of land left blank)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _degree_axes(ax) -> None:  # noqa: ANN001
    """Same kilometres per unit along both axes at Croatia's mid latitude, degree labels."""
    ax.set_aspect(1 / np.cos(np.radians(44.5)))
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")


def _draw_cells(ax, cells: pd.DataFrame, values: np.ndarray, cmap: str, vmin: float, vmax: float, label: str) -> None:  # noqa: ANN001
    """Fill the cells' boxes with ``values`` (NaN: outline only) and add a colour bar."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    boxes = [
        Rectangle((r.lon_min, r.lat_min), r.lon_max - r.lon_min, r.lat_max - r.lat_min) for r in cells.itertuples()
    ]
    has_value = np.isfinite(values)
    filled = PatchCollection(
        [b for b, keep in zip(boxes, has_value, strict=True) if keep], cmap=cmap, alpha=0.8, edgecolor="#444444"
    )
    filled.set_array(np.asarray(values, dtype=float)[has_value])
    filled.set_clim(vmin, max(vmax, vmin + 1e-9))
    filled.set_linewidth(0.4)
    ax.add_collection(filled)
    empty = PatchCollection(
        [b for b, keep in zip(boxes, has_value, strict=True) if not keep],
        facecolor="none",
        edgecolor="#999999",
        linewidth=0.4,
    )
    ax.add_collection(empty)
    plt.colorbar(filled, ax=ax, shrink=0.75, label=label)


def write_faulty_copy(
    source_root: str | os.PathLike[str], out: str | os.PathLike[str], n_locations: int = 8
) -> dict[str, str]:
    """Copy a few locations of a dataset and break them on purpose, to see the validator work.

    One location each gets: a deleted view (``missing_image``), a view cut in half
    (``truncated_image``), its latitude and longitude exchanged in ``data.csv``
    (``swapped_coordinates``), and its CSV row removed while the folder stays
    (``missing_row``). The other locations stay intact.

    Args:
        source_root: A valid dataset root with ``data.csv``.
        out: New folder to write the copy into (must not exist yet).
        n_locations: How many locations to copy, at least ``len(FAULT_KINDS) + 1``.

    Returns:
        ``{uuid: fault kind}`` for the broken locations.

    Raises:
        ConfigError: When ``out`` exists or ``n_locations`` is too small.
        DataError: When the source has too few locations.
    """
    target = Path(out)
    if target.exists():
        raise ConfigError(f"{target} exists; write the faulty copy into a new folder")
    if n_locations < len(FAULT_KINDS) + 1:
        raise ConfigError(f"n_locations must be at least {len(FAULT_KINDS) + 1}, got {n_locations}")
    source = lumen.load_locations([source_root]).head(n_locations).reset_index(drop=True)
    if len(source) < n_locations:
        raise DataError(f"{source_root} holds only {len(source)} locations, {n_locations} were asked for")
    for row in source.itertuples():
        for column, name in zip(lumen.PATH_COLUMNS, lumen.VIEW_FILES, strict=True):
            data = Path(getattr(row, column)).read_bytes()
            atomic_write_bytes(target / "images" / row.uuid / name, data)
    faults = dict(zip(source["uuid"][: len(FAULT_KINDS)], FAULT_KINDS, strict=True))
    table = source[["uuid", "latitude", "longitude"]].copy()
    for uuid, kind in faults.items():
        folder = target / "images" / uuid
        if kind == "missing_image":
            (folder / lumen.VIEW_FILES[1]).unlink()
        elif kind == "truncated_image":
            view = folder / lumen.VIEW_FILES[2]
            data = view.read_bytes()
            atomic_write_bytes(view, data[: len(data) // 2])
        elif kind == "swapped_coordinates":
            at = table["uuid"] == uuid
            table.loc[at, ["latitude", "longitude"]] = table.loc[at, ["longitude", "latitude"]].to_numpy()
        elif kind == "missing_row":
            table = table[table["uuid"] != uuid]
    atomic_write_csv(table, target / lumen.CSV_NAME, index=False, float_format="%.8f")
    return faults


# ----------------------------------------------------------------------------- training runs

TASK_CLASSES: dict[str, str] = {
    "classification": "geoguess_utils.tasks.ClassificationTask",
    "regression": "geoguess_utils.tasks.RegressionTask",
}
"""LightningCLI class path of each task."""

REGRESSION_LR = 1e-4
"""Learning rate of the regression head (the configs are tuned for the classifier)."""

GPU_CONFIG = "gpu_full.yaml"
CPU_CONFIG = "quick_cpu.yaml"

QUICK_OVERRIDES: dict[str, str] = {
    "--model.init_args.backbone": "efficientnet_lite0",
    "--model.init_args.pretrained": "true",
    "--data.image_size": "32",
    "--data.batch_size": "32",
    "--data.num_workers": "0",
    "--data.persistent_workers": "false",
    "--data.pin_memory": "false",
    "--trainer.max_epochs": "2",
    "--trainer.limit_train_batches": "12",
    "--trainer.log_every_n_steps": "4",
}
"""What a QUICK run changes in any config: a small backbone whose weights ship with the
package, 32 px views, two epochs of 12 batches. A minute on two CPU cores; the numbers
it reaches say that the pipeline works, not how good a model can get."""

_RUN_FILES = {"checkpoints", "metrics.csv", "hparams.yaml", "config.yaml", "split.csv", "skipped_locations.csv"}


def default_config() -> str:
    """``gpu_full.yaml`` when a CUDA GPU is visible, else ``quick_cpu.yaml``."""
    import torch

    return GPU_CONFIG if torch.cuda.is_available() else CPU_CONFIG


def resolve_config(config: str | os.PathLike[str] | None = None, root: str | os.PathLike[str] | None = None) -> Path:
    """The YAML file of a training configuration.

    Args:
        config: ``None`` or ``"auto"`` (see :func:`default_config`), a name in
            ``configs/`` with or without ``.yaml``, or a path to a file.
        root: Project root; found with :func:`geoguess_utils.paths.project_root` when ``None``.

    Raises:
        ConfigError: When the file does not exist.
    """
    project = Path(root) if root is not None else paths.project_root()
    name = default_config() if config is None or str(config) == "auto" else str(config)
    candidates = [Path(name), project / name, project / "configs" / name, project / "configs" / f"{name}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"no training config {name!r}: looked for {', '.join(str(c) for c in candidates)}")


@dataclass(frozen=True)
class RunFiles:
    """The files of one training run folder (``<run_dir>/checkpoints/best.ckpt`` and the logs)."""

    run_dir: Path

    @property
    def best_checkpoint(self) -> Path | None:
        """The checkpoint with the best validation mean km, or ``None``."""
        folder = self.run_dir / "checkpoints"
        if (folder / "best.ckpt").is_file():
            return folder / "best.ckpt"
        found = sorted(folder.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None

    @property
    def last_checkpoint(self) -> Path | None:
        """The checkpoint of the last finished epoch (to resume from), or ``None``."""
        path = self.run_dir / "checkpoints" / "last.ckpt"
        return path if path.is_file() else None

    @property
    def checkpoint(self) -> Path | None:
        """The best checkpoint, else the last one, else ``None``."""
        return self.best_checkpoint or self.last_checkpoint

    @property
    def metrics_csv(self) -> Path:
        """The CSV logger's file: one row per logging step and per epoch."""
        return self.run_dir / "metrics.csv"

    @property
    def split_csv(self) -> Path:
        """Which location went to train, val and test in this run."""
        return self.run_dir / "split.csv"

    @property
    def complete(self) -> bool:
        """Whether the run left a checkpoint and its logs."""
        return self.checkpoint is not None and self.metrics_csv.is_file() and self.split_csv.is_file()


def run_files_of_checkpoint(checkpoint: str | os.PathLike[str]) -> RunFiles:
    """The run folder a checkpoint was written into (``<run_dir>/checkpoints/<name>.ckpt``)."""
    return RunFiles(Path(checkpoint).resolve().parent.parent)


def fit_arguments(
    config: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    run_dir: str | os.PathLike[str],
    task: str = "classification",
    quick: bool = False,
    seed: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """Arguments of ``geoguess fit`` for a run written into exactly ``run_dir``.

    Both loggers (TensorBoard and CSV) write into ``run_dir`` and the best checkpoint
    is always called ``best.ckpt``, so the run can be found again by its folder alone.

    Args:
        config: YAML config file.
        roots: Labelled dataset roots.
        run_dir: Folder of the run's logs, ``split.csv`` and ``checkpoints/``.
        task: ``"classification"`` or ``"regression"`` (the latter with :data:`REGRESSION_LR`).
        quick: Add :data:`QUICK_OVERRIDES`.
        seed: Seed of Lightning and of the train/val/test split.
        extra: More ``--key value`` overrides, applied last.

    Returns:
        The argument list (without the ``fit`` command name).
    """
    if task not in TASK_CLASSES:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASK_CLASSES)}")
    if not roots:
        raise ConfigError("no dataset roots to train on")
    folder = Path(run_dir).resolve()
    loggers = [
        {
            "class_path": f"pytorch_lightning.loggers.{name}",
            "init_args": {"save_dir": str(folder.parent), "name": "", "version": folder.name},
        }
        for name in ("TensorBoardLogger", "CSVLogger")
    ]
    argv = [
        "--config",
        str(config),
        "--model.class_path",
        TASK_CLASSES[task],
        "--data.roots",
        json.dumps([str(Path(r).resolve()) for r in roots]),
        "--trainer.logger",
        json.dumps(loggers),
        "--checkpoint.filename",
        "best",
        "--seed_everything",
        str(int(seed)),
        "--data.seed",
        str(int(seed)),
        "--trainer.enable_progress_bar",
        "false",
    ]
    if task == "regression":
        argv += ["--model.init_args.lr", str(REGRESSION_LR)]
    if paths.is_synthetic(roots):
        argv += ["--data.expected_source_size", "null"]  # the sample's images are small, not LUMEN's 640 px
    if quick:
        for key, value in QUICK_OVERRIDES.items():
            argv += [key, value]
    return argv + list(extra)


def clear_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Delete a previous run's folder before a new run writes there.

    Raises:
        ConfigError: When the folder holds anything a training run does not write,
            so that no unrelated folder is ever deleted.
    """
    folder = Path(run_dir)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a run folder")
    foreign = [p.name for p in folder.iterdir() if p.name not in _RUN_FILES and not p.name.startswith("events.out.")]
    if foreign:
        raise ConfigError(
            f"{folder} holds files a training run does not write ({', '.join(sorted(foreign)[:5])}); "
            "choose another run folder"
        )
    shutil.rmtree(folder)


def train(
    config: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    run_dir: str | os.PathLike[str],
    task: str = "classification",
    quick: bool = False,
    seed: int = 0,
    extra: Sequence[str] = (),
) -> RunFiles:
    """Train one task with ``geoguess fit`` (LightningCLI) in this process, then test it.

    A previous run in ``run_dir`` is removed first (see :func:`clear_run_dir`).

    Args:
        config: YAML config (see :func:`resolve_config`).
        roots: Labelled dataset roots.
        run_dir: Folder for this run.
        task: ``"classification"`` or ``"regression"``.
        quick: Shrink the run (see :data:`QUICK_OVERRIDES`).
        seed: Seed of training and of the split.
        extra: More ``--key value`` overrides.

    Returns:
        The run's files.

    Raises:
        GeoguessError: When training was interrupted or wrote no checkpoint.
    """
    from geoguess_utils import training

    clear_run_dir(run_dir)
    argv = fit_arguments(resolve_config(config), roots, run_dir, task, quick, seed, extra)
    try:
        status = training.run(argv)
    except SystemExit as exc:  # the argument parser refused a value; it has printed why
        raise ConfigError(
            f"geoguess fit refused the arguments (exit status {exc.code}); see the message above"
        ) from exc
    files = RunFiles(Path(run_dir).resolve())
    if status != 0:
        raise GeoguessError(f"training in {files.run_dir} was interrupted; the best checkpoint so far is kept")
    if files.checkpoint is None:
        raise GeoguessError(f"training in {files.run_dir} wrote no checkpoint")
    return files


def find_or_train(
    config: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    run_dir: str | os.PathLike[str],
    task: str = "classification",
    quick: bool = False,
    seed: int = 0,
) -> RunFiles:
    """The finished run in ``run_dir``, or a new one trained there with :func:`train`.

    Args:
        config: Config used when a run must be trained.
        roots: Labelled dataset roots.
        run_dir: Folder of the run.
        task: ``"classification"`` or ``"regression"``.
        quick: Train a QUICK run when one is needed.
        seed: Seed when one is trained.

    Returns:
        The run's files.
    """
    files = RunFiles(Path(run_dir).resolve())
    if files.complete:
        return files
    print(f"no finished {task} run in {files.run_dir}: training one now, as notebook 04 does")
    return train(config, roots, run_dir, task, quick, seed)


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-epoch training curves from a CSV logger file.

    Args:
        path: ``metrics.csv`` of a run.

    Returns:
        One row per epoch (index ``epoch``), one column per logged train/val value
        (``train/loss_epoch``, ``val/loss``, ``val/haversine_km``, ...); step-level and
        test values are left out.

    Raises:
        DataError: When the file is missing, unreadable or has no epoch rows.
    """
    table = _read_metrics_csv(path)
    keep = [
        c
        for c in table.columns
        if (c.startswith("train/") or c.startswith("val/")) and not c.endswith("_step") and c != "train/loss"
    ]
    rows = table[table["epoch"].notna()]
    curves = rows.groupby(rows["epoch"].astype(int))[keep].first().dropna(how="all")
    if curves.empty:
        raise DataError(f"{path} holds no per-epoch values (did training finish an epoch?)")
    return curves


def logged_test_results(path: str | os.PathLike[str]) -> dict[str, float]:
    """The ``test/...`` values a run logged after training (empty when it did not test).

    Args:
        path: ``metrics.csv`` of a run.

    Returns:
        ``{name without the "test/" prefix: value}``.
    """
    table = _read_metrics_csv(path)
    out = {}
    for column in table.columns:
        if column.startswith("test/"):
            values = table[column].dropna()
            if len(values):
                out[column.removeprefix("test/")] = float(values.iloc[-1])
    return out


def _read_metrics_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"no training log at {file}")
    try:
        table = pd.read_csv(file)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{file}: cannot read the training log: {exc}") from exc
    if "epoch" not in table.columns:
        raise DataError(f"{file} is not a CSV logger file (no 'epoch' column)")
    return table


def plot_training_curves(curves: Mapping[str, pd.DataFrame]) -> Figure:
    """Loss of each run (train and validation) and the validation mean error of all runs.

    Args:
        curves: ``{run name: output of read_metrics}``.

    Returns:
        The figure: one loss panel per run, then a shared km panel.
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("no training curves to plot")
    fig, axes = plt.subplots(1, len(curves) + 1, figsize=(4.6 * (len(curves) + 1), 3.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, table) in enumerate(curves.items()):
        ax = axes[0, i]
        colour = colours[i % len(colours)]
        for column, style, label in (("train/loss_epoch", "-", "train"), ("val/loss", "--", "validation")):
            if column in table:
                ax.plot(table.index, table[column], style, marker="o", color=colour, label=label)
        ax.set_title(f"{name}: loss")
        ax.set_xlabel("epoch")
        ax.legend()
        km = axes[0, -1]
        if "val/haversine_km" in table:
            km.plot(table.index, table["val/haversine_km"], marker="o", color=colour, label=name)
    km = axes[0, -1]
    km.set_title("validation: mean error")
    km.set_xlabel("epoch")
    km.set_ylabel("km")
    km.legend()
    for ax in axes[0]:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- predictions


@dataclass
class Predictions:
    """Predicted and true points of a set of locations.

    Attributes:
        table: One row per location: ``uuid``, ``true_lat``, ``true_lon``,
            ``pred_lat``, ``pred_lon`` (degrees), ``error_km`` (NaN without truth) and
            the view paths ``path_0`` ... ``path_270``.
        probabilities: Class probabilities, shape (N, K), rows in ``table`` order,
            columns in ``class_index`` order; ``None`` for a regression model.
        task_name: ``"classification"`` or ``"regression"``.
        class_table: The model's classes (``GeoContext.class_table``).
    """

    table: pd.DataFrame
    probabilities: np.ndarray | None
    task_name: str
    class_table: pd.DataFrame

    @property
    def labelled(self) -> bool:
        """Whether every location has a true position (and thus an error)."""
        return bool(np.isfinite(self.table["error_km"].to_numpy(dtype=np.float64)).all())


def _as_task(task_or_checkpoint: GeoTask | str | os.PathLike[str]) -> GeoTask:
    from geoguess_utils.checkpoint import load_task

    if isinstance(task_or_checkpoint, (str, os.PathLike)):
        return load_task(task_or_checkpoint)
    return task_or_checkpoint


def predict(
    task_or_checkpoint: GeoTask | str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    split: str | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    device: str = "auto",
    num_workers: int = 0,
) -> Predictions:
    """Predict locations with a trained task: one split of its training data, or whole roots.

    Args:
        task_or_checkpoint: A trained task (its GeoContext and image size set) or a
            checkpoint file written by ``geoguess fit``.
        roots: Dataset roots. With ``split``: the roots the model was trained on.
            Without: every location in them (``data.csv`` optional; without it there
            is no truth and ``error_km`` is NaN).
        split: ``"train"``, ``"val"`` or ``"test"``, or ``None`` for every location.
        split_csv: The training run's ``split.csv``; required with ``split``.
        batch_size: Locations per batch.
        device: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ...
        num_workers: DataLoader worker processes.

    Returns:
        The predictions, in the dataset's order.

    Raises:
        ConfigError: For an unknown split, or a split without ``split_csv``.
        CheckpointError: When the task has no context or image size.
        DataError: When the dataset is invalid (every problem is listed).
    """
    import torch
    from torch.utils.data import DataLoader

    from geoguess_utils.data import SPLITS, GeoDataModule
    from geoguess_utils.tasks import ClassificationTask

    task = _as_task(task_or_checkpoint)
    if task.context is None or task.image_size is None:
        raise CheckpointError("the task has no GeoContext or image size: train it first or load a checkpoint")
    common = {
        "image_size": task.image_size,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "augment": False,
        "context": task.context.to_dict(),
        "expected_source_size": None,
    }
    root_list = [str(r) for r in roots]
    if split is not None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if split_csv is None or not Path(split_csv).is_file():
            raise ConfigError(f"predicting the {split} split needs the training run's split.csv (got {split_csv})")
        module = GeoDataModule(roots=root_list, split_csv=str(split_csv), **common)
        module.setup("test")
        dataset = module.dataset(split)
        assert module.locations is not None
        locations = module.locations[module.locations["split"] == split].reset_index(drop=True)
    else:
        module = GeoDataModule(predict_roots=root_list, **common)
        module.setup("predict")
        dataset = module.dataset("predict")
        assert module.predict_locations is not None
        locations = module.predict_locations.reset_index(drop=True)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    task = task.to(target).eval()
    classify = isinstance(task, ClassificationTask)
    points, probs, uuids = [], [], []
    with torch.inference_mode():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers):
            outputs = task(batch["images"].to(target))
            points.append(task.decode(outputs).numpy())
            if classify:
                probs.append(task.class_probabilities(outputs).numpy())
            uuids += list(batch["uuid"])
    if uuids != locations["uuid"].tolist():
        raise DataError(f"predicted {len(uuids)} locations but the dataset lists {len(locations)}")
    pred = np.concatenate(points) if points else np.empty((0, 2))
    true_lat = locations["latitude"].to_numpy(dtype=np.float64)
    true_lon = locations["longitude"].to_numpy(dtype=np.float64)
    table = pd.DataFrame(
        {
            "uuid": uuids,
            "true_lat": true_lat,
            "true_lon": true_lon,
            "pred_lat": pred[:, 0],
            "pred_lon": pred[:, 1],
            "error_km": geo.haversine_km(true_lat, true_lon, pred[:, 0], pred[:, 1]),
        }
    )
    for column in lumen.PATH_COLUMNS:
        table[column] = locations[column].to_numpy()
    probabilities = np.concatenate(probs) if probs else None
    return Predictions(table, probabilities, task.task_name, task.context.class_table.copy())


# ----------------------------------------------------------------------------- errors


def summarise(predictions: Predictions | pd.DataFrame) -> dict[str, float]:
    """Mean and median error and the shares within 1/25/200/750 km (see :func:`geoguess_utils.metrics.summarise_km`).

    Raises:
        DataError: When some location has no true position.
    """
    table = predictions.table if isinstance(predictions, Predictions) else predictions
    errors = table["error_km"].to_numpy(dtype=np.float64)
    if not np.isfinite(errors).all():
        missing = table.loc[~np.isfinite(errors), "uuid"].head(5).tolist()
        raise DataError(f"some locations have no true position, e.g. {missing}: their error is unknown")
    return metrics.summarise_km(errors)


def compare(runs: Mapping[str, Predictions | pd.DataFrame]) -> pd.DataFrame:
    """The summary of several models side by side, one row per model.

    Args:
        runs: ``{model name: predictions}``.

    Returns:
        Columns ``mean_km``, ``median_km``, ``acc_<t>_km`` and ``count``, indexed by name.
    """
    return pd.DataFrame({name: summarise(p) for name, p in runs.items()}).T.astype({"count": int})


def prediction_spread(predictions: Predictions | pd.DataFrame) -> dict[str, float]:
    """How far points lie from their own mean position, for the true and the predicted points.

    A model that is unsure hedges towards the middle of the country, so its predictions
    spread less than the truth (for the ideal mean-squared-error predictor this follows
    from the law of total variance).

    Returns:
        ``{"true_km": ..., "pred_km": ...}``: mean great-circle distance of the true,
        respectively predicted, points to their mean (computed in projected metres).
    """
    table = predictions.table if isinstance(predictions, Predictions) else predictions
    out = {}
    for name in ("true", "pred"):
        lat = table[f"{name}_lat"].to_numpy(dtype=np.float64)
        lon = table[f"{name}_lon"].to_numpy(dtype=np.float64)
        x, y = geo.to_projected(lat, lon)
        mid_lat, mid_lon = geo.to_latlon(np.array([x.mean()]), np.array([y.mean()]))
        out[f"{name}_km"] = float(geo.haversine_km(lat, lon, mid_lat[0], mid_lon[0]).mean())
    return out


def per_cell_errors(predictions: Predictions) -> pd.DataFrame:
    """Errors grouped by the grid cell the true location falls in.

    Args:
        predictions: Labelled predictions.

    Returns:
        One row per class of the model (class table order): ``class_index``,
        ``cell_id``, the cell bounds, ``n_train`` (training locations of the class),
        ``n`` (predicted locations in it), ``mean_error_km`` and ``median_error_km``
        (NaN where ``n`` is 0).
    """
    from geoguess_utils import grid

    summarise(predictions)  # refuses unlabelled predictions
    table = predictions.class_table.sort_values("class_index").reset_index(drop=True)
    frame = predictions.table
    classes = grid.assign_classes(table, frame["true_lat"], frame["true_lon"])
    stats = pd.DataFrame({"class_index": classes, "error_km": frame["error_km"].to_numpy()}).groupby("class_index")
    errors = stats["error_km"]
    columns = ["class_index", "cell_id", "lon_min", "lat_min", "lon_max", "lat_max", "n_train"]
    out = table[columns].copy()
    out["n"] = out["class_index"].map(errors.size()).fillna(0).astype(np.int64)
    out["mean_error_km"] = out["class_index"].map(errors.mean())
    out["median_error_km"] = out["class_index"].map(errors.median())
    return out


def plot_error_distribution(runs: Mapping[str, Predictions | pd.DataFrame], max_km: float | None = None) -> Figure:
    """Histogram of the errors and the share of locations within each distance, per model.

    Args:
        runs: ``{model name: predictions}``.
        max_km: Right end of both panels; the largest error by default.

    Returns:
        The figure (two panels).
    """
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no predictions to plot")
    tables = {name: p.table if isinstance(p, Predictions) else p for name, p in runs.items()}
    top = max_km or max(float(t["error_km"].max()) for t in tables.values())
    bins = np.linspace(0.0, top, 31)
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11.0, 4.0))
    for name, table in tables.items():
        errors = np.sort(table["error_km"].to_numpy(dtype=np.float64))
        hist.hist(errors, bins=bins, histtype="step", linewidth=1.8, label=f"{name} (mean {errors.mean():.0f} km)")
        share = np.arange(1, len(errors) + 1) / len(errors)
        cdf.step(errors, share, where="post", linewidth=1.8, label=name)
    for threshold in metrics.THRESHOLDS_KM:
        if 0.02 * top <= threshold <= top:  # a line hugging the axis would say nothing
            cdf.axvline(threshold, color="#888888", linestyle=":", linewidth=1)
            cdf.text(threshold, 1.01, f"{threshold} km", ha="center", va="bottom", fontsize=8, color="#555555")
    hist.set_xlabel("error (km)")
    hist.set_ylabel("locations")
    hist.set_title("error distribution")
    hist.legend()
    cdf.set_xlim(0, top)
    cdf.set_ylim(0, 1.0)
    cdf.set_xlabel("distance (km)")
    cdf.set_ylabel("share of locations within the distance")
    cdf.set_title("cumulative share", pad=16)
    cdf.legend(loc="lower right")
    for ax in (hist, cdf):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_cell_errors(cells: Mapping[str, pd.DataFrame], vmax_km: float | None = None) -> Figure:
    """Maps of the grid cells coloured by the mean error of the locations inside them, one per model.

    Args:
        cells: ``{model name: output of per_cell_errors}``.
        vmax_km: Top of the shared colour scale; the largest cell mean by default.

    Returns:
        The figure, one map per model on one colour scale.
    """
    import matplotlib.pyplot as plt

    from geoguess_utils import maps

    if not cells:
        raise ValueError("no cell errors to plot")
    means = np.concatenate([c["mean_error_km"].to_numpy(dtype=np.float64) for c in cells.values()])
    top = vmax_km or (float(np.nanmax(means)) if np.isfinite(means).any() else 1.0)
    fig, axes = plt.subplots(1, len(cells), figsize=(6.6 * len(cells), 5.8), squeeze=False)
    for ax, (name, table) in zip(axes[0], cells.items(), strict=True):
        ax.set_facecolor(maps.SEA_COLOUR)
        maps.draw_croatia(ax)
        values = table["mean_error_km"].to_numpy(dtype=np.float64)
        _draw_cells(ax, table, values, "RdYlGn_r", 0.0, top, "mean error in the cell (km)")
        _degree_axes(ax)
        ax.set_title(f"{name}: mean error per cell ({int(table['n'].sum())} locations)")
    fig.tight_layout()
    return fig


def prediction_map(
    predictions: Predictions,
    title: str = "Predictions",
    focus: int | str | None = None,
    thumbnail_px: int | None = 64,
    max_locations: int | None = 400,
) -> folium.Map:
    """The interactive map of :mod:`geoguess_utils.webmap` for a set of predictions.

    Lines join true and predicted points, coloured by error; popups show the uuid,
    the error and the four views; the grid is coloured by per-cell mean error; for a
    classifier, a layer (off at first) shows one location's probability over the cells.

    Args:
        predictions: Labelled predictions.
        title: Heading of the legend.
        focus: Location of the probability layer (row position or uuid); the location
            with the median error when ``None``, a typical case rather than an outlier.
        thumbnail_px: Side of the embedded thumbnails; ``None`` embeds none (smaller file).
        max_locations: Draw at most this many locations (the first ones), which keeps
            the page small; ``None`` draws all.

    Returns:
        The folium map (save it with :func:`geoguess_utils.webmap.save_map`).
    """
    from geoguess_utils import webmap

    summarise(predictions)
    table = predictions.table
    probabilities = predictions.probabilities
    if max_locations is not None and len(table) > max_locations:
        table = table.iloc[:max_locations]
        probabilities = None if probabilities is None else probabilities[:max_locations]
    if focus is None and probabilities is not None:
        errors = table["error_km"].to_numpy()
        focus = int(np.argsort(errors)[len(errors) // 2])
    return webmap.build_map(
        table,
        predictions.class_table,
        probabilities=probabilities,
        focus=focus,
        title=title,
        thumbnails=thumbnail_px is not None,
        thumbnail_px=thumbnail_px or 64,
    )
