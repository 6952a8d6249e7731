"""The multi-view network: one backbone over four views, fused, then a head."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from geoguess_utils.errors import ConfigError
from geoguess_utils.models.backbones import build_backbone
from geoguess_utils.models.efficientnet_lite import OFFLINE_BACKBONE
from geoguess_utils.models.view_attention import ViewAttention, check_view_mask

Pooling = Literal["concat", "mean", "attention"]
POOLINGS: tuple[str, ...] = ("concat", "mean", "attention")


class MultiViewNet(nn.Module):
    """One backbone over the four views of a location, one linear layer on top.

    The views are folded into the batch, ``(B, V, 3, H, W) -> (B * V, 3, H, W)``, passed
    through the backbone once, unfolded to ``(B, V, F)`` and fused: concatenated in view
    (heading) order to ``(B, V * F)``, averaged to ``(B, F)``, or passed through a small
    transformer encoder with a heading embedding (:class:`ViewAttention`) to ``(B, D)``.

    Attributes:
        backbone: The shared :class:`Backbone`.
        fusion: The :class:`ViewAttention` module for ``pooling="attention"``; absent otherwise
            (so the state dict of the other poolings is that of the original design).
        fused_width: Width W of the fused vector the head reads.
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
        head_hidden: int = 0,
        attention_dim: int = 256,
        attention_heads: int = 4,
        attention_layers: int = 2,
    ) -> None:
        """Build the network.

        Args:
            backbone: Backbone name, see :func:`build_backbone`.
            num_outputs: Output size: the number of classes, or 2 for scaled (x, y).
            pretrained: Start the backbone from ImageNet weights.
            pooling: ``"concat"`` (the original design), ``"mean"`` over the views, or
                ``"attention"``: a transformer encoder over the view tokens (see
                :class:`ViewAttention`), which trains with the head.
            num_views: Views per location (4: headings 0, 90, 180, 270).
            dropout: Dropout probability before the linear layer.
            channels_last: Feed the backbone NHWC-strided images (faster convolutions on
                recent GPUs; move the module with ``.to(memory_format=torch.channels_last)``).
            head_hidden: Width of one hidden ReLU layer in the head (0: a single linear layer,
                the original design). Dropout applies before each linear layer.
            attention_dim: Token width D of the view attention (``pooling="attention"`` only).
            attention_heads: Its attention heads per layer.
            attention_layers: Its encoder layers.
        """
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if num_outputs < 1 or num_views < 1:
            raise ConfigError(f"num_outputs and num_views must be positive, got {num_outputs} and {num_views}")
        if head_hidden < 0:
            raise ConfigError(f"head_hidden must be >= 0, got {head_hidden}")
        self.pooling = pooling
        self.num_views = int(num_views)
        self.channels_last = bool(channels_last)
        self.backbone = build_backbone(backbone, pretrained)
        features = self.backbone.num_features

        self._top_settings = {
            "pooling": pooling,
            "num_views": self.num_views,
            "features": int(features),
            "num_outputs": int(num_outputs),
            "head_hidden": int(head_hidden),
            "dropout": float(dropout),
            "attention": (int(attention_dim), int(attention_heads), int(attention_layers)),
        }
        top = FusionHead(**self._top_settings)
        if pooling == "attention":
            self.fusion = top.fusion
        self.fused_width = top.fused_width
        self.head = top.head

    def fresh_fusion_head(self) -> FusionHead:
        """A newly initialised fusion and head of the same shapes as this network's (an ensemble member's top)."""
        return FusionHead(**self._top_settings)

    def view_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of each view.

        Args:
            images: Shape (B, V, 3, H, W), views in heading order.

        Returns:
            Shape (B, V, F): what the embedding cache stores.
        """
        if images.ndim != 5 or images.shape[1] != self.num_views:
            raise ValueError(f"expected images of shape (B, {self.num_views}, 3, H, W), got {tuple(images.shape)}")
        batch, views = images.shape[:2]
        flat = images.reshape(batch * views, *images.shape[2:])
        if self.channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last)
        return self.backbone(flat).reshape(batch, views, -1)

    def fuse(
        self,
        view_features: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fuse per-view features (B, V, F) into (B, W).

        W is V * F for ``"concat"``, F for ``"mean"`` and D for ``"attention"``
        (:attr:`fused_width` in every case). ``view_mask`` (B, V) bool marks the views
        present and ``heading_known`` (B, V) bool those whose heading is their slot's; see
        :func:`fuse_views` for what each pooling does with them.
        """
        if view_features.ndim != 3 or view_features.shape[1] != self.num_views:
            raise ValueError(
                f"expected view features of shape (B, {self.num_views}, F), got {tuple(view_features.shape)}"
            )
        return fuse_views(self.pooling, getattr(self, "fusion", None), view_features, view_mask, heading_known)

    def features(
        self,
        images: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused features (B, W) of a batch of locations, of images (B, V, 3, H, W) (masks: see :meth:`fuse`)."""
        return self.fuse(self.view_features(images), view_mask, heading_known)

    def from_view_features(
        self,
        view_features: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Outputs (B, num_outputs) from per-view features (B, V, F), e.g. read from the embedding cache."""
        return self.head(self.fuse(view_features, view_mask, heading_known))

    def forward(
        self,
        images: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Outputs of shape (B, num_outputs) for images of shape (B, V, 3, H, W) (masks: see :meth:`fuse`)."""
        return self.head(self.features(images, view_mask, heading_known))


class FusionHead(nn.Module):
    """What sits on the backbone: the view fusion (attention only) and the head, without a backbone.

    :class:`MultiViewNet` builds its own top with this class, and an ensemble keeps one more
    per extra member (:meth:`MultiViewNet.fresh_fusion_head`), all reading the same backbone
    features. Submodule names match the network's (``fusion``, ``head``).

    Attributes:
        fusion: The :class:`ViewAttention` for ``pooling="attention"``; absent otherwise.
        fused_width: Width W of the fused vector the head reads.
        head: Dropout then a linear layer to ``num_outputs``.
    """

    def __init__(
        self,
        pooling: str,
        num_views: int,
        features: int,
        num_outputs: int,
        head_hidden: int,
        dropout: float,
        attention: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.num_views = int(num_views)
        if pooling == "attention":
            dim, heads, layers = attention
            self.fusion = ViewAttention(features, self.num_views, dim, heads, layers, dropout)
            width = self.fusion.d_model
        else:
            width = features * (self.num_views if pooling == "concat" else 1)
        self.fused_width = int(width)
        self.head = _make_head(width, num_outputs, head_hidden, dropout)

    def forward(
        self,
        view_features: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Outputs (B, num_outputs) from per-view features (B, V, F) (masks: see :func:`fuse_views`)."""
        fusion = getattr(self, "fusion", None)
        return self.head(fuse_views(self.pooling, fusion, view_features, view_mask, heading_known))


def fuse_views(
    pooling: str,
    fusion: ViewAttention | None,
    view_features: torch.Tensor,
    view_mask: torch.Tensor | None = None,
    heading_known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fuse per-view features (B, V, F) with ``pooling``, using only the views present.

    - ``"attention"``: :class:`ViewAttention` (absent views are neither attended to nor
      averaged; an unknown heading gets its own embedding);
    - ``"mean"``: the mean over the views present (headings play no part);
    - ``"concat"``: the views side by side in heading order, which has a place for each
      heading, so it needs all of them with their headings and refuses anything else.

    Args:
        pooling: ``"concat"``, ``"mean"`` or ``"attention"``.
        fusion: The attention module (``"attention"`` only).
        view_features: Shape (B, V, F).
        view_mask: Shape (B, V) bool, True where the view is present (default: all).
        heading_known: Shape (B, V) bool, True where the heading is the slot's (default: all).

    Returns:
        Shape (B, W).

    Raises:
        ConfigError: ``"concat"`` given missing views or unknown headings.
        ValueError: A location without any view, or masks of the wrong shape.
    """
    if pooling == "attention":
        assert fusion is not None
        return fusion(view_features, view_mask, heading_known)
    if pooling == "concat":
        missing = view_mask is not None and not bool(check_view_mask(view_mask, view_features).all())
        unknown = heading_known is not None and not bool(heading_known.all())
        if missing or unknown:
            raise ConfigError(
                "this model concatenates the four views in heading order, so it needs all four with their "
                "headings; models trained with --model.pooling attention (or mean) take one to four photos"
            )
        return view_features.flatten(1)
    if view_mask is None:
        return view_features.mean(dim=1)
    present = check_view_mask(view_mask, view_features).unsqueeze(-1)
    kept = torch.where(present, view_features, torch.zeros((), dtype=view_features.dtype))
    return kept.sum(dim=1) / present.sum(dim=1).to(kept.dtype)


def _make_head(width: int, num_outputs: int, head_hidden: int, dropout: float) -> nn.Sequential:
    """Dropout and a linear layer to ``num_outputs`` (with one hidden ReLU layer when ``head_hidden``)."""
    if head_hidden:
        return nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(width, head_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, num_outputs),
        )
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_outputs))
