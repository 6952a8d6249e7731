"""Backbones from other libraries, by name prefix: ``timm/<model>`` and ``hf/<org>/<model>`` (CLIP vision towers).

Both are optional (``pip install 'geoguess[external]'``): timm's image models, and the vision
half of CLIP models on the Hugging Face hub through ``transformers``. The recommended backbone
for real Street View photos is ``hf/geolocal/StreetCLIP``, a CLIP ViT-L/14 at 336 px trained
further on street-level imagery for geolocation.

Weights are downloaded by those libraries the first time a machine with internet asks for
them and kept in their cache (``HF_HOME``, default ``~/.cache/huggingface``). Offline, a
:class:`~geoguess_utils.errors.GeoguessError` says what failed and the ways on, as for
torchvision backbones. With ``pretrained=False`` nothing is downloaded: the architecture
comes from the cached config, from :data:`CLIP_VISION_ARCHITECTURES` for well-known
models, or else from the default CLIP ViT-B/32 config (with a warning).

Each resolver maps a name to a :class:`~geoguess_utils.models.backbones.BackboneSpec` or to
``None`` when the name is not its kind; :func:`geoguess_utils.models.backbones.backbone_spec`
tries them in turn (see :data:`geoguess_utils.models.backbones.RESOLVERS`).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import torch
from torch import nn

from geoguess_utils.errors import ConfigError, GeoguessError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from geoguess_utils.models.backbone_spec import BackboneSpec
from geoguess_utils.models.efficientnet_lite import OFFLINE_BACKBONE

TIMM_PREFIX = "timm/"
HF_PREFIX = "hf/"
PROJECTED_SUFFIX = ":projected"
"""Appended to an ``hf/`` name: use CLIP's projected image embedding instead of the pooled output."""

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_VIT_L14 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
    "projection_dim": 768,
}
CLIP_VISION_ARCHITECTURES: dict[str, dict[str, int]] = {
    "openai/clip-vit-base-patch32": {},
    "openai/clip-vit-base-patch16": {"patch_size": 16},
    "openai/clip-vit-large-patch14": {**_VIT_L14, "image_size": 224},
    "openai/clip-vit-large-patch14-336": {**_VIT_L14, "image_size": 336},
    "geolocal/StreetCLIP": {**_VIT_L14, "image_size": 336},
}
"""``CLIPVisionConfig`` settings (over its ViT-B/32 defaults) of well-known hub models, for offline builds."""


def _require(module: str, name: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"backbone {name!r} needs the package {module!r}: "
            f"pip install 'geoguess[external]' (or pip install {module})"
        )


def _offline_error(name: str, repo: str, exc: BaseException) -> GeoguessError:
    reason = " ".join(str(exc).split()).rstrip(".")
    return GeoguessError(
        f"could not get the pretrained weights of backbone {name!r} from the Hugging Face hub (repository "
        f"{repo!r}): {type(exc).__name__}: {reason}. This machine seems to be offline, or the cached copy is missing. "
        "Do one of: (1) train from scratch with pretrained=False (command line: --model.pretrained false); "
        f'(2) on a machine with internet run: python -c "from huggingface_hub import snapshot_download; '
        f"snapshot_download('{repo}')\", then copy its Hugging Face cache folder (HF_HOME, default "
        "~/.cache/huggingface) to the same place here (set HF_HUB_OFFLINE=1 to skip the network retries); "
        f"(3) use backbone {OFFLINE_BACKBONE!r}, whose ImageNet weights are installed with the package."
    )


# ----------------------------------------------------------------------------- timm


def timm_spec(name: str) -> BackboneSpec | None:
    """The spec of ``timm/<model>`` (``<model>`` as ``timm.create_model`` takes it, a ``.tag`` allowed).

    Returns:
        The spec, with the model's own normalisation from its pretrained config (ImageNet's when
        it has none); ``None`` for a name without the ``timm/`` prefix.

    Raises:
        ConfigError: timm is not installed, or it knows no such model.
    """
    if not name.startswith(TIMM_PREFIX):
        return None
    _require("timm", name)
    import timm

    model = name[len(TIMM_PREFIX) :]
    if not model or not timm.is_model(model):
        raise ConfigError(f"timm has no model {model!r} (backbone {name!r}); list them with timm.list_models()")
    config = timm.get_pretrained_cfg(model)
    mean = tuple(float(v) for v in getattr(config, "mean", None) or IMAGENET_MEAN)
    std = tuple(float(v) for v in getattr(config, "std", None) or IMAGENET_STD)

    def build(pretrained: bool) -> tuple[nn.Module, int]:
        body = _create_timm(name, model, pretrained)
        return body, int(body.num_features)

    return BackboneSpec(name, build, mean, std)  # type: ignore[arg-type]


def _create_timm(name: str, model: str, pretrained: bool) -> nn.Module:
    """A timm model without its classifier (``num_classes=0``): (N, 3, H, W) -> pooled (N, F)."""
    import timm

    def create(**extra: Any) -> nn.Module:
        try:
            return timm.create_model(model, pretrained=pretrained, num_classes=0, **extra)
        except (OSError, RuntimeError, ValueError, ConnectionError, TimeoutError) as exc:
            if not pretrained:
                raise
            config = timm.get_pretrained_cfg(model)
            raise _offline_error(name, getattr(config, "hf_hub_id", None) or f"timm/{model}", exc) from exc

    try:
        return create(dynamic_img_size=True)  # vision transformers then take any image size
    except TypeError:
        return create()  # convolutional models have no such option and take any size anyway


# ----------------------------------------------------------------------------- Hugging Face CLIP


class ClipVisionBody(nn.Module):
    """A CLIP vision tower as a backbone body: CLIP-normalised images (N, 3, H, W) -> (N, F).

    F is the pooled output's width (the tower's hidden size), or the projection width with
    ``projected``. Position embeddings are interpolated, so any image size works.

    Attributes:
        model: The ``CLIPVisionModel`` or ``CLIPVisionModelWithProjection``.
        projected: Whether the output is the projected image embedding.
        num_features: F.
    """

    def __init__(self, model: nn.Module, projected: bool) -> None:
        super().__init__()
        self.model = model
        self.projected = bool(projected)
        config = model.config
        self.num_features = int(config.projection_dim if projected else config.hidden_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of shape (N, F)."""
        output = self.model(pixel_values=images, interpolate_pos_encoding=True)
        return output.image_embeds if self.projected else output.pooler_output


def clip_vision_body(config: Any, projected: bool = False) -> ClipVisionBody:
    """A randomly initialised CLIP vision tower from a ``transformers.CLIPVisionConfig``.

    Args:
        config: The tower's config (any sizes: tests build tiny ones).
        projected: Add CLIP's visual projection and return its embedding.

    Returns:
        The body; ``num_features`` tells its output width.
    """
    from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

    model_cls = CLIPVisionModelWithProjection if projected else CLIPVisionModel
    return ClipVisionBody(model_cls(config), projected)


def _offline_clip_config(name: str, repo: str) -> Any:
    """The tower's config without downloading weights: the cache, the known table, the hub, or the default."""
    from huggingface_hub import is_offline_mode
    from transformers import CLIPVisionConfig

    try:
        return CLIPVisionConfig.from_pretrained(repo, local_files_only=True)
    except (OSError, ValueError):
        pass
    if repo in CLIP_VISION_ARCHITECTURES:
        return CLIPVisionConfig(**CLIP_VISION_ARCHITECTURES[repo])
    if not is_offline_mode():
        try:
            return CLIPVisionConfig.from_pretrained(repo)
        except (OSError, ValueError):
            pass
    warnings.warn(
        f"backbone {name!r}: no config of {repo!r} is cached and it is not a known model, so the default "
        "CLIP ViT-B/32 architecture is built; a checkpoint of another architecture will not load into it",
        stacklevel=3,
    )
    return CLIPVisionConfig()


def hf_spec(name: str) -> BackboneSpec | None:
    """The spec of ``hf/<org>/<model>``, a CLIP model's vision tower on the Hugging Face hub.

    ``hf/<org>/<model>:projected`` uses the projected image embedding (as CLIP compares
    images with text) instead of the pooled output.

    Returns:
        The spec, normalised with CLIP's RGB statistics; ``None`` for a name without the ``hf/`` prefix.

    Raises:
        ConfigError: transformers is not installed, or the name is not ``hf/<org>/<model>``.
    """
    if not name.startswith(HF_PREFIX):
        return None
    repo = name[len(HF_PREFIX) :]
    projected = repo.endswith(PROJECTED_SUFFIX)
    if projected:
        repo = repo[: -len(PROJECTED_SUFFIX)]
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(
            f"backbone {name!r}: write a Hugging Face model as hf/<org>/<model>, e.g. hf/geolocal/StreetCLIP"
        )
    _require("transformers", name)

    def build(pretrained: bool) -> tuple[nn.Module, int]:
        if not pretrained:
            body = clip_vision_body(_offline_clip_config(name, repo), projected)
            return body, body.num_features
        from transformers import CLIPVisionModel, CLIPVisionModelWithProjection

        model_cls = CLIPVisionModelWithProjection if projected else CLIPVisionModel
        try:
            model = model_cls.from_pretrained(repo)
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise _offline_error(name, repo, exc) from exc
        body = ClipVisionBody(model, projected)
        return body, body.num_features

    return BackboneSpec(name, build, CLIP_MEAN, CLIP_STD)
