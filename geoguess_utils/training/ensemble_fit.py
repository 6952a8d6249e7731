"""``geoguess fit --ensemble N``: N members trained one after another, kept and tested as one model.

Member ``i`` (0-based) is the configured run with ``seed_everything`` raised by ``i``: its own
initialisation and its own batch order, on the same split and cells (the split has its own
seed, ``data.split.seed``). With the embedding cache on, the frozen backbone's features are
computed once and every member trains from them in seconds.

Layout of the run folder (``runs/<name>/version_<K>/``, the first member's logger's)::

    members/<i>/checkpoints/best.ckpt    each member's best checkpoint (and last.ckpt)
    checkpoints/best.ckpt                the ensemble: one backbone, a fusion and head per member
    metrics.csv, split.csv, ...          the first member's epochs, then the ensemble's test scores

The members share one backbone, so it must never train (``freeze_backbone_epochs: all``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

from geoguess_utils.errors import ConfigError
from geoguess_utils.io import atomic_path
from geoguess_utils.tasks.base import MAX_ENSEMBLE, GeoTask

MEMBERS_DIR = "members"
"""Sub-folder of the run folder holding each member's checkpoints."""


def check_ensemble_settings(members: int, model: GeoTask, ckpt_path: str | None, world_size: int) -> None:
    """Refuse an ensemble that cannot be built as asked, before anything trains.

    Raises:
        ConfigError: Fewer than one or more than :data:`MAX_ENSEMBLE` members, a backbone that
            trains, a task that cannot be an ensemble, a resumed run or several processes.
    """
    if not 1 <= members <= MAX_ENSEMBLE:
        raise ConfigError(f"--ensemble must be from 1 to {MAX_ENSEMBLE}, got {members}")
    if members == 1:
        return
    if not model.supports_ensemble:
        raise ConfigError(f"--ensemble: the {model.task_name} task cannot be an ensemble (classification, regression)")
    if model.freeze_epochs != "all":
        raise ConfigError(
            "--ensemble: the members share one backbone, so it must not train: set "
            f"--model.freeze_backbone_epochs all (it is {model.freeze_epochs!r})"
        )
    if ckpt_path is not None:
        raise ConfigError("--ensemble cannot resume a run (--ckpt_path); start it again, the members take seconds each")
    if world_size > 1:
        raise ConfigError("--ensemble trains in one process; leave out --trainer.devices / --trainer.strategy ddp")


def member_args(argv: list[str], run_dir: Path, member: int, seed: int) -> list[str]:
    """The ``geoguess fit`` arguments of member ``member`` (1-based beyond the first): its seed and its folder."""
    folder = run_dir / MEMBERS_DIR / str(member)
    return [
        *argv,
        "--seed_everything",
        str(seed + member),
        "--test_after_fit",
        "false",
        "--ensemble",
        "1",
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(folder),
        "--checkpoint.dirpath",
        str(folder / "checkpoints"),
    ]


class SharedBackbone(pl.Callback):
    """Start a member from the first member's backbone weights (the backbone every member reads).

    With ImageNet weights every member starts from the same backbone anyway; without them
    (``pretrained: false``) each seed would draw its own. Loaded when training starts, before
    the embedding cache is looked up, so the members share its features too.
    """

    def __init__(self, backbone_state: dict[str, torch.Tensor]) -> None:
        self.backbone_state = backbone_state

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Copy the weights into the member's backbone."""
        pl_module.net.backbone.load_state_dict(self.backbone_state)


def member_checkpoint_dir(run_dir: Path, member: int) -> Path:
    """Where member ``member`` (0-based) keeps its checkpoints."""
    return run_dir / MEMBERS_DIR / str(member) / "checkpoints"


def save_ensemble(task: GeoTask, path: Path) -> Path:
    """Write ``task`` as a checkpoint ``load_task``, ``predict``, ``map`` and ``serve`` read (atomically)."""
    with atomic_path(path) as partial:
        torch.save(
            {
                "state_dict": task.state_dict(),
                "hyper_parameters": dict(task.hparams),
                "epoch": 0,
                "global_step": 0,
                "pytorch-lightning_version": pl.__version__,
                "geoguess": task.checkpoint_record(),
            },
            partial,
        )
    return path


def say(text: str) -> None:
    """One line about the ensemble on stderr."""
    print(f"geoguess fit: {text}", file=sys.stderr, flush=True)


def describe(members: int, seed: int) -> str:
    """The opening line of an ensemble run."""
    return f"an ensemble of {members}: members trained one after another with seeds {seed} to {seed + members - 1}"
