"""The LightningDataModule: roots -> validated table -> splits -> context -> loaders."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from geoguess_utils.cells.context import CENTROID_KINDS, GeoContext
from geoguess_utils.cells.scheme import get_scheme
from geoguess_utils.data import layout, loading
from geoguess_utils.data.augment import AugmentedCopies, DrawnCopies, TrainAugmentation
from geoguess_utils.data.enrich import default_cache_dir, enrich_locations
from geoguess_utils.data.feature_source import FeatureSource
from geoguess_utils.data.geodataset import CachedFeatureDataset, GeoDataset
from geoguess_utils.data.images import ImageCache
from geoguess_utils.data.sampling import EpochSampler, ResumableLoader, base_seed
from geoguess_utils.data.settings import (
    CacheSettings,
    CellSettings,
    EmbeddingSettings,
    LoaderSettings,
    ReadSettings,
    SplitSettings,
)
from geoguess_utils.data.splits import SPLIT_FILE, SPLITS, check_fractions, load_split, make_split, save_split
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD


class GeoDataModule(pl.LightningDataModule):
    """Train/val/test/predict loaders over LUMEN dataset roots.

    Args:
        roots: Labelled dataset roots (each with ``data.csv``) to split into train/val/test.
        predict_roots: Roots to predict on (``data.csv`` optional).
        image_size: Side of the views fed to the model, pixels (224, 112, 56, ...).
        batch_size: Locations per batch.
        num_workers: DataLoader worker processes.
        augment: Colour jitter and small crops on training views.
        run_dir: Where ``split.csv`` and lenient-mode reports are written.
        context: A fitted context as a dict (``GeoContext.to_dict()``, e.g. from a
            checkpoint) to use instead of fitting one; see also :meth:`set_context`.
        cells: The classes (cell scheme, spacing, CRS, class point, Croatia variant).
        split: Split shares, seed, or a saved split to reuse.
        reading: Validation and decoding of the roots.
        cache: Where the enriched table and image caches live, and which image cache.
        loader: DataLoader details (pinned memory, persistent workers, drop_last).
        embeddings: Train the frozen phase from the embedding cache (see
            :mod:`geoguess_utils.embeddings`); dataloaders are then rebuilt every epoch, so
            the fine-tuning phase switches back to (augmented) images. With
            ``augmented_copies`` K >= 1 the training split's cache holds K augmented copies
            of every location (K times its rows and disk) and each epoch reads one of them.
    """

    def __init__(
        self,
        roots: list[str] | None = None,
        predict_roots: list[str] | None = None,
        image_size: int = 112,
        batch_size: int = 32,
        num_workers: int = 0,
        augment: bool = True,
        run_dir: str | None = None,
        context: dict[str, Any] | None = None,
        cells: CellSettings | None = None,
        split: SplitSettings | None = None,
        reading: ReadSettings | None = None,
        cache: CacheSettings | None = None,
        loader: LoaderSettings | None = None,
        embeddings: EmbeddingSettings | None = None,
    ) -> None:
        super().__init__()
        low, high = layout.IMAGE_SIZE_RANGE
        if not low <= image_size <= high:
            raise ConfigError(f"image_size must be from {low} to {high} pixels, got {image_size}")
        if image_size < 1 or batch_size < 1 or num_workers < 0:
            raise ConfigError(
                f"need image_size >= 1, batch_size >= 1 and num_workers >= 0; "
                f"got {image_size}, {batch_size} and {num_workers}"
            )
        self.cells = cells or CellSettings()
        self.split_settings = split or SplitSettings()
        self.reading = reading or ReadSettings()
        self.cache = cache or CacheSettings()
        self.loader = loader or LoaderSettings()
        self.embeddings = embeddings or EmbeddingSettings()
        if self.embeddings.augmented_copies and not (self.embeddings.enabled and augment):
            raise ConfigError(
                "embeddings.augmented_copies caches augmented features: it needs embeddings.enabled true "
                "and augment true"
            )
        if self.cells.centroid not in CENTROID_KINDS:
            raise ConfigError(f"centroid must be one of {', '.join(CENTROID_KINDS)}, got {self.cells.centroid!r}")
        # An unknown scheme name or parameter fails here, before any data is read.
        get_scheme(self.cells.scheme).from_params(
            self.cells.params, spacing_deg=self.cells.spacing_deg, crs=self.cells.crs
        )
        if not roots and not predict_roots:
            raise ConfigError("give dataset roots (roots=...) and/or roots to predict on (predict_roots=...)")
        self.roots = [str(r) for r in roots or []]
        self.predict_roots = [str(r) for r in predict_roots or []]
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.augment = augment
        self.split_fractions = check_fractions(self.split_settings.fractions)
        self.run_dir = Path(run_dir) if run_dir else None
        self.cache_dir = Path(self.cache.dir) if self.cache.dir else None
        self.normalization: tuple[tuple[float, ...], tuple[float, ...]] = (IMAGENET_MEAN, IMAGENET_STD)
        self._context: GeoContext | None = None
        if context is not None:
            self.set_context(context)
        self.split: pd.DataFrame | None = None
        self.locations: pd.DataFrame | None = None
        self.predict_locations: pd.DataFrame | None = None
        self._datasets: dict[str, GeoDataset] = {}
        self._tables: dict[str, pd.DataFrame] = {}
        self._feature_datasets: dict[tuple[str, Any], CachedFeatureDataset | DrawnCopies] = {}
        self._feature_source: FeatureSource | None = None
        self._warned_no_source = False
        self._train_sampler: tuple[tuple[int, ...], EpochSampler] | None = None

    # -- context ---------------------------------------------------------------

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Normalise every split's views with the backbone's RGB statistics (``geoguess fit`` sets its task's)."""
        self.normalization = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
        for dataset in self._datasets.values():
            dataset.set_normalization(*self.normalization)

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
        size = self.reading.expected_source_size
        return {
            "deep": self.reading.deep_validation,
            "expected_size": (size, size) if size else None,
            "coast_tolerance_km": self.reading.coast_tolerance_km,
            "max_pixels": self.reading.max_pixels,
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
        if self.embeddings.enabled and self.trainer is not None:
            self.trainer.reload_dataloaders_every_n_epochs = 1  # the phase decides: features or images
        if stage in (None, "fit", "validate", "test") and self.roots and self.locations is None:
            self._setup_labelled()
        if stage in (None, "predict") and self.predict_roots and self.predict_locations is None:
            self._setup_predict()

    def _setup_labelled(self) -> None:
        locations = loading.load_locations(
            self.roots,
            lenient=self.reading.lenient,
            report_path=self._report_path("skipped_locations.csv"),
            require_labels=True,
            **self._validate_kwargs(),
        )
        if locations.empty:
            raise DataError(f"no usable locations in {', '.join(self.roots)}")
        uuids = locations["uuid"].tolist()
        split = (
            load_split(self.split_settings.csv, uuids)
            if self.split_settings.csv
            else make_split(uuids, self.split_fractions, self.split_settings.seed)
        )
        if self.run_dir is not None:
            save_split(split, self.run_dir / SPLIT_FILE)
        if self._context is None:
            train = locations[locations["uuid"].isin(split.loc[split["split"] == "train", "uuid"])]
            self._context = GeoContext.fit(
                train["latitude"].to_numpy(),
                train["longitude"].to_numpy(),
                spacing_deg=self.cells.spacing_deg,
                scheme=self.cells.scheme,
                scheme_params=self.cells.params,
                crs=self.cells.crs,
                variant=self.cells.variant,  # type: ignore[arg-type]
                centroid=self.cells.centroid,  # type: ignore[arg-type]
            )
        cache_root = self._cache_root(self.roots)
        table = enrich_locations(locations, self._context, split, cache_dir=cache_root)
        self.split = split
        self.locations = table
        for name in SPLITS:
            part = table[table["split"] == name].reset_index(drop=True)
            self._tables[name] = part
            self._datasets[name] = self._dataset(part, name, cache_root, train=name == "train")

    def _setup_predict(self) -> None:
        if self._context is None:
            if not self.roots:
                raise ConfigError("prediction needs a fitted context: give training roots or call set_context()")
            self._setup_labelled()
        locations = loading.load_locations(
            self.predict_roots,
            lenient=self.reading.lenient,
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
        if self.cache.images is not None:
            paths = table[list(layout.PATH_COLUMNS)].to_numpy(dtype=str).tolist()
            cache = ImageCache.open_or_build(
                paths,
                self.image_size,
                cache_root,
                name,
                use_draft=self.reading.use_draft,
                max_pixels=self.reading.max_pixels,
                in_memory=self.cache.images == "memory",
            )
        return GeoDataset(
            table,
            self.image_size,
            augment=self.train_augmentation() if train and self.augment else None,
            image_cache=cache,
            use_draft=self.reading.use_draft,
            max_pixels=self.reading.max_pixels,
            normalization=self.normalization,
        )

    def train_augmentation(self) -> TrainAugmentation:
        """The augmentation of training views (and of the embedding cache's augmented copies)."""
        return TrainAugmentation()

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

    def _loader(self, name: str, *, shuffle: bool, drop_last: bool, features: bool = False) -> DataLoader:
        dataset: Any = self.feature_dataset(name) if features else self.dataset(name)
        if name == "train" and len(dataset) == 0:
            raise DataError("the training split is empty")
        workers = 0 if features else self.num_workers  # reading mapped features needs no worker processes
        common = {
            "batch_size": self.batch_size,
            "num_workers": workers,
            "pin_memory": self.loader.pin_memory,
            "persistent_workers": self.loader.persistent_workers and workers > 0,
            "drop_last": drop_last,
        }
        if shuffle:  # resumable mid-epoch: the order depends on (seed, epoch) only
            return ResumableLoader(dataset, sampler=self._epoch_sampler(dataset), **common)
        return DataLoader(dataset, shuffle=False, **common)

    def _epoch_sampler(self, dataset: GeoDataset) -> EpochSampler:
        """The training sampler, kept across calls so that each new pass is a new epoch."""
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        key = (len(dataset), replicas, rank)  # the same sampler for images and cached features
        if self._train_sampler is None or self._train_sampler[0] != key:
            self._train_sampler = (key, EpochSampler(dataset, base_seed(), num_replicas=replicas, rank=rank))
        return self._train_sampler[1]

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches (order and augmentation from the run's seed and the epoch).

        While the task's backbone is frozen and the embedding cache is on, batches carry
        cached ``view_features`` instead of images (same order): of the plain views, or with
        ``embeddings.augmented_copies`` K >= 1 of one of each location's K augmented copies,
        drawn from the run's seed and the epoch.
        """
        if self.embeddings.enabled and self._feature_source is None and not self._warned_no_source:
            self._warned_no_source = True
            warnings.warn(
                "embeddings.enabled is set but no feature source is attached, so training reads images: add "
                "geoguess_utils.training.callbacks.TaskDataLink() to the Trainer's callbacks (geoguess fit does)",
                stacklevel=2,
            )
        if self._features_now():
            return self._loader("train", shuffle=True, drop_last=self.loader.drop_last, features=True)
        return self._loader("train", shuffle=True, drop_last=self.loader.drop_last)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order (cached features while they are used for training)."""
        return self._loader("val", shuffle=False, drop_last=False, features=self._features_now())

    def test_dataloader(self) -> DataLoader:
        """Test batches of images in a fixed order, never cached features.

        The test score is the one a user reports, so it goes through the path predictions
        take (images, float32 backbone), not through the float16 feature cache: the logged
        ``test/mean_km`` is then what ``geoguess predict`` and ``geoguess evaluate`` give.
        """
        return self._loader("test", shuffle=False, drop_last=False, features=False)

    # -- embedding cache ------------------------------------------------------------

    def attach_feature_source(self, source: FeatureSource | None) -> None:
        """Serve a split's cached features from ``source`` whenever it says so (``None``: images only).

        ``geoguess fit`` attaches its task's features (see
        :class:`geoguess_utils.training.callbacks.TaskDataLink`) when ``embeddings.enabled``.
        """
        self._feature_source = source

    def _features_now(self) -> bool:
        """Whether loaders serve cached features now: cache on, a source attached, and it serving."""
        source = self._feature_source
        return bool(self.embeddings.enabled and source is not None and source.serving())

    def feature_dataset(self, name: str, source: FeatureSource | None = None) -> CachedFeatureDataset | DrawnCopies:
        """The split ``name`` with cached backbone features in place of images, computed on first use.

        With ``embeddings.augmented_copies`` K >= 1, the training split's features are those
        of K augmented copies of every location (:class:`~geoguess_utils.data.augment.AugmentedCopies`,
        K x N rows) and, with ``embeddings.with_plain``, of its plain views, served one choice
        per location and epoch (:class:`~geoguess_utils.data.augment.DrawnCopies`);
        validation and test keep the plain views' features.

        Args:
            name: ``"train"``, ``"val"`` or ``"test"``.
            source: Where the features come from (e.g.
                :class:`geoguess_utils.embeddings.TaskFeatures` of a task); the attached one by default.

        Raises:
            ConfigError: No source given and none attached.
        """
        source = source or self._feature_source
        if source is None:
            raise ConfigError("no feature source: pass one, or attach it with attach_feature_source()")
        which = (name, source.key())  # another backbone or other weights: other features
        if which not in self._feature_datasets:
            base = self.dataset(name)
            plain = self._dataset(self._tables[name], name, self._cache_root(self.roots), train=False)
            copies = self.embeddings.augmented_copies if name == "train" else 0
            images: Any = (
                AugmentedCopies(plain, copies, self.train_augmentation(), seed=self.embeddings.copies_seed)
                if copies
                else plain
            )

            def build() -> Any:
                return source.build(
                    name, images, self._cache_root(self.roots), self.embeddings.batch_size, self.num_workers
                )

            trainer = self.trainer
            if trainer is not None and trainer.world_size > 1:
                # one process computes the cache, the others wait for it and open it
                if trainer.is_global_zero:
                    build()
                trainer.strategy.barrier("embedding cache")
            cache = build()
            if copies:
                with_plain = None
                if self.embeddings.with_plain:  # the plain views are one more choice of every draw
                    with_plain = source.build(
                        name, plain, self._cache_root(self.roots), self.embeddings.batch_size, self.num_workers
                    )
                self._feature_datasets[which] = DrawnCopies(base, cache, copies, with_plain)
            else:
                self._feature_datasets[which] = CachedFeatureDataset(base, cache)
        return self._feature_datasets[which]

    def predict_dataloader(self) -> DataLoader:
        """Batches over ``predict_roots`` in a fixed order."""
        return self._loader("predict", shuffle=False, drop_last=False)
