"""Grouped settings of the GeoDataModule: cells, split, reading, caching and loading.

Each group is a small dataclass, so LightningCLI shows it as a section of its own
(``--data.cells.spacing_deg 0.2``, ``--data.cache.images memory``) and a YAML config
nests it under ``data:``. :data:`MOVED_KEYS` says where the keys of the earlier flat
layout went, so an old config gets a message naming the new place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
from geoguess_utils.data.validation import DEFAULT_COAST_TOLERANCE_KM
from geoguess_utils.errors import ConfigError

IMAGE_CACHE_MODES: tuple[str, ...] = ("memmap", "memory")


@dataclass
class CellSettings:
    """The classes a classifier predicts over, fitted on the training split.

    Attributes:
        scheme: Cell scheme name (see :func:`geoguess_utils.cells.scheme.list_schemes`).
        spacing_deg: Side of a square cell, degrees (``square`` scheme).
        crs: Projected CRS for scaling, centroids and distances in the plane.
        centroid: Class point predictions use: ``weighted``, ``clipped`` or ``geometric``.
        variant: Croatia variant the cells cover: ``mainland`` or ``full``.
        params: The scheme's own parameters, e.g. ``{max_per_cell: 40, min_per_cell: 10}``
            for ``balanced``, ``county`` and ``county_split``; a name the scheme does not
            take is refused, naming the ones it does.
    """

    scheme: str = "square"
    spacing_deg: float = 0.3
    crs: str = "EPSG:3766"
    centroid: str = "weighted"
    variant: str = "mainland"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SplitSettings:
    """How labelled locations are split into train, val and test.

    Attributes:
        fractions: Train, val and test shares (summing to 1).
        seed: Seed of the split.
        csv: A saved ``split.csv`` to reuse instead of drawing a split.
    """

    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    csv: str | None = None


@dataclass
class ReadSettings:
    """How dataset roots are read and validated.

    Attributes:
        lenient: Skip locations with problems (reported in the run folder) instead of raising.
        deep_validation: Decode every image while validating.
        expected_source_size: Required source image side in pixels (640 for LUMEN); ``None``
            accepts the most common size and flags the others.
        coast_tolerance_km: How far outside Croatia's (coarse) outline a location may lie, km.
        use_draft: Decode JPEGs with DCT scaling when it helps.
        max_pixels: Refuse source images with more pixels (decompression-bomb guard).
    """

    lenient: bool = False
    deep_validation: bool = False
    expected_source_size: int | None = None
    coast_tolerance_km: float = DEFAULT_COAST_TOLERANCE_KM
    use_draft: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class CacheSettings:
    """Where derived data is cached.

    Attributes:
        dir: Folder of the enriched table and image caches; default: a per-dataset folder
            under ``~/.cache/geoguess``.
        images: ``"memmap"`` (pre-resized uint8 file per split), ``"memory"`` (the same,
            loaded into RAM) or ``None`` (decode JPEGs every time).
    """

    dir: str | None = None
    images: str | None = None

    def __post_init__(self) -> None:
        if self.images not in (None, *IMAGE_CACHE_MODES):
            raise ConfigError(f"cache.images must be None, 'memmap' or 'memory', got {self.images!r}")


@dataclass
class LoaderSettings:
    """DataLoader details.

    Attributes:
        pin_memory: Pin batches in page-locked memory (faster copies to a GPU).
        persistent_workers: Keep workers alive between epochs (only with ``num_workers > 0``).
        drop_last: Drop the last incomplete training batch.
    """

    pin_memory: bool = False
    persistent_workers: bool = False
    drop_last: bool = False


@dataclass
class EmbeddingSettings:
    """Training from the embedding cache while the backbone is frozen.

    Attributes:
        enabled: Train the frozen phase (all of a ``freeze_backbone_epochs: all`` run) from cached per-view
            features instead of images: no JPEG decoding, no backbone forward pass. The
            cache is computed once per split and reused until the images or the backbone
            change. Augmentation does not apply to cached features, except through
            ``augmented_copies``.
        batch_size: Locations per forward pass while computing the cache.
        augmented_copies: K, the number of augmented versions of every training location
            whose features are cached (the data module's training augmentation, each copy
            seeded); every epoch trains on one copy per location, drawn from the run's seed
            and the epoch. ``0`` (default) caches the plain views only. Validation and
            test read the plain views. The training split's cache then holds K times the
            rows, costs K forward passes over it to build, and takes K times the disk.
            Needs ``enabled`` and the data module's ``augment``.
        copies_seed: Seed of the augmentations of the copies (part of the cache's key: a
            new seed computes new copies).
        with_plain: Let each draw pick the plain views too (K + 1 choices; the plain training
            cache is built as well). On the settlement-density sample, drawing from the plain
            views and 4 copies gave 52.2 km against 53.5 km without copies, and 4 copies
            alone 61.6 km (BENCHMARKS.md, "Ablation"): on by default.
    """

    enabled: bool = False
    batch_size: int = 64
    augmented_copies: int = 0
    copies_seed: int = 0
    with_plain: bool = True

    def __post_init__(self) -> None:
        if self.augmented_copies < 0:
            raise ConfigError(f"embeddings.augmented_copies must be 0 or more, got {self.augmented_copies}")


MOVED_KEYS: dict[str, str] = {
    "spacing_deg": "cells.spacing_deg",
    "crs": "cells.crs",
    "centroid": "cells.centroid",
    "variant": "cells.variant",
    "split_fractions": "split.fractions",
    "seed": "split.seed",
    "split_csv": "split.csv",
    "lenient": "reading.lenient",
    "deep_validation": "reading.deep_validation",
    "expected_source_size": "reading.expected_source_size",
    "coast_tolerance_km": "reading.coast_tolerance_km",
    "use_draft": "reading.use_draft",
    "max_pixels": "reading.max_pixels",
    "cache_dir": "cache.dir",
    "image_cache": "cache.images",
    "pin_memory": "loader.pin_memory",
    "persistent_workers": "loader.persistent_workers",
    "drop_last": "loader.drop_last",
}
"""Flat GeoDataModule keys of the earlier layout -> their place now (under ``data.``)."""
