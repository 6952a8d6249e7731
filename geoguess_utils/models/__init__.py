"""Networks: the backbone registry, EfficientNet-Lite0 offline, and the multi-view network.

Names below are importable from the package itself (``from geoguess_utils.models import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "Backbone": "backbones",
    "IMAGENET_MEAN": "normalization",
    "IMAGENET_STD": "normalization",
    "LiteClassifier": "efficientnet_lite",
    "LiteInput": "efficientnet_lite",
    "MultiViewNet": "multiview",
    "OFFLINE_BACKBONE": "efficientnet_lite",
    "POOLINGS": "multiview",
    "Pooling": "multiview",
    "ViewAttention": "view_attention",
    "build_backbone": "backbones",
    "imagenet_classifier": "backbones",
    "list_backbones": "backbones",
    "torch_hub_checkpoint_dir": "backbones",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
