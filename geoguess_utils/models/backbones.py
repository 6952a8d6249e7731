"""Image backbones by name: builders, feature sizes and offline weight loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn

from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from geoguess_utils.models.backbone_spec import BackboneSpec, Builder
from geoguess_utils.models.efficientnet_lite import OFFLINE_BACKBONE, LiteClassifier, LiteFeatures

BACKBONES: dict[str, BackboneSpec] = {}
"""Explicitly registered backbones; resolvers and torchvision classifiers are found by name on top of these."""

BackboneResolver = Callable[[str], "BackboneSpec | None"]
"""``resolver(name) -> spec``, or ``None`` when the name is not of its kind (e.g. not ``"timm/..."``)."""

RESOLVERS: list[BackboneResolver] = []
"""Resolvers added with :func:`register_resolver`, tried after the built-in ``timm/`` and ``hf/`` ones."""


def register_backbone(
    name: str,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Callable[[Builder], Builder]:
    """Register a backbone builder under ``name`` (a decorator).

    Args:
        name: Name used in configs (``--model.backbone NAME``) and stored in checkpoints.
        mean: RGB mean the backbone's inputs are normalised with; the data pipeline and the
            checkpoint read it from here.
        std: RGB standard deviation, likewise.
    """

    def add(builder: Builder) -> Builder:
        if name in BACKBONES:
            raise ConfigError(f"a backbone named {name!r} is already registered")
        BACKBONES[name] = BackboneSpec(name, builder, tuple(mean), tuple(std))  # type: ignore[arg-type]
        return builder

    return add


def register_resolver(resolver: BackboneResolver) -> BackboneResolver:
    """Add a resolver of backbone names to :data:`RESOLVERS` (usable as a decorator).

    A resolver recognises a family of names by pattern, where :func:`register_backbone`
    registers one name: it returns a :class:`BackboneSpec` for names of its kind and ``None``
    for the others. Resolvers are tried in order after the registered names.
    """
    if resolver not in RESOLVERS:
        RESOLVERS.append(resolver)
    return resolver


def backbone_resolvers() -> list[BackboneResolver]:
    """The resolvers :func:`backbone_spec` tries, in order: ``timm/``, ``hf/``, then :data:`RESOLVERS`.

    The built-in two live in :mod:`geoguess_utils.models.external_backbones`; their libraries
    are imported only when a name of their kind is asked for.
    """
    from geoguess_utils.models import external_backbones

    return [external_backbones.timm_spec, external_backbones.hf_spec, *RESOLVERS]


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of a registered backbone, of a name a resolver knows, or of a torchvision classifier.

    Raises:
        ConfigError: Unknown name (the message says where the names come from).
    """
    if name in BACKBONES:
        return BACKBONES[name]
    for resolver in backbone_resolvers():
        spec = resolver(name)
        if spec is not None:
            return spec
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ConfigError(
            f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}, timm/<model> (timm), "
            f"hf/<org>/<model> (a CLIP vision tower, e.g. hf/geolocal/StreetCLIP), or a torchvision classifier: "
            f"{', '.join(known)}"
        )

    def torchvision_body(pretrained: bool) -> tuple[nn.Module, int]:
        model = _torchvision_classifier(name, pretrained)
        return model, _drop_last_linear(model)

    return BackboneSpec(name, torchvision_body)


def backbone_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` RGB statistics the inputs of backbone ``name`` are normalised with."""
    spec = backbone_spec(name)
    return tuple(float(v) for v in spec.mean), tuple(float(v) for v in spec.std)


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone`: the registered backbones plus torchvision's classifiers."""
    import torchvision

    return [*BACKBONES, *torchvision.models.list_models(module=torchvision.models)]


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
        name: A registered name (``"efficientnet_lite0"``, see :func:`register_backbone`), a
            name of a resolver (``"timm/convnext_tiny"``, ``"hf/geolocal/StreetCLIP"``, see
            :func:`backbone_resolvers`) or a torchvision classification model name
            (``"resnext101_32x8d"``, ``"resnet18"``, ``"resnet50"``, ``"efficientnet_b0"``, ...).
        pretrained: Load pretrained weights (all but the bundled ones need the internet once;
            torchvision's are cached in :func:`torch_hub_checkpoint_dir`, timm's and Hugging
            Face's in the Hugging Face cache).

    Returns:
        A :class:`Backbone` mapping (N, 3, H, W) images, normalised with
        :func:`backbone_normalization`, to (N, F).

    Raises:
        ConfigError: Unknown name.
        GeoguessError: Weights cannot be downloaded or read; the message says what to do.
    """
    body, num_features = backbone_spec(name).builder(pretrained)
    return Backbone(name, body, num_features)


@register_backbone(OFFLINE_BACKBONE)
def _efficientnet_lite0(pretrained: bool) -> tuple[nn.Module, int]:
    """EfficientNet-Lite0 with the ImageNet weights installed with the package (no download)."""
    return LiteFeatures(LiteClassifier(pretrained)), 1280
