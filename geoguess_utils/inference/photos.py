"""Loose photos of unknown heading -> one location, through the one prediction path.

``geoguess predict --photo a.jpg --photo b.jpg`` answers "where are these photos from?"
for one to four photos taken at one spot whose headings are not known. Each photo takes
one view slot with the "heading unknown" embedding (``heading_known`` False), the other
slots are marked absent (``view_mask`` False), so the network fuses exactly the photos
given; no photo is copied into a slot it does not belong to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from geoguess_utils.errors import ConfigError

PHOTOS_UUID = "photos"
"""The ``uuid`` of the one location that loose photos make."""


class LoosePhotos(Dataset):
    """One location made of one to four loose photos (a Dataset of length 1).

    Args:
        photos: Image files, at most ``num_views``.
        image_size: Side the photos are resized to, pixels.
        normalization: ``(mean, std)`` RGB statistics of the model's backbone.
        num_views: View slots of the model (4).

    Raises:
        ConfigError: No photo, or more than ``num_views``.
    """

    def __init__(
        self,
        photos: Sequence[str | os.PathLike[str]],
        image_size: int,
        normalization: tuple[Sequence[float], Sequence[float]],
        num_views: int = 4,
    ) -> None:
        if not 1 <= len(photos) <= num_views:
            raise ConfigError(f"give one to {num_views} photos (--photo FILE, repeated); got {len(photos)}")
        self.photos = [str(p) for p in photos]
        self.image_size = int(image_size)
        self.num_views = int(num_views)
        self.mean = np.asarray(normalization[0], dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(normalization[1], dtype=np.float32).reshape(1, 3, 1, 1)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The location: ``images`` (V, 3, H, W) float32, ``view_mask`` and ``heading_known`` (V,) bool, ``uuid``."""
        from geoguess_utils.data.images import load_views

        slots = self.photos + [""] * (self.num_views - len(self.photos))
        pixels = load_views(slots, self.image_size).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        present = np.array([bool(p) for p in slots])
        return {
            "images": torch.from_numpy((pixels - self.mean) / self.std),
            "view_mask": torch.from_numpy(present),
            "heading_known": torch.zeros(self.num_views, dtype=torch.bool),
            "uuid": PHOTOS_UUID,
            "index": index,
        }


def predict_photos(task: Any, photos: Sequence[str | os.PathLike[str]], device: str = "auto") -> dict[str, Any]:
    """Locate one spot from loose photos of unknown heading.

    Args:
        task: A trained task (see :func:`geoguess_utils.tasks.loading.load_task`) whose
            pooling takes any views (``attention`` or ``mean``).
        photos: One to four image files taken at one spot.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        What :func:`~geoguess_utils.inference.loop.run_predict` returns for one location:
        ``latlon`` (1, 2) degrees, ``views`` (1,), ``non_finite`` (1,) and the task's extras.

    Raises:
        ConfigError: Too few or too many photos, or a model that needs all four headings.
        DataError: A photo that cannot be read (the message names the file).
    """
    from geoguess_utils.inference.loop import run_predict

    if task.image_size is None:
        raise ConfigError("the task has no image size: load a trained checkpoint")
    if not task.takes_any_views:
        raise ConfigError(
            "this model concatenates the four views in heading order and cannot place photos of unknown heading; "
            "use a model trained with --model.pooling attention (for example configs/quick_cpu.yaml)"
        )
    dataset = LoosePhotos(photos, task.image_size, task.normalization)
    return run_predict(task, DataLoader(dataset, batch_size=1), device=device)
