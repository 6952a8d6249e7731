"""View dropout: train on random subsets of a location's views, so that any one to four photos can be fused."""

from __future__ import annotations

import torch

VIEW_MASK = "view_mask"
"""Batch key of the views present, (B, V) bool (absent: every view is)."""
HEADING_KNOWN = "heading_known"
"""Batch key of the views whose heading is their slot's, (B, V) bool (absent: every heading is known)."""


def views_present(batch: dict, batch_size: int, num_views: int, device: torch.device) -> torch.Tensor:
    """The batch's view mask, (B, V) bool: ``batch["view_mask"]``, or every view when it has none."""
    mask = batch.get(VIEW_MASK)
    if mask is None:
        return torch.ones(batch_size, num_views, dtype=torch.bool, device=device)
    return mask.to(device=device, dtype=torch.bool)


def drop_views(present: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each present view with probability ``p``, never all of a location's.

    Where every present view of a location would be dropped, one of them, drawn at random,
    is kept instead, so each location keeps at least one view.

    Args:
        present: Shape (B, V) bool, the views a location has.
        p: Drop probability of each view, in [0, 1).
        generator: Random source (default: torch's global one).

    Returns:
        Shape (B, V) bool, a subset of ``present`` with at least one view per row that had one.
    """
    if p <= 0:
        return present
    draws = torch.rand(present.shape, generator=generator, device="cpu").to(present.device)
    kept = present & (draws >= p)
    empty = ~kept.any(dim=1) & present.any(dim=1)
    if bool(empty.any()):
        scores = torch.rand(present.shape, generator=generator, device="cpu").to(present.device)
        choice = torch.where(present, scores, torch.full_like(scores, -1.0)).argmax(dim=1)
        rescue = torch.nn.functional.one_hot(choice, present.shape[1]).bool() & empty.unsqueeze(1)
        kept = kept | rescue
    return kept


def hide_headings(present: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Which headings stay known, (B, V) bool: each present view's is hidden with probability ``p``.

    Trains the "heading unknown" embedding that loose photos (``geoguess predict --photo``) use.
    """
    known = torch.ones_like(present)
    if p <= 0:
        return known
    draws = torch.rand(present.shape, generator=generator, device="cpu").to(present.device)
    return known & ~(present & (draws < p))
