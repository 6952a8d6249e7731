"""Networks: the backbone registry, EfficientNet-Lite0 offline, and the multi-view network.

Names below are importable from the package itself (``from geoguess_utils.models import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "BACKBONES": "backbones",
    "Backbone": "backbones",
    "BackboneResolver": "backbones",
    "BackboneSpec": "backbone_spec",
    "Builder": "backbone_spec",
    "CLIP_MEAN": "external_backbones",
    "CLIP_STD": "external_backbones",
    "CLIP_VISION_ARCHITECTURES": "external_backbones",
    "ClipVisionBody": "external_backbones",
    "HF_PREFIX": "external_backbones",
    "LiteClassifier": "efficientnet_lite",
    "LiteInput": "efficientnet_lite",
    "MultiViewNet": "multiview",
    "OFFLINE_BACKBONE": "efficientnet_lite",
    "POOLINGS": "multiview",
    "PROJECTED_SUFFIX": "external_backbones",
    "Pooling": "multiview",
    "RESOLVERS": "backbones",
    "TIMM_PREFIX": "external_backbones",
    "ViewAttention": "view_attention",
    "backbone_normalization": "backbones",
    "backbone_resolvers": "backbones",
    "backbone_spec": "backbones",
    "build_backbone": "backbones",
    "clip_vision_body": "external_backbones",
    "hf_spec": "external_backbones",
    "imagenet_classifier": "backbones",
    "list_backbones": "backbones",
    "register_backbone": "backbones",
    "register_resolver": "backbones",
    "timm_spec": "external_backbones",
    "torch_hub_checkpoint_dir": "backbones",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
