"""The LightningDataModule: roots -> validated table -> splits -> context -> loaders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from geoguess_utils.cells.context import CENTROID_KINDS, GeoContext
from geoguess_utils.data import layout, loading, reader, validation
from geoguess_utils.data.augment import TrainAugmentation
from geoguess_utils.data.enrich import default_cache_dir, enrich_locations
from geoguess_utils.data.geodataset import GeoDataset
from geoguess_utils.data.images import ImageCache
from geoguess_utils.data.sampling import EpochSampler, ResumableLoader, base_seed
from geoguess_utils.data.splits import SPLIT_FILE, SPLITS, _check_fractions, load_split, make_split, save_split
from geoguess_utils.errors import ConfigError, DataError

IMAGE_CACHE_MODES: tuple[str, ...] = ("memmap", "memory")


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
        coast_tolerance_km: float = validation.DEFAULT_COAST_TOLERANCE_KM,
        use_draft: bool = True,
        max_pixels: int = reader.DEFAULT_MAX_PIXELS,
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
        locations = loading.load_locations(
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
        locations = loading.load_locations(
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
            paths = table[list(layout.PATH_COLUMNS)].to_numpy(dtype=str).tolist()
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
