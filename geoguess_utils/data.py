"""Splits, the enriched locations table, the Dataset and the LightningDataModule.

The flow is one-directional::

    LUMEN roots -> lumen.load_locations (validated) -> make_split / load_split
      -> GeoContext.fit(train rows only) -> enrich_locations (cached on disk)
      -> GeoDataset per split -> DataLoaders

Everything fitted (projection scaler, class table, weighted centroids) sees training
rows only; validation and test rows are merely transformed with it. Image
normalisation uses the fixed ImageNet statistics, so nothing else is fitted.

A batch (default collation of :class:`GeoDataset` samples) is a dict:

* ``"images"``: float32 (B, 4, 3, H, W), views in heading order 0/90/180/270,
  normalised with :data:`IMAGENET_MEAN` and :data:`IMAGENET_STD`;
* ``"class_index"``: int64 (B,), -1 where the location has no label;
* ``"xy_scaled"``: float32 (B, 2), min-max scaled projected x, y (NaN when unlabelled);
* ``"latlon"``: float64 (B, 2), degrees (NaN when unlabelled);
* ``"uuid"``: list of B str.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from geoguess_utils import lumen
from geoguess_utils.context import CENTROID_KINDS, GeoContext
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.images import ImageCache, load_views
from geoguess_utils.io import atomic_write_bytes, atomic_write_csv, atomic_write_text
from geoguess_utils.resume import EpochSampler, ResumableLoader, base_seed

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
HEADINGS: tuple[int, ...] = lumen.HEADINGS
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_FILE = "split.csv"
ENRICH_FORMAT = 1
ENRICHED_COLUMNS: tuple[str, ...] = (
    "x_m",
    "y_m",
    "x_scaled",
    "y_scaled",
    "class_index",
    "centroid_lat",
    "centroid_lon",
)
IMAGE_CACHE_MODES: tuple[str, ...] = ("memmap", "memory")


# ----------------------------------------------------------------------------- splits


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ConfigError(f"split fractions need three values (train, val, test), got {list(fractions)}")
    values = tuple(float(f) for f in fractions)
    if any(not np.isfinite(f) or f < 0 for f in values) or abs(sum(values) - 1.0) > 1e-6 or values[0] <= 0:
        raise ConfigError(
            f"split fractions must be non-negative, sum to 1 and give training rows; got {list(fractions)}"
        )
    return values  # type: ignore[return-value]


def make_split(uuids: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> pd.DataFrame:
    """Assign each location to train, val or test, reproducibly.

    The same set of uuids, fractions and seed always gives the same split, whatever
    the order of ``uuids``.

    Args:
        uuids: Location ids, unique.
        fractions: Shares of train, val and test (e.g. the original's 0.9, 0.05, 0.05).
        seed: Random seed.

    Returns:
        Frame with columns ``uuid`` and ``split`` (``"train"``/``"val"``/``"test"``),
        sorted by uuid.

    Raises:
        ConfigError: When the fractions are invalid.
        DataError: When uuids repeat or there are none.
    """
    train_f, val_f, _ = _check_fractions(fractions)
    ordered = sorted(str(u) for u in uuids)
    if not ordered:
        raise DataError("cannot split an empty dataset")
    if len(set(ordered)) != len(ordered):
        raise DataError("cannot split: some uuids repeat")
    n = len(ordered)
    n_val = int(np.floor(val_f * n + 0.5))
    n_train = max(1, int(np.floor(train_f * n + 0.5)))
    n_val = min(n_val, n - n_train)
    labels = np.array(["test"] * n, dtype=object)
    order = np.random.default_rng(seed).permutation(n)
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_val]] = "val"
    return pd.DataFrame({"uuid": ordered, "split": labels.astype(str)})


def save_split(split: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a split (uuid, split) as CSV, atomically."""
    return atomic_write_csv(split[["uuid", "split"]], path)


def load_split(path: str | os.PathLike[str], uuids: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a split saved by :func:`save_split` and check it matches the dataset.

    Args:
        path: The split CSV (columns ``uuid``, ``split``).
        uuids: The dataset's uuids; when given, the split must list exactly these.

    Returns:
        Frame with columns ``uuid`` and ``split``, sorted by uuid.

    Raises:
        DataError: When the file is unreadable, has unknown split names or repeated
            uuids, or does not match ``uuids`` (both directions are listed).
    """
    split_path = Path(path)
    try:
        frame = pd.read_csv(split_path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise DataError(f"split file {split_path} does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{split_path} is not a readable CSV file: {exc}") from exc
    if not {"uuid", "split"} <= set(frame.columns):
        raise DataError(f"{split_path} needs the columns uuid and split; it has {', '.join(frame.columns)}")
    bad = frame[~frame["split"].isin(SPLITS)]
    if len(bad):
        row = bad.index[0]
        raise DataError(
            f"{split_path} line {row + 2}: split {bad['split'].iloc[0]!r} for uuid {bad['uuid'].iloc[0]} "
            f"is not one of {', '.join(SPLITS)}"
        )
    repeated = frame["uuid"][frame["uuid"].duplicated()]
    if len(repeated):
        raise DataError(f"{split_path}: uuid {repeated.iloc[0]} is listed more than once")
    if uuids is not None:
        wanted = set(uuids)
        listed = set(frame["uuid"])
        missing, extra = sorted(wanted - listed), sorted(listed - wanted)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"{len(missing)} dataset uuids are not in it (e.g. {', '.join(missing[:5])})")
            if extra:
                parts.append(f"{len(extra)} of its uuids are not in the dataset (e.g. {', '.join(extra[:5])})")
            raise DataError(f"split file {split_path} does not match the dataset: {'; '.join(parts)}")
    if not (frame["split"] == "train").any():
        raise DataError(f"split file {split_path} has no training rows")
    return frame[["uuid", "split"]].sort_values("uuid", ignore_index=True)


# ----------------------------------------------------------------------------- enriched table


def enriched_cache_key(locations: pd.DataFrame, split: pd.DataFrame | None, context: GeoContext) -> str:
    """Hex digest of what :func:`enrich_locations` computes from.

    The digest covers every uuid with its coordinates (as read from ``data.csv``), the
    split, the context's fingerprint and the table format, so a change to any of them
    gives a new key.
    """
    digest = hashlib.sha256(f"enriched-format={ENRICH_FORMAT};context={context.fingerprint()};".encode())
    coords = locations[["uuid", "latitude", "longitude"]]
    digest.update(coords.to_csv(index=False, float_format="%.17g").encode())
    if split is not None:
        digest.update(split[["uuid", "split"]].sort_values("uuid").to_csv(index=False).encode())
    return digest.hexdigest()[:20]


def enrich_locations(
    locations: pd.DataFrame,
    context: GeoContext,
    split: pd.DataFrame | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Add projected, scaled, class and centroid columns (the "rich static CSV").

    Rows with finite coordinates are enriched with ``context``; rows without (a
    predict-only set) get NaN and class index -1.

    Args:
        locations: Locations table (:data:`geoguess_utils.lumen.LOCATION_COLUMNS`).
        context: Fitted on training rows.
        split: Optional (uuid, split) frame; adds a ``split`` column.
        cache_dir: When given, the enriched columns are stored there as
            ``enriched-<key>.csv`` (key from :func:`enriched_cache_key`) and read back
            on later calls with the same inputs. A sidecar ``enriched-<key>.json``
            holds the file's SHA-256: a truncated or edited table is recomputed, never used.

    Returns:
        A copy of ``locations`` (same row order) with :data:`ENRICHED_COLUMNS` and,
        when ``split`` is given, ``split``.
    """
    table = locations.reset_index(drop=True)
    if split is not None:
        table = table.merge(split[["uuid", "split"]], on="uuid", how="left", validate="one_to_one")
        if table["split"].isna().any():
            missing = table.loc[table["split"].isna(), "uuid"].iloc[0]
            raise DataError(f"uuid {missing} has no split assignment")
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"enriched-{enriched_cache_key(locations, split, context)}.csv"
        if cache_file.is_file():
            cached = _read_enriched(cache_file)
            if cached is not None and len(cached) == len(table) and (cached["uuid"].to_numpy() == table["uuid"]).all():
                for column in ENRICHED_COLUMNS:
                    table[column] = cached[column].to_numpy()
                return table
    labelled = np.isfinite(table["latitude"].to_numpy(float)) & np.isfinite(table["longitude"].to_numpy(float))
    for column in ENRICHED_COLUMNS:
        table[column] = -1 if column == "class_index" else np.nan
    table["class_index"] = table["class_index"].astype(np.int64)
    if labelled.any():
        enriched = context.enrich(table.loc[labelled, ["latitude", "longitude"]])
        for column in ENRICHED_COLUMNS:
            table.loc[labelled, column] = enriched[column].to_numpy()
    if cache_file is not None:
        keep = ["uuid", *(["split"] if "split" in table else []), "latitude", "longitude", *ENRICHED_COLUMNS]
        _write_enriched(table[keep], cache_file)
    return table


def _enriched_sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_enriched(table: pd.DataFrame, path: Path) -> None:
    """Write the table, then the sidecar vouching for its exact bytes (both atomically)."""
    payload = table.to_csv(index=False, float_format="%.17g").encode()
    atomic_write_bytes(path, payload)
    sidecar = {"format": ENRICH_FORMAT, "rows": len(table), "sha256": hashlib.sha256(payload).hexdigest()}
    atomic_write_text(_enriched_sidecar(path), json.dumps(sidecar))


def _read_enriched(path: Path) -> pd.DataFrame | None:
    """The cached table, or ``None`` when it is missing, damaged or not the one its sidecar describes."""
    try:
        sidecar = json.loads(_enriched_sidecar(path).read_text())
        payload = path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(sidecar, dict) or sidecar.get("sha256") != hashlib.sha256(payload).hexdigest():
        return None  # truncated, edited or half-replaced: recompute
    try:
        frame = pd.read_csv(io.BytesIO(payload), dtype={"uuid": str, "split": str}, float_precision="round_trip")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None  # unreadable cache: recompute
    if not {"uuid", *ENRICHED_COLUMNS} <= set(frame.columns):
        return None
    return frame


# ----------------------------------------------------------------------------- dataset


class TrainAugmentation:
    """Training augmentation that keeps geographic cues.

    Each view independently gets a small random resized crop (at least
    ``min_crop_scale`` of the area, aspect ratio within 10 %) back to the original
    size and a colour jitter. No horizontal flip: it would swap the driving side and
    mirror text on signs.

    Args:
        min_crop_scale: Smallest kept share of the image area.
        brightness: Colour-jitter brightness factor range.
        contrast: Colour-jitter contrast factor range.
        saturation: Colour-jitter saturation factor range.
    """

    def __init__(
        self, min_crop_scale: float = 0.8, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2
    ) -> None:
        self.min_crop_scale = min_crop_scale
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self._transforms: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {}

    def _transform(self, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
        if size not in self._transforms:
            from torchvision.transforms import v2

            self._transforms[size] = v2.Compose(
                [
                    v2.RandomResizedCrop(
                        (size, size), scale=(self.min_crop_scale, 1.0), ratio=(0.9, 1.0 / 0.9), antialias=True
                    ),
                    v2.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=self.saturation),
                ]
            )
        return self._transforms[size]

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        """Augment a uint8 tensor of views, shape (V, 3, H, W) with H == W; returns the same shape."""
        transform = self._transform(int(views.shape[-1]))
        return torch.stack([transform(view) for view in views])


class GeoDataset(Dataset):
    """The four views and the labels of each location in a table.

    Args:
        table: Locations with ``uuid`` and ``path_0``..``path_270``; optional
            ``latitude``/``longitude`` (degrees), ``class_index``, ``x_scaled``/``y_scaled``
            (missing or NaN mean unlabelled).
        image_size: Side of the returned views, pixels.
        augment: Called on the uint8 (4, 3, H, W) views before normalisation.
        image_cache: Pre-resized views of exactly these rows, in table order.
        use_draft: Decode JPEGs with DCT scaling (see :func:`geoguess_utils.images.load_view`).
        max_pixels: Refuse larger source images.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        image_size: int = 112,
        *,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        image_cache: ImageCache | None = None,
        use_draft: bool = True,
        max_pixels: int = lumen.DEFAULT_MAX_PIXELS,
    ) -> None:
        if image_cache is not None and len(image_cache) != len(table):
            raise DataError(f"image cache {image_cache.data_path} has {len(image_cache)} rows, the table {len(table)}")
        n = len(table)

        def column(name: str, fill: float) -> np.ndarray:
            return table[name].to_numpy(dtype=np.float64) if name in table else np.full(n, fill)

        self.uuids: list[str] = [str(u) for u in table["uuid"]]
        self.paths = table[list(lumen.PATH_COLUMNS)].to_numpy(dtype=str)
        self.latlon = np.stack([column("latitude", np.nan), column("longitude", np.nan)], axis=1)
        self.xy_scaled = np.stack([column("x_scaled", np.nan), column("y_scaled", np.nan)], axis=1).astype(np.float32)
        classes = column("class_index", -1)
        self.class_index = np.where(np.isfinite(classes), classes, -1).astype(np.int64)
        self.image_size = int(image_size)
        self.augment = augment
        self.image_cache = image_cache
        self.use_draft = use_draft
        self.max_pixels = max_pixels
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.uuids)

    def views_uint8(self, index: int) -> torch.Tensor:
        """The four views of one location as uint8, shape (4, 3, H, W), before augmentation."""
        if self.image_cache is not None:
            pixels = np.array(self.image_cache[index])
        else:
            pixels = load_views(
                self.paths[index], self.image_size, use_draft=self.use_draft, max_pixels=self.max_pixels
            )
        # numpy rather than torch for per-sample work: a torch op on arrays this small may start
        # the intra-op thread pool, which costs more than the work (many times more on a busy CPU)
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """One location; ``key`` is a row index or ``(row index, augmentation seed)``.

        With a seed (as :class:`~geoguess_utils.resume.EpochSampler` gives), the random
        augmentation depends on that seed alone, not on the process's random state.
        """
        index, seed = key if isinstance(key, tuple) else (key, None)
        views = self.views_uint8(index)
        if self.augment is not None:
            if seed is None:
                views = self.augment(views)
            else:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed))
                    views = self.augment(views)
        pixels = views.numpy().astype(np.float32) / np.float32(255.0)  # numpy: see views_uint8
        images = torch.from_numpy((pixels - self._mean.numpy()) / self._std.numpy())
        return {
            "images": images,
            "class_index": torch.tensor(self.class_index[index], dtype=torch.int64),
            "xy_scaled": torch.from_numpy(self.xy_scaled[index].copy()),
            "latlon": torch.from_numpy(self.latlon[index].copy()),
            "uuid": self.uuids[index],
        }


# ----------------------------------------------------------------------------- datamodule


def default_cache_dir(roots: Sequence[str | os.PathLike[str]]) -> Path:
    """Per-dataset cache folder under ``$XDG_CACHE_HOME/geoguess`` (default ``~/.cache/geoguess``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geoguess"
    names = "\n".join(sorted(str(Path(r).resolve()) for r in roots))
    return base / hashlib.sha256(names.encode()).hexdigest()[:12]


class GeoDataModule(pl.LightningDataModule):
    """Train/val/test/predict loaders over LUMEN dataset roots.

    Args:
        roots: Labelled dataset roots (each with ``data.csv``) to split into train/val/test.
        predict_roots: Roots to predict on (``data.csv`` optional).
        image_size: Side of the views fed to the model, pixels (224, 112, 56, ...).
        batch_size: Locations per batch.
        num_workers: DataLoader worker processes.
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
        persistent_workers: Keep workers alive between epochs (needs ``num_workers > 0``;
            ignored otherwise).
        spacing_deg: Grid cell side for the classes, degrees.
        crs: Projected CRS for scaling and centroids.
        centroid: Class point used for predictions: weighted, clipped or geometric.
        variant: Croatia variant for the grid: mainland or full.
        split_fractions: Train, val, test shares.
        seed: Split seed.
        split_csv: A saved split to reuse instead of drawing one.
        run_dir: Where ``split.csv`` and lenient-mode reports are written.
        cache_dir: Where the enriched table and image caches live; defaults to a
            per-dataset folder under ``~/.cache/geoguess``.
        image_cache: ``"memmap"`` (pre-resized uint8 file per split), ``"memory"``
            (the same, loaded into RAM) or ``None`` (decode JPEGs every time).
        lenient: Skip locations with problems (reported to ``run_dir`` or as a
            warning) instead of raising.
        deep_validation: Decode every image while validating.
        expected_source_size: Required source image side in pixels (640 for LUMEN);
            ``None`` accepts the most common size and flags the others.
        coast_tolerance_km: How far outside Croatia's (coarse) outline a location may lie.
        use_draft: Decode JPEGs with DCT scaling when it helps.
        max_pixels: Refuse source images with more pixels (decompression-bomb guard).
        augment: Colour jitter and small crops on training views.
        drop_last: Drop the last incomplete training batch.
        context: A fitted context as a dict (``GeoContext.to_dict()``, e.g. from a
            checkpoint) to use instead of fitting one; see also :meth:`set_context`.
    """

    def __init__(
        self,
        roots: list[str] | None = None,
        predict_roots: list[str] | None = None,
        image_size: int = 112,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        spacing_deg: float = 0.3,
        crs: str = "EPSG:3766",
        centroid: str = "weighted",
        variant: str = "mainland",
        split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        split_csv: str | None = None,
        run_dir: str | None = None,
        cache_dir: str | None = None,
        image_cache: str | None = None,
        lenient: bool = False,
        deep_validation: bool = False,
        expected_source_size: int | None = None,
        coast_tolerance_km: float = lumen.DEFAULT_COAST_TOLERANCE_KM,
        use_draft: bool = True,
        max_pixels: int = lumen.DEFAULT_MAX_PIXELS,
        augment: bool = True,
        drop_last: bool = False,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if image_size < 1 or batch_size < 1 or num_workers < 0:
            raise ConfigError(
                f"need image_size >= 1, batch_size >= 1 and num_workers >= 0; "
                f"got {image_size}, {batch_size} and {num_workers}"
            )
        if image_cache not in (None, *IMAGE_CACHE_MODES):
            raise ConfigError(f"image_cache must be None, 'memmap' or 'memory', got {image_cache!r}")
        if centroid not in CENTROID_KINDS:
            raise ConfigError(f"centroid must be one of {', '.join(CENTROID_KINDS)}, got {centroid!r}")
        if not roots and not predict_roots:
            raise ConfigError("give dataset roots (roots=...) and/or roots to predict on (predict_roots=...)")
        self.roots = [str(r) for r in roots or []]
        self.predict_roots = [str(r) for r in predict_roots or []]
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.spacing_deg = spacing_deg
        self.crs = crs
        self.centroid = centroid
        self.variant = variant
        self.split_fractions = _check_fractions(split_fractions)
        self.seed = seed
        self.split_csv = split_csv
        self.run_dir = Path(run_dir) if run_dir else None
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.image_cache = image_cache
        self.lenient = lenient
        self.deep_validation = deep_validation
        self.expected_source_size = expected_source_size
        self.coast_tolerance_km = coast_tolerance_km
        self.use_draft = use_draft
        self.max_pixels = max_pixels
        self.augment = augment
        self.drop_last = drop_last
        self._context: GeoContext | None = None
        if context is not None:
            self.set_context(context)
        self.split: pd.DataFrame | None = None
        self.locations: pd.DataFrame | None = None
        self.predict_locations: pd.DataFrame | None = None
        self._datasets: dict[str, GeoDataset] = {}
        self._train_sampler: tuple[tuple[int, ...], EpochSampler] | None = None

    # -- context ---------------------------------------------------------------

    def set_context(self, context: GeoContext | dict[str, Any]) -> None:
        """Use an already fitted context (e.g. a checkpoint's) instead of fitting one."""
        self._context = context if isinstance(context, GeoContext) else GeoContext.from_dict(context)

    @property
    def context(self) -> GeoContext:
        """The context fitted on training rows (available after :meth:`setup`)."""
        if self._context is None:
            raise ConfigError("the context is fitted in setup(); call setup('fit') or set_context() first")
        return self._context

    @property
    def num_classes(self) -> int:
        """Number of classes of the context."""
        return self.context.num_classes

    # -- setup -----------------------------------------------------------------

    def _validate_kwargs(self) -> dict[str, Any]:
        size = self.expected_source_size
        return {
            "deep": self.deep_validation,
            "expected_size": (size, size) if size else None,
            "coast_tolerance_km": self.coast_tolerance_km,
            "max_pixels": self.max_pixels,
        }

    def _cache_root(self, roots: Sequence[str]) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir(roots)

    def _report_path(self, name: str) -> Path | None:
        return self.run_dir / name if self.run_dir is not None else None

    def setup(self, stage: str | None = None) -> None:
        """Read, validate, split, fit the context and build datasets for ``stage``.

        Args:
            stage: ``"fit"``, ``"validate"``, ``"test"``, ``"predict"`` or ``None`` (all).
        """
        if stage in (None, "fit", "validate", "test") and self.roots and self.locations is None:
            self._setup_labelled()
        if stage in (None, "predict") and self.predict_roots and self.predict_locations is None:
            self._setup_predict()

    def _setup_labelled(self) -> None:
        locations = lumen.load_locations(
            self.roots,
            lenient=self.lenient,
            report_path=self._report_path("skipped_locations.csv"),
            require_labels=True,
            **self._validate_kwargs(),
        )
        if locations.empty:
            raise DataError(f"no usable locations in {', '.join(self.roots)}")
        uuids = locations["uuid"].tolist()
        split = (
            load_split(self.split_csv, uuids) if self.split_csv else make_split(uuids, self.split_fractions, self.seed)
        )
        if self.run_dir is not None:
            save_split(split, self.run_dir / SPLIT_FILE)
        if self._context is None:
            train = locations[locations["uuid"].isin(split.loc[split["split"] == "train", "uuid"])]
            self._context = GeoContext.fit(
                train["latitude"].to_numpy(),
                train["longitude"].to_numpy(),
                spacing_deg=self.spacing_deg,
                crs=self.crs,
                variant=self.variant,  # type: ignore[arg-type]
                centroid=self.centroid,  # type: ignore[arg-type]
            )
        cache_root = self._cache_root(self.roots)
        table = enrich_locations(locations, self._context, split, cache_dir=cache_root)
        self.split = split
        self.locations = table
        for name in SPLITS:
            part = table[table["split"] == name].reset_index(drop=True)
            self._datasets[name] = self._dataset(part, name, cache_root, train=name == "train")

    def _setup_predict(self) -> None:
        if self._context is None:
            if not self.roots:
                raise ConfigError("prediction needs a fitted context: give training roots or call set_context()")
            self._setup_labelled()
        locations = lumen.load_locations(
            self.predict_roots,
            lenient=self.lenient,
            report_path=self._report_path("skipped_predict_locations.csv"),
            require_labels=False,
            **self._validate_kwargs(),
        )
        cache_root = self._cache_root(self.predict_roots)
        table = enrich_locations(locations, self.context, None, cache_dir=cache_root)
        self.predict_locations = table
        self._datasets["predict"] = self._dataset(table, "predict", cache_root, train=False)

    def _dataset(self, table: pd.DataFrame, name: str, cache_root: Path, *, train: bool) -> GeoDataset:
        cache = None
        if self.image_cache is not None:
            paths = table[list(lumen.PATH_COLUMNS)].to_numpy(dtype=str).tolist()
            cache = ImageCache.open_or_build(
                paths,
                self.image_size,
                cache_root,
                name,
                use_draft=self.use_draft,
                max_pixels=self.max_pixels,
                in_memory=self.image_cache == "memory",
            )
        return GeoDataset(
            table,
            self.image_size,
            augment=TrainAugmentation() if train and self.augment else None,
            image_cache=cache,
            use_draft=self.use_draft,
            max_pixels=self.max_pixels,
        )

    # -- loaders ---------------------------------------------------------------

    def dataset(self, name: str) -> GeoDataset:
        """The dataset of a split (``"train"``, ``"val"``, ``"test"`` or ``"predict"``), set up on demand."""
        if name not in (*SPLITS, "predict"):
            raise ConfigError(f"unknown split {name!r}")
        if name not in self._datasets:
            if name == "predict" and not self.predict_roots:
                raise ConfigError("no predict_roots were given")
            if name != "predict" and not self.roots:
                raise ConfigError("no training roots were given")
            self.setup("predict" if name == "predict" else "fit")
        return self._datasets[name]

    def _loader(self, name: str, *, shuffle: bool, drop_last: bool) -> DataLoader:
        dataset = self.dataset(name)
        if name == "train" and len(dataset) == 0:
            raise DataError("the training split is empty")
        if shuffle:  # resumable mid-epoch: the order depends on (seed, epoch) only
            return ResumableLoader(
                dataset,
                batch_size=self.batch_size,
                sampler=self._epoch_sampler(dataset),
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                persistent_workers=self.persistent_workers and self.num_workers > 0,
                drop_last=drop_last,
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            drop_last=drop_last,
        )

    def _epoch_sampler(self, dataset: GeoDataset) -> EpochSampler:
        """The training sampler, kept across calls so that each new pass is a new epoch."""
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        key = (id(dataset), len(dataset), replicas, rank)
        if self._train_sampler is None or self._train_sampler[0] != key:
            self._train_sampler = (key, EpochSampler(dataset, base_seed(), num_replicas=replicas, rank=rank))
        return self._train_sampler[1]

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches (order and augmentation from the run's seed and the epoch)."""
        return self._loader("train", shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order."""
        return self._loader("val", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches in a fixed order."""
        return self._loader("test", shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        """Batches over ``predict_roots`` in a fixed order."""
        return self._loader("predict", shuffle=False, drop_last=False)
