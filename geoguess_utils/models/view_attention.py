"""Attention over the views of one location: a small transformer encoder with a heading embedding."""

from __future__ import annotations

import torch
from torch import nn

from geoguess_utils.errors import ConfigError


class ViewAttention(nn.Module):
    """Fuse per-view features (B, V, F) into one vector (B, D) with self-attention.

    Each view's feature is projected from F to ``d_model`` and a learned embedding of its
    position (its heading: 0, 90, 180 and 270 degrees for four views) is added; a small
    pre-norm transformer encoder lets the views attend to each other, and the mean of the
    encoded tokens, layer-normalised, is the fused vector. Without the heading embedding
    the result would not depend on the order of the views; with it, "the sea is to the
    left of the road" can be told from "the sea is behind".

    The module only sees backbone features, so it trains with the head while the backbone
    is frozen, including from the embedding cache.

    Any non-empty subset of the views can be fused: a view mask leaves absent views out of
    the attention (as keys) and out of the mean, so whatever fills an absent slot does not
    change the result. A view whose heading is not known (a loose photo) gets one more
    learned embedding, "heading unknown", instead of its slot's heading embedding.

    Attributes:
        num_views: V, the number of view tokens.
        d_model: D, the width of the tokens and of the output.
        project: Linear map F -> D applied to each view.
        heading: Learned heading embedding, shape (V, D).
        unknown_heading: Learned embedding of a view whose heading is unknown, shape (D,).
        encoder: The transformer encoder over the V tokens.
        norm: Layer norm of the pooled vector.
    """

    def __init__(
        self,
        in_features: int,
        num_views: int = 4,
        d_model: int = 256,
        num_heads: int = 4,
        num_layers: int = 2,
        dropout: float = 0.0,
    ) -> None:
        """Build the encoder.

        Args:
            in_features: F, the backbone's feature size.
            num_views: V, the views per location.
            d_model: D, the token width; must be divisible by ``num_heads``.
            num_heads: Attention heads per layer.
            num_layers: Encoder layers.
            dropout: Dropout inside the encoder layers.

        Raises:
            ConfigError: For a non-positive size or a ``d_model`` not divisible by ``num_heads``.
        """
        super().__init__()
        sizes = {"in_features": in_features, "num_views": num_views, "d_model": d_model}
        sizes |= {"num_heads": num_heads, "num_layers": num_layers}
        bad = {key: value for key, value in sizes.items() if int(value) < 1}
        if bad:
            raise ConfigError(f"view attention sizes must be positive, got {bad}")
        if d_model % num_heads:
            raise ConfigError(f"view attention: d_model {d_model} is not divisible by num_heads {num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"view attention: dropout must be in [0, 1), got {dropout}")
        self.num_views = int(num_views)
        self.d_model = int(d_model)
        self.project = nn.Linear(int(in_features), self.d_model)
        self.heading = nn.Parameter(torch.randn(self.num_views, self.d_model) * 0.02)
        self.unknown_heading = nn.Parameter(torch.zeros(self.d_model))
        layer = nn.TransformerEncoderLayer(
            d_model=self.d_model,
            nhead=int(num_heads),
            dim_feedforward=2 * self.d_model,
            dropout=float(dropout),
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=int(num_layers), enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.d_model)

    def forward(
        self,
        view_features: torch.Tensor,
        view_mask: torch.Tensor | None = None,
        heading_known: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fused vector of each location.

        Args:
            view_features: Shape (B, V, F), views in heading order.
            view_mask: Shape (B, V) bool, True where the view is present (default: all are);
                every location needs at least one.
            heading_known: Shape (B, V) bool, True where the view's heading is its slot's
                (default: all are); False uses the "heading unknown" embedding.

        Returns:
            Shape (B, D).

        Raises:
            ValueError: For a wrong shape, or a location without any view.
        """
        if view_features.ndim != 3 or view_features.shape[1] != self.num_views:
            raise ValueError(
                f"expected view features of shape (B, {self.num_views}, F), got {tuple(view_features.shape)}"
            )
        heading = self.heading.unsqueeze(0)
        if heading_known is not None:
            known = heading_known.to(device=view_features.device, dtype=torch.bool).unsqueeze(-1)
            heading = torch.where(known, heading, self.unknown_heading)
        if view_mask is None:
            return self.norm(self.encoder(self.project(view_features) + heading).mean(dim=1))
        present = check_view_mask(view_mask, view_features).unsqueeze(-1)
        features = torch.where(present, view_features, torch.zeros((), dtype=view_features.dtype))
        tokens = self.project(features) + heading
        padding = ~present.squeeze(-1)
        encoded = self.encoder(tokens, src_key_padding_mask=padding if bool(padding.any()) else None)
        kept = torch.where(present, encoded, torch.zeros((), dtype=encoded.dtype))
        return self.norm(kept.sum(dim=1) / present.sum(dim=1).to(kept.dtype))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        """Load checkpoints saved before the "heading unknown" embedding: it starts as the mean heading."""
        key = prefix + "unknown_heading"
        if key not in state_dict and prefix + "heading" in state_dict:
            state_dict[key] = state_dict[prefix + "heading"].mean(dim=0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[arg-type]


def check_view_mask(view_mask: torch.Tensor, view_features: torch.Tensor) -> torch.Tensor:
    """The view mask as bool (B, V) on the features' device, checked: every location keeps a view.

    Args:
        view_mask: Shape (B, V), nonzero/True where the view is present.
        view_features: Shape (B, V, ...), the views it describes.

    Raises:
        ValueError: For a shape that does not match, or a location without any view.
    """
    if tuple(view_mask.shape) != tuple(view_features.shape[:2]):
        raise ValueError(f"view mask of shape {tuple(view_mask.shape)} for views of shape {tuple(view_features.shape)}")
    present = view_mask.to(device=view_features.device, dtype=torch.bool)
    empty = (~present.any(dim=1)).nonzero().flatten()
    if len(empty):
        raise ValueError(f"location {int(empty[0])} of the batch has no view: every location needs at least one")
    return present
