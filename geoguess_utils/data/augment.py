"""Training-time image augmentation of the four views."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
