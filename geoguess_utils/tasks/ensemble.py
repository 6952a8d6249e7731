"""An ensemble from separately trained runs: one backbone, each member's fusion and head, outputs averaged.

Runs that differ only by their seed (their own initialisation and batch order) make
different errors; averaging their class probabilities cancels part of them. With a frozen
backbone every member reads the same features, so the ensemble keeps one backbone and
one fusion and head per member: predicting costs one backbone pass plus N small heads.
``geoguess fit --ensemble N`` trains the members one after another and calls
:func:`assemble_ensemble`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from geoguess_utils.errors import ConfigError
from geoguess_utils.tasks.base import MAX_ENSEMBLE, GeoTask

TOP_PREFIXES = ("fusion.", "head.")
"""State-dict prefixes of what sits on a network's backbone (the part each member adds)."""


def _same_backbone(first: GeoTask, other: GeoTask, member: int) -> None:
    """Refuse a member whose backbone weights differ from the first member's (it was fine-tuned)."""
    assert first.net is not None and other.net is not None
    mine, theirs = first.net.backbone.state_dict(), other.net.backbone.state_dict()
    different = [name for name, value in mine.items() if not torch.equal(value, theirs[name])]
    if different:
        raise ConfigError(
            f"ensemble member {member + 1} has other backbone weights than member 1 (first: {different[0]}): the "
            "members of an ensemble share one frozen backbone; train them with freeze_backbone_epochs: all"
        )


def assemble_ensemble(members: Sequence[GeoTask]) -> GeoTask:
    """One task holding ``members``: the first's network and every other member's fusion and head.

    Args:
        members: Trained tasks of one class, on one GeoContext, image size and frozen backbone
            (the same weights); two or more, at most :data:`MAX_ENSEMBLE`.

    Returns:
        A task of the members' class with ``ensemble = len(members)``, in eval mode. Its
        outputs are the members' combined outputs (classifiers: the mean probabilities).

    Raises:
        ConfigError: Fewer than two members or too many, members of different classes,
            contexts, image sizes or backbone weights, or a task that cannot be an ensemble.
    """
    if not 2 <= len(members) <= MAX_ENSEMBLE:
        raise ConfigError(f"an ensemble needs 2 to {MAX_ENSEMBLE} members, got {len(members)}")
    first = members[0]
    if first.context is None or first.net is None:
        raise ConfigError("ensemble member 1 has no network yet: train it first")
    for i, member in enumerate(members[1:], start=1):
        if type(member) is not type(first):
            kinds = f"{type(member).__name__}, member 1 a {type(first).__name__}"
            raise ConfigError(f"ensemble member {i + 1} is a {kinds}")
        if member.context is None or member.context.fingerprint() != first.context.fingerprint():
            raise ConfigError(f"ensemble member {i + 1} was trained on other cells than member 1 (another split?)")
        if member.image_size != first.image_size:
            sizes = f"{member.image_size} px images, member 1 {first.image_size}"
            raise ConfigError(f"ensemble member {i + 1} reads {sizes}")
        _same_backbone(first, member, i)
    settings = {name: value for name, value in first.hparams.items() if name in type(first).accepted_arguments()}
    settings.update(ensemble=len(members), pretrained=False)
    ensemble = type(first)(**settings)
    ensemble.configure_context(first.context, first.image_size)
    ensemble.training_data = first.training_data
    assert ensemble.net is not None and ensemble.extra_heads is not None
    ensemble.net.load_state_dict(first.net.state_dict())
    for top, member in zip(ensemble.extra_heads, members[1:], strict=True):
        assert member.net is not None
        state = {k: v for k, v in member.net.state_dict().items() if k.startswith(TOP_PREFIXES)}
        top.load_state_dict(state, strict=True)
    return ensemble.eval()
