"""Training-time image augmentation of the four views, and augmented copies for the embedding cache.

:class:`TrainAugmentation` augments a location's views each time it is read.
:class:`AugmentedCopies` lists K seeded augmented versions of every location, for the
embedding cache to compute the features of once (``--data.embeddings.augmented_copies K``);
:class:`DrawnCopies` then serves one of those copies per location and epoch.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from geoguess_utils.data.geodataset import GeoDataset
from geoguess_utils.errors import DataError

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

    ratio: tuple[float, float] = (0.9, 1.0 / 0.9)
    """Aspect-ratio range of the crops."""

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
                        (size, size), scale=(self.min_crop_scale, 1.0), ratio=self.ratio, antialias=True
                    ),
                    v2.ColorJitter(brightness=self.brightness, contrast=self.contrast, saturation=self.saturation),
                ]
            )
        return self._transforms[size]

    def __call__(self, views: torch.Tensor) -> torch.Tensor:
        """Augment a uint8 tensor of views, shape (V, 3, H, W) with H == W; returns the same shape."""
        transform = self._transform(int(views.shape[-1]))
        return torch.stack([transform(view) for view in views])

    def settings(self) -> dict[str, Any]:
        """What the augmentation does, as plain values (part of the key of cached augmented copies)."""
        return {
            "name": type(self).__name__,
            "min_crop_scale": float(self.min_crop_scale),
            "brightness": float(self.brightness),
            "contrast": float(self.contrast),
            "saturation": float(self.saturation),
            "ratio": [float(v) for v in self.ratio],
        }


# ----------------------------------------------------------------------------- augmented copies


def copy_seed(seed: int, which: int, uuid: str) -> int:
    """The augmentation seed of copy ``which`` of location ``uuid`` (the same in every process and run).

    Args:
        seed: The copies' seed (``embeddings.copies_seed``).
        which: Which copy, from 0.
        uuid: The location's id.

    Returns:
        A seed in ``[0, 2**63)`` for ``torch.manual_seed``.
    """
    digest = hashlib.blake2b(f"{int(seed)}:{int(which)}:{uuid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def drawn_copy(sample_seed: int | None, copies: int) -> int:
    """The copy a training sample reads: from its per-epoch seed (an EpochSampler's), copy 0 without one.

    :class:`~geoguess_utils.data.sampling.EpochSampler` gives each row of an epoch a seed drawn
    from ``(run seed, epoch)``, so the copy depends on the run's seed and the epoch only: a
    resumed run draws the same copies.

    Args:
        sample_seed: The row's seed this epoch, or ``None`` (a plain index).
        copies: K, how many copies there are.

    Returns:
        An index in ``[0, copies)``.
    """
    return 0 if sample_seed is None else int(sample_seed) % int(copies)


class AugmentedCopies(Dataset):
    """K augmented versions of every location of a dataset, as one dataset of K x N samples.

    Sample ``c * N + i`` is location ``i`` of ``dataset`` with its four views augmented by
    ``augmentation`` under the seed :func:`copy_seed` ``(seed, c, uuid of i)``: the same
    pixels in every process and run. What is computed from it (the embedding cache's
    augmented copies) is therefore deterministic, and its key is :meth:`key`.

    Args:
        dataset: The split's plain dataset (no augmentation), normalised for the backbone.
        copies: K, at least 1.
        augmentation: The training augmentation (:class:`TrainAugmentation` by default).
        seed: Seed of the copies' augmentations.

    Raises:
        DataError: ``copies`` below 1, or ``dataset`` already augmented.
    """

    def __init__(
        self, dataset: GeoDataset, copies: int, augmentation: TrainAugmentation | None = None, seed: int = 0
    ) -> None:
        if int(copies) < 1:
            raise DataError(f"augmented copies need copies >= 1, got {copies}")
        if dataset.augment is not None:
            raise DataError("augmented copies are made from a dataset without augmentation")
        self.dataset = dataset
        self.copies = int(copies)
        self.augmentation = augmentation or TrainAugmentation()
        self.seed = int(seed)
        self.locations = len(dataset)
        self._augmented = copy.copy(dataset)  # the same rows, image cache and normalisation, augmented
        self._augmented.augment = self.augmentation

    def key(self) -> dict[str, Any]:
        """What the copies depend on beyond the plain views: K, the augmentation's settings, the seed."""
        return {"count": self.copies, "augmentation": self.augmentation.settings(), "seed": self.seed}

    def __len__(self) -> int:
        return self.copies * self.locations

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Sample ``index`` = copy ``index // N`` of location ``index % N``; its ``index`` is ``index`` too.

        Returns:
            :class:`~geoguess_utils.data.geodataset.GeoDataset`'s sample (``images`` (4, 3, H, W)
            float32, normalised) with ``"copy"`` (int) added.
        """
        which, row = divmod(int(index), self.locations)
        sample = self._augmented[(row, copy_seed(self.seed, which, self.dataset.uuids[row]))]
        sample["index"] = int(index)
        sample["copy"] = which
        return sample


class DrawnCopies(Dataset):
    """A training split's targets with one of K cached augmented copies of its features per sample.

    The cache has K x N rows, row ``c * N + i`` the features of copy ``c`` of location ``i``
    (as :class:`AugmentedCopies` orders them). Keyed by ``(row index, seed)`` (what
    :class:`~geoguess_utils.data.sampling.EpochSampler` yields), a sample reads copy
    :func:`drawn_copy` ``(seed, K)``: one copy per location and epoch, drawn from the run's
    seed and the epoch. A plain index reads copy 0.

    Samples are those of :class:`~geoguess_utils.data.geodataset.CachedFeatureDataset`:
    ``view_features`` (V, F) float32 and the targets.

    With ``plain`` (the plain views' cache, N rows) the plain features are one more choice:
    choice 0 reads them, choice ``c >= 1`` copy ``c - 1`` (K + 1 choices).

    Args:
        base: The split's image dataset (for its targets), N locations.
        cache: The copies' features, K x N rows of (V, F).
        copies: K.
        plain: The plain views' features, N rows of (V, F), or ``None``.

    Raises:
        DataError: The caches do not hold K x N (and N) rows.
    """

    def __init__(self, base: GeoDataset, cache: Any, copies: int, plain: Any = None) -> None:
        if len(cache) != int(copies) * len(base):
            raise DataError(
                f"the augmented-copies cache {getattr(cache, 'data_path', '')} has {len(cache)} rows, "
                f"not {copies} x {len(base)}"
            )
        if plain is not None and len(plain) != len(base):
            raise DataError(f"the plain cache {getattr(plain, 'data_path', '')} has {len(plain)} rows, not {len(base)}")
        self.base = base
        self.cache = cache
        self.copies = int(copies)
        self.plain = plain
        self.choices = self.copies + (plain is not None)

    def __len__(self) -> int:
        return len(self.base)

    def copy_of(self, key: int | tuple[int, int]) -> int:
        """Which choice the sample ``key`` reads (a row index, or ``(row index, seed)``); see the class notes."""
        return drawn_copy(key[1] if isinstance(key, tuple) else None, self.choices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """One location's drawn copy of features and its targets; ``key`` is a row index or ``(row index, seed)``."""
        index = int(key[0] if isinstance(key, tuple) else key)
        choice = self.copy_of(key)
        if self.plain is not None:
            features = self.plain[index] if choice == 0 else self.cache[(choice - 1) * len(self.base) + index]
        else:
            features = self.cache[choice * len(self.base) + index]
        return {"view_features": torch.from_numpy(np.asarray(features, dtype=np.float32)), **self.base.targets(index)}
