"""Deterministic, resumable sampling: a per-epoch sampler and a loader that can resume mid-epoch."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch.utils.data import DataLoader, DistributedSampler

from geoguess_utils.errors import ConfigError

_SEED_LIMIT = 2**63 - 1


def base_seed() -> int:
    """The run's seed: the one ``seed_everything`` set (``PL_GLOBAL_SEED``), else torch's initial seed."""
    value = os.environ.get("PL_GLOBAL_SEED")
    try:
        return int(value) % 2**64 if value is not None else int(torch.initial_seed())
    except ValueError:
        return int(torch.initial_seed())


class EpochSampler(DistributedSampler):
    """Shuffled training order that depends only on ``(seed, epoch)``, with one augmentation seed per row.

    It yields ``(row index, augmentation seed)`` pairs, which
    :class:`~geoguess_utils.data.geodataset.GeoDataset` accepts as keys. Like torch's
    ``DistributedSampler`` (which it extends, so Lightning leaves it in place under DDP),
    each of ``num_replicas`` processes gets every ``num_replicas``-th row of the
    permutation, padded by repetition to equal shares.

    Lightning calls :meth:`set_epoch` before every epoch; an iteration without it counts
    as the next epoch, so looping over the loader by hand still reshuffles.

    Args:
        dataset: The training dataset (only its length is used).
        seed: Seed of every epoch's order and augmentation seeds (non-negative int).
        num_replicas: Number of training processes.
        rank: This process's index among them.
    """

    def __init__(self, dataset: Sized, seed: int, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=int(seed), drop_last=False)  # type: ignore[arg-type]
        self._skip_next: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch``'s order."""
        self.epoch = int(epoch)

    def skip_rows(self, epoch: int, rows: int) -> None:
        """Leave out the first ``rows`` rows of this process's share when epoch ``epoch`` is next iterated."""
        self._skip_next = (int(epoch), max(0, int(rows)))

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This process's rows in epoch ``epoch`` and their augmentation seeds.

        Returns:
            ``(indices, seeds)``: two int64 arrays of length ``len(self)``.
        """
        n = len(self.dataset)  # type: ignore[arg-type]
        rng = np.random.default_rng([int(self.seed), int(epoch)])
        indices = np.resize(rng.permutation(n), self.total_size) if n else np.zeros(0, dtype=np.int64)
        seeds = rng.integers(0, _SEED_LIMIT, size=self.total_size, dtype=np.int64)
        mine = slice(self.rank, self.total_size, self.num_replicas)
        return indices[mine].astype(np.int64), seeds[mine]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        self.epoch = epoch + 1  # a further pass without set_epoch() is the next epoch
        start = 0
        if self._skip_next is not None:
            skip_epoch, rows = self._skip_next
            self._skip_next = None
            if skip_epoch == epoch:
                start = rows
        indices, seeds = self.order(epoch)
        yield from zip(indices[start:].tolist(), seeds[start:].tolist(), strict=True)


class ResumableLoader(DataLoader):
    """A DataLoader whose position inside the epoch is saved in checkpoints and restored on resume.

    Lightning calls :meth:`state_dict` whenever it writes a checkpoint and
    :meth:`load_state_dict` before the first batch of a resumed run. The state is four
    plain integers, so checkpoints stay loadable with ``weights_only=True``. With an
    :class:`EpochSampler`, the resumed epoch continues with exactly the batches the
    interrupted one had not reached.

    Iteration starts lazily (at the first batch), after Lightning has told the sampler
    which epoch it is.
    """

    _epoch: int | None = None
    _batches: int = 0
    _pending: dict[str, int] | None = None

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        return self._epoch_batches()

    def _epoch_batches(self) -> Iterator[Any]:
        sampler = self.sampler
        skipped = 0
        if isinstance(sampler, EpochSampler):
            epoch = sampler.epoch
            pending, self._pending = self._pending, None
            if pending is not None and pending["epoch"] == epoch and pending["batches"] > 0:
                skipped = pending["batches"]
                sampler.skip_rows(epoch, skipped * pending["batch_size"])
        else:
            epoch = getattr(sampler, "epoch", 0)
            if self._pending is not None:
                self._pending = None
                rank_zero_warn("the training sampler was replaced; a resumed epoch restarts from its first batch")
        self._epoch, self._batches = int(epoch), skipped
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """Where training stands: epoch, batches handed out in it, batch size and the order's seed."""
        sampler = self.sampler
        epoch = self._epoch if self._epoch is not None else int(getattr(sampler, "epoch", 0))
        return {
            "epoch": int(epoch),
            "batches": int(self._batches),
            "batch_size": int(self.batch_size or 1),
            "seed": int(getattr(sampler, "seed", 0)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the batches recorded in ``state`` when its epoch comes round again."""
        try:
            pending = {key: int(state[key]) for key in ("epoch", "batches", "batch_size", "seed")}
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the checkpoint's data-loader state {state!r} is not one this version wrote") from exc
        if isinstance(self.sampler, EpochSampler):
            self.sampler.seed = pending["seed"]
        self._pending = pending
