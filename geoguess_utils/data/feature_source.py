"""What the data module needs to serve cached backbone features instead of images.

The data module does not know models or the embedding cache: whoever trains hands it a
:class:`FeatureSource` (``geoguess fit`` attaches one for its task through a callback,
see :class:`geoguess_utils.training.callbacks.TaskDataLink`), and the data module asks it,
each epoch, whether to serve features and for the features of a split.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, Protocol


class FeatureSource(Protocol):
    """Cached per-view features of a split, for the phase in which the backbone does not learn."""

    def serving(self) -> bool:
        """Whether batches should carry cached features now (e.g. while the backbone is frozen)."""
        ...

    def key(self) -> Hashable:
        """What the features depend on (the backbone and its weights); a new key means new features."""
        ...

    def build(self, split: str, dataset: Any, cache_dir: Path, batch_size: int, num_workers: int) -> Any:
        """The features of ``dataset``: split ``split``'s plain views, or augmented copies of them.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            dataset: Its samples, images (4, 3, H, W) normalised for the backbone: an
                un-augmented image dataset, or (the training split with
                ``embeddings.augmented_copies`` K >= 1) an
                :class:`~geoguess_utils.data.augment.AugmentedCopies` of one, K x N samples
                whose key (:meth:`~geoguess_utils.data.augment.AugmentedCopies.key`) the
                features depend on too.
            cache_dir: Where the cache files of these roots live.
            batch_size: Locations per forward pass when the features are computed.
            num_workers: DataLoader workers for that pass.

        Returns:
            An array-like with one row (4, F) per sample of ``dataset``, in its order.
        """
        ...
