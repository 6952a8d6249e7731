"""RGB statistics of ImageNet, which most pretrained backbones expect their inputs normalised with.

The data pipeline normalises views with them unless a backbone registers its own, and the
backbone registry uses them as its default; both read them here, so neither needs the other.
"""

from __future__ import annotations

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet images scaled to [0, 1] (R, G, B)."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet images scaled to [0, 1] (R, G, B)."""
