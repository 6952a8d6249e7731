"""What a registered backbone is: its builder and the input normalisation it expects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD

Builder = Callable[[bool], tuple[nn.Module, int]]
"""``builder(pretrained) -> (body, num_features)``: a module mapping (N, 3, H, W) to (N, F, ...) features."""


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: how to build it and what its inputs must look like.

    Attributes:
        name: Registry name (stored in checkpoints).
        builder: Builds the body; see :data:`Builder`.
        mean: Per-channel RGB mean the inputs are normalised with (images scaled to [0, 1]).
        std: Per-channel RGB standard deviation.
    """

    name: str
    builder: Builder
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
