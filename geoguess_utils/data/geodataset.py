"""The Dataset: one location's four views and its targets as a dict sample.

A location may lack some views (an empty path): its sample's ``view_mask`` (4,) bool says
which are present; an absent view's pixels are black (and its cached features those of a
black image), which the network leaves out (see :func:`geoguess_utils.models.multiview.fuse_views`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from geoguess_utils.data import layout, reader
from geoguess_utils.data.images import ImageCache, load_views
from geoguess_utils.errors import DataError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD


class GeoDataset(Dataset):
    """The four views and the labels of each location in a table.

    Args:
        table: Locations with ``uuid`` and ``path_0``..``path_270``; optional
            ``latitude``/``longitude`` (degrees), ``class_index``, ``x_scaled``/``y_scaled``
            (missing or NaN mean unlabelled).
        image_size: Side of the returned views, pixels.
        augment: Called on the uint8 (4, 3, H, W) views before normalisation.
        image_cache: Pre-resized views of exactly these rows, in table order.
        use_draft: Decode JPEGs with DCT scaling (see :func:`geoguess_utils.data.images.load_view`).
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
        max_pixels: int = reader.DEFAULT_MAX_PIXELS,
        normalization: tuple[Sequence[float], Sequence[float]] = (IMAGENET_MEAN, IMAGENET_STD),
    ) -> None:
        if image_cache is not None and len(image_cache) != len(table):
            raise DataError(f"image cache {image_cache.data_path} has {len(image_cache)} rows, the table {len(table)}")
        n = len(table)

        def column(name: str, fill: float) -> np.ndarray:
            return table[name].to_numpy(dtype=np.float64) if name in table else np.full(n, fill)

        self.uuids: list[str] = [str(u) for u in table["uuid"]]
        self.paths = table[list(layout.PATH_COLUMNS)].to_numpy(dtype=str)
        self.latlon = np.stack([column("latitude", np.nan), column("longitude", np.nan)], axis=1)
        self.xy_scaled = np.stack([column("x_scaled", np.nan), column("y_scaled", np.nan)], axis=1).astype(np.float32)
        classes = column("class_index", -1)
        self.class_index = np.where(np.isfinite(classes), classes, -1).astype(np.int64)
        self.image_size = int(image_size)
        self.augment = augment
        self.image_cache = image_cache
        self.use_draft = use_draft
        self.max_pixels = max_pixels
        self.set_normalization(*normalization)

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Normalise views with these RGB statistics (the backbone's; images scaled to [0, 1])."""
        self._mean = torch.tensor(tuple(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(tuple(std), dtype=torch.float32).view(1, 3, 1, 1)

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

        With a seed (as :class:`~geoguess_utils.data.sampling.EpochSampler` gives), the random
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
        return {"images": images, **self.targets(index)}

    def view_mask(self, index: int) -> np.ndarray:
        """Which views location ``index`` has, (4,) bool in heading order (an empty path is a missing view)."""
        return self.paths[index] != ""

    def targets(self, index: int) -> dict[str, Any]:
        """Everything in a sample but its pixels: ``view_mask`` (4,) bool, the labels, ``uuid`` and ``index``."""
        return {
            "view_mask": torch.from_numpy(self.view_mask(index)),
            "class_index": torch.tensor(self.class_index[index], dtype=torch.int64),
            "xy_scaled": torch.from_numpy(self.xy_scaled[index].copy()),
            "latlon": torch.from_numpy(self.latlon[index].copy()),
            "uuid": self.uuids[index],
            "index": int(index),
        }


class CachedFeatureDataset(Dataset):
    """A split's targets with cached per-view features in place of images.

    Samples are dicts with ``view_features`` (V, F) float32 and the targets of
    :class:`GeoDataset` (:meth:`GeoDataset.targets`).

    Args:
        base: The split's image dataset (for its targets).
        cache: Its :class:`~geoguess_utils.embeddings.EmbeddingCache`, row ``i`` for ``base[i]``.
    """

    def __init__(self, base: GeoDataset, cache: Any) -> None:
        if len(cache) != len(base):
            raise DataError(f"embedding cache {cache.data_path} has {len(cache)} rows, the split {len(base)}")
        self.base = base
        self.cache = cache

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """One location's features and targets; ``key`` is a row index or ``(row index, seed)``."""
        index = int(key[0] if isinstance(key, tuple) else key)
        features = torch.from_numpy(np.asarray(self.cache[index], dtype=np.float32))
        return {"view_features": features, **self.base.targets(index)}
