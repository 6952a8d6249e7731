"""Exact resumption of a killed training run.

A run killed in the middle of an epoch (power cut, out-of-memory killer, ``kill -9``)
restarts from its latest checkpoint with ``geoguess fit ... --ckpt_path .../last.ckpt``
and ends with the weights, optimiser state and metrics an uninterrupted run reaches.
Four pieces make that work:

* :class:`EpochSampler` orders the training rows by a permutation drawn from
  ``(seed, epoch)`` alone and gives every row of every epoch its own augmentation seed,
  so neither the order nor the random crops depend on what ran before in the process;
* :class:`ResumableLoader` counts the batches it has handed out in the current epoch.
  Lightning stores that count in every checkpoint, and on resume the sampler skips the
  rows already trained on;
* :class:`StepSeed` re-seeds torch's global generator before every training step from
  ``(seed, epoch, batch, rank)``, so dropout and drop-connect masks repeat exactly;
* :class:`StepCheckpoint` writes ``last.ckpt`` every N optimiser steps, so a kill
  loses at most N steps of work;
* :class:`PlateauCatchUp` makes up the ``ReduceLROnPlateau`` step that Lightning
  leaves out when a run resumes (the epoch-end checkpoint is written before that step,
  and a resumed epoch skips it), so the learning-rate schedule stays the same.

Nothing here reads or writes files itself; checkpoints are written by the trainer's
(atomic) checkpoint writer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint
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
    :class:`~geoguess_utils.data.GeoDataset` accepts as keys. Like torch's
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


class StepSeed(Callback):
    """Seed torch's global generator before each training step from ``(seed, epoch, batch, rank)``.

    Random operations inside a step (dropout, drop-connect) then depend only on where
    training is, not on everything that ran before in the process, which is what makes
    a resumed run repeat the uninterrupted one. The seed is stored in checkpoints.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seed: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Take the run's seed (a resumed run gets the checkpoint's instead, loaded afterwards)."""
        if self.seed is None:
            self.seed = base_seed()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Re-seed for this step."""
        seed = self.seed if self.seed is not None else base_seed()
        entropy = [int(seed) % 2**64, int(trainer.current_epoch), int(batch_idx), int(trainer.global_rank)]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]))

    def state_dict(self) -> dict[str, Any]:
        """The seed, as a plain int."""
        return {"seed": self.seed}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Use the interrupted run's seed."""
        if state_dict.get("seed") is not None:
            self.seed = int(state_dict["seed"])


class StepCheckpoint(Callback):
    """Write ``last.ckpt`` every ``every_n_train_steps`` optimiser steps, also in the middle of an epoch.

    The file goes next to the run's other checkpoints (the folder of the trainer's
    ``ModelCheckpoint``), under the name that callback uses for its last checkpoint, so
    ``last.ckpt`` is always the most recent state: after an epoch it is the epoch-end
    checkpoint, between epochs the latest step.

    Args:
        every_n_train_steps: Steps between two saves; 0 saves only at epoch ends (through
            ``ModelCheckpoint(save_last=True)``).
    """

    def __init__(self, every_n_train_steps: int = 0) -> None:
        super().__init__()
        if every_n_train_steps < 0:
            raise ConfigError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.every_n_train_steps = int(every_n_train_steps)
        self._last_step = -1
        self._warned = False

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Save when the step count is a multiple of ``every_n_train_steps``."""
        step = trainer.global_step
        n = self.every_n_train_steps
        if n <= 0 or step == 0 or step % n or step == self._last_step or trainer.sanity_checking:
            return
        if trainer.fast_dev_run:
            return
        callback = trainer.checkpoint_callback
        if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
            if not self._warned:
                rank_zero_warn("step checkpoints need a ModelCheckpoint callback (checkpointing is off); none written")
                self._warned = True
            return
        path = os.path.join(callback.dirpath, f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}")
        callback.last_model_path = path  # so the epoch-end save overwrites this file instead of adding last-v1
        trainer.save_checkpoint(path)
        self._last_step = step


class PlateauCatchUp(Callback):
    """Apply the ``ReduceLROnPlateau`` step Lightning leaves out around a resume.

    Lightning steps a plateau scheduler after each epoch, once the epoch-end checkpoint
    is written, and it skips that step at the end of an epoch it resumed in the middle.
    Either way one step goes missing and the learning-rate schedule drifts from the
    uninterrupted run's. At the start of every epoch this callback compares how many
    steps the scheduler has taken with how many epochs are done and, when one is
    missing, takes it with the monitored value of the last validation (from this process,
    or as saved in the checkpoint). In an uninterrupted run it never does anything.
    """

    def __init__(self) -> None:
        super().__init__()
        self._trainer: pl.Trainer | None = None
        self._saved: dict[str, float] = {}

    @staticmethod
    def _plateaus(trainer: pl.Trainer) -> list[Any]:
        return [
            config
            for config in trainer.lr_scheduler_configs
            if config.reduce_on_plateau and config.interval == "epoch" and config.monitor
        ]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remember the trainer, to read its metrics when a checkpoint is written."""
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        """The monitored values of the last validation, as plain floats."""
        values = dict(self._saved)
        trainer = self._trainer
        if trainer is not None:
            for config in self._plateaus(trainer):
                value = trainer.callback_metrics.get(config.monitor)
                if value is not None:
                    values[config.monitor] = float(value)
        return {"monitored": values}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep the interrupted run's last monitored values."""
        self._saved = {str(k): float(v) for k, v in dict(state_dict.get("monitored", {})).items()}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Take a plateau step that is due but was not taken."""
        for config in self._plateaus(trainer):
            scheduler = config.scheduler
            due = trainer.current_epoch // max(1, int(config.frequency))
            if int(getattr(scheduler, "last_epoch", due)) != due - 1:
                continue
            value = trainer.callback_metrics.get(config.monitor, self._saved.get(config.monitor))
            if value is None:
                rank_zero_warn(f"cannot make up the missed plateau step: no value of {config.monitor!r}")
                continue
            scheduler.step(float(value))
