"""Helpers shared by the training and prediction tests: tiny datasets, CLI arguments, callbacks."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[1]
QUICK_CONFIG = REPO / "configs" / "quick_cpu.yaml"

ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment for a training process a test starts: one torch thread (see ``conftest.one_torch_thread``)."""

ONE_BATCH = (
    "--trainer.limit_train_batches",
    "1",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.limit_test_batches",
    "1",
)
"""``geoguess fit`` overrides for a run that proves wiring: one batch per epoch of each stage."""


def make_dataset(root: Path, n_locations: int, size: int = 32, seed: int = 0) -> Path:
    """Write a synthetic dataset in the LUMEN layout and return its root."""
    from geoguess_utils.datasets.synthetic import write

    write.generate_dataset(root, n_locations, size=size, seed=seed, workers=1)
    return root


COUNTY_LOSS_TASKS = ("ClassificationTask", "HybridTask")
"""Tasks that take the quick config's ``county_loss_weight`` (the others refuse the option)."""


def fit_args(data_root: Path, work: Path, *extra: str, epochs: int = 2, task: str = "ClassificationTask") -> list[str]:
    """Arguments of ``geoguess fit`` for a tiny untrained-backbone run writing under ``work``.

    The quick config's model on square cells (``--data.cells.spacing_deg`` then changes the
    classes), without its county loss, which needs county cells.
    """
    return [
        "--config",
        str(QUICK_CONFIG),
        "--model.class_path",
        _class_path(task),
        "--model.init_args.pretrained",
        "false",
        *(["--model.init_args.freeze_backbone_epochs", "1"] if task != "KNNTask" else []),  # kNN never trains it
        "--data.roots",
        f"[{data_root}]",
        "--data.image_size",
        "32",
        "--data.batch_size",
        "8",
        "--data.num_workers",
        "0",
        "--data.cells.scheme",
        "square",
        *(["--model.init_args.county_loss_weight", "0"] if task in COUNTY_LOSS_TASKS else []),
        "--data.cells.spacing_deg",
        "0.5",
        "--data.cache.dir",
        str(work / "cache"),
        "--trainer.max_epochs",
        str(epochs),
        "--trainer.limit_train_batches",
        "3",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        *extra,
    ]


def fit_in(work: Path, data_root: Path, epochs: int = 1):
    """Train a tiny run of :func:`fit_args` through the CLI's objects with ``work`` as the working folder.

    Returns:
        ``(cli, path of last.ckpt)``.
    """
    import os

    from geoguess_utils.training import lightning_cli

    old = Path.cwd()
    os.chdir(work)
    try:
        run = lightning_cli.GeoguessCLI(args=fit_args(data_root, work, "--trainer.logger", "false", epochs=epochs))
        lightning_cli.fit(run.trainer, run.model, run.datamodule)
    finally:
        os.chdir(old)
    return run, Path(run.trainer.checkpoint_callback.last_model_path)


class InterruptAtBatch(pl.Callback):
    """Raise KeyboardInterrupt (as Ctrl+C does) at one training batch of one epoch."""

    def __init__(self, epoch: int = 1, batch: int = 1) -> None:
        super().__init__()
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


class ParameterWatch(pl.Callback):
    """Record, per epoch, how far backbone and head moved, and the backbone's rate at each optimiser step."""

    def __init__(self) -> None:
        super().__init__()
        self.moved: list[tuple[float, float]] = []
        self.backbone_lrs: list[list[float]] = []
        self._start: dict[str, torch.Tensor] = {}

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = {k: v.detach().clone() for k, v in pl_module.net.named_parameters()}
        self.backbone_lrs.append([])

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        groups = [g for g in optimizer.param_groups if g.get("name") == "backbone"]
        self.backbone_lrs[-1].append(groups[0]["lr"])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        def change(prefix: str, inside: bool) -> float:
            total = 0.0
            for name, value in pl_module.net.named_parameters():
                if name.startswith(prefix) == inside:
                    total += float((value.detach() - self._start[name]).abs().sum())
            return total

        self.moved.append((change("backbone.", True), change("backbone.", False)))


TINY_FEATURES = 8
"""Feature size of :func:`tiny_backbone`."""


def tiny_backbone(name: str = "efficientnet_lite0", pretrained: bool = True):
    """A two-layer stand-in for a real backbone, keeping the requested name (checkpoints record it).

    For tests of plumbing (shapes, freezing, checkpoints, resuming) where what the real
    network has learnt does not matter; ``pretrained`` is accepted and ignored.
    """
    from torch import nn

    from geoguess_utils.models.backbones import Backbone

    body = nn.Sequential(
        nn.Conv2d(3, TINY_FEATURES, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
    )
    return Backbone(name, body, TINY_FEATURES)


def use_tiny_backbone(monkeypatch) -> None:
    """Make every network built in this test use :func:`tiny_backbone` (in this process only)."""
    from geoguess_utils.models import backbones, multiview

    monkeypatch.setattr(backbones, "build_backbone", tiny_backbone)
    monkeypatch.setattr(multiview, "build_backbone", tiny_backbone, raising=False)


def _class_path(class_name: str) -> str:
    """The class path ``geoguess fit`` takes for a task class name such as ``"KNNTask"``."""
    from geoguess_utils.tasks.registry import TASKS, class_path

    return next(class_path(name) for name, cls in TASKS.items() if cls.__name__ == class_name)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``geoguess`` in this process with stdout and stderr going to buffers (as into a pipe).

    Returns:
        ``(exit status, stdout, stderr)``.
    """
    import contextlib
    import io

    from geoguess_utils import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()
