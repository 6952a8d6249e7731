"""``geoguess fit``: train a task with LightningCLI, then test its best checkpoint."""

from __future__ import annotations

import os
import signal
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from geoguess_utils.checkpoints.files import AtomicCheckpointIO, check_finite_weights, load_checkpoint
from geoguess_utils.checkpoints.record import read_record
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.errors import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    CheckpointError,
    ConfigError,
    DataError,
    GeoguessError,
)
from geoguess_utils.evaluation import MEAN_NAME
from geoguess_utils.quiet import quiet_dependencies
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.ensemble import assemble_ensemble
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.training import ensemble_fit, fit_guidance
from geoguess_utils.training.callbacks import (
    CachedPhaseThreads,
    EpochLine,
    RunCheckpoint,
    SaveSplitCallback,
    TaskDataLink,
)
from geoguess_utils.training.cleanup import new_log_dirs, remove_unused_log_dirs
from geoguess_utils.training.moved_keys import check_moved_keys
from geoguess_utils.training.resume import PlateauCatchUp, StepCheckpoint, StepSeed

MONITOR = f"val/{MEAN_NAME}"
"""Metric that selects the best checkpoint and stops training early (lower is better)."""

INTERRUPTED_EXIT_CODE = EXIT_INTERRUPTED


class GeoguessCLI(LightningCLI):
    """LightningCLI for geoguess tasks and the GeoDataModule, with checkpointing defaults."""

    def __init__(self, args: list[str] | None = None, epoch_lines: bool = False, **kwargs: Any) -> None:
        """Parse ``args`` (a config and overrides) and build trainer, model and data; fit nothing yet.

        Args:
            args: The arguments after ``geoguess fit``.
            epoch_lines: Add an :class:`~geoguess_utils.training.callbacks.EpochLine`
                callback (one summary line per epoch, for logs and notebooks).
            **kwargs: Passed to ``LightningCLI``.
        """
        self._epoch_lines = epoch_lines
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault(
            "parser_kwargs",
            {
                "prog": "geoguess fit",
                "description": "Train a geoguess model.",
                "epilog": EXIT_CODES_HELP,
                "allow_abbrev": False,  # --trainer.max_epoch must not silently mean --trainer.max_epochs
                "exit_on_error": False,  # errors come back to parse_arguments, which words them
            },
        )
        with warnings.catch_warnings():
            # ``geoguess fit`` hands over its own argv; that is intended, not a mix-up
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            super().__init__(GeoTask, GeoDataModule, subclass_mode_model=True, run=False, args=args, **kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse as LightningCLI does; a bad option becomes a ConfigError whose first line is the problem.

        Raises:
            ConfigError: An unknown or malformed option, naming the closest valid options.
        """
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as exc:
            raise ConfigError(fit_guidance.bad_option_message(str(exc), parser._option_string_actions)) from None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add checkpoint, early-stopping and learning-rate callbacks, resume and test switches."""
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": MONITOR,
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best",  # checkpoints/best.ckpt: one name to point predict and map at
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {"early_stopping.monitor": MONITOR, "early_stopping.mode": "min", "early_stopping.patience": 5}
        )
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.add_lightning_class_args(SaveSplitCallback, "save_split")
        parser.add_lightning_class_args(StepCheckpoint, "step_checkpoint")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume training from this checkpoint")
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="test the best checkpoint once training ends"
        )
        parser.add_argument(
            "--calibrate_after_fit",
            type=bool,
            default=True,
            help="fit the best checkpoint's calibration (temperature, search regions) on the validation split once "
            "training ends (geoguess calibrate does it later)",
        )
        parser.add_argument(
            "--ensemble",
            type=int,
            default=1,
            help="train this many members one after another (seeds seed_everything, +1, ...) and keep them as one "
            "model that averages their probabilities (needs --model.freeze_backbone_epochs all)",
        )

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Build the trainer, then write checkpoints atomically and keep each run's logs in one folder.

        Raises:
            ConfigError: The config asks for a GPU backend this machine does not have.
        """
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as exc:
            if fit_guidance.is_no_gpu_error(exc):
                raise ConfigError(fit_guidance.no_gpu_message(self._config_files())) from None
            raise
        _use_atomic_checkpoints(trainer)
        _share_log_dir(trainer)
        _drop_lr_monitor_without_logger(trainer)
        _allow_an_idle_backbone_under_ddp(trainer, self.datamodule)
        for kind in (TaskDataLink, StepSeed, PlateauCatchUp, CachedPhaseThreads):  # data link; resumption; threads
            if not any(isinstance(cb, kind) for cb in trainer.callbacks):
                trainer.callbacks.append(kind())
        if self._epoch_lines and not any(isinstance(cb, EpochLine) for cb in trainer.callbacks):
            trainer.callbacks.append(EpochLine())
        return trainer

    def _config_files(self) -> list[str]:
        return [str(path) for path in (self.config.get("config") or []) if path is not None]


def _allow_an_idle_backbone_under_ddp(trainer: pl.Trainer, datamodule: Any) -> None:
    """Let DDP accept steps in which the backbone takes no part (training from cached features).

    While the frozen phase reads the embedding cache, the backbone's parameters produce no
    gradient; DDP refuses such steps unless it looks for unused parameters.
    """
    from pytorch_lightning.strategies import DDPStrategy

    settings = getattr(datamodule, "embeddings", None)
    if settings is not None and settings.enabled and isinstance(trainer.strategy, DDPStrategy):
        trainer.strategy._ddp_kwargs.setdefault("find_unused_parameters", True)


def _use_atomic_checkpoints(trainer: pl.Trainer) -> None:
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def _share_log_dir(trainer: pl.Trainer) -> None:
    """Give CSV loggers the version of the TensorBoard logger writing to the same folder.

    Otherwise each picks the next free ``version_N`` on its own and a run's metrics.csv
    lands in another folder than its event files and checkpoints.
    """
    loggers = list(trainer.loggers)
    board = next((lg for lg in loggers if isinstance(lg, TensorBoardLogger)), None)
    if board is None:
        return
    for i, logger in enumerate(loggers):
        same_place = isinstance(logger, CSVLogger) and (logger.save_dir, logger.name) == (board.save_dir, board.name)
        if same_place and logger.version != board.version:
            loggers[i] = CSVLogger(save_dir=logger.save_dir, name=logger.name, version=board.version)
    trainer.loggers = loggers


def _drop_lr_monitor_without_logger(trainer: pl.Trainer) -> None:
    if not trainer.loggers:
        trainer.callbacks = [cb for cb in trainer.callbacks if not isinstance(cb, LearningRateMonitor)]


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """Path of the best checkpoint so far, else the last one, else ``None`` (no checkpoint written)."""
    path, _ = describe_checkpoint(trainer)
    return path


def describe_checkpoint(trainer: pl.Trainer) -> tuple[str | None, str]:
    """The checkpoint to test or report, and what it is.

    Returns:
        ``(path, "best")`` for the checkpoint with the best validation score so far,
        ``(path, "last")`` for ``last.ckpt`` when no checkpoint was ever validated
        (training stopped before the first validation), ``(None, "none")`` when no
        checkpoint was written.
    """
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint):
        return None, "none"
    for path, kind in ((callback.best_model_path, "best"), (callback.last_model_path, "last")):
        if path and Path(path).is_file():
            return path, kind
    return None, "none"


def check_resume_checkpoint(model: GeoTask, ckpt_path: str | os.PathLike[str]) -> None:
    """Check a checkpoint before resuming from it.

    The file is read with ``weights_only=True`` (tensors memory-mapped, so this is cheap),
    which refuses any pickled code; it must be a geoguess checkpoint of the same task
    and backbone. A different class table is refused when the model loads it.

    Raises:
        CheckpointError: Unsafe, unreadable, foreign or mismatching checkpoint; the
            message says what differs.
    """
    data = load_checkpoint(ckpt_path, mmap=True)
    record = read_record(data, str(ckpt_path), check_fields=False)  # name a different model first
    differences = [
        f"{name} {record[name]!r} in the checkpoint vs {wanted!r} configured"
        for name, wanted in (("task", model.task_name), ("backbone", str(model.hparams.backbone)))
        if record[name] != wanted
    ]
    if differences:
        raise CheckpointError(f"cannot resume from {ckpt_path}: {'; '.join(differences)}")
    read_record(data, str(ckpt_path))
    check_finite_weights(data["state_dict"], f"cannot resume from {ckpt_path}: it")


def fit(trainer: pl.Trainer, model: GeoTask, datamodule: GeoDataModule, ckpt_path: str | None = None) -> bool:
    """Train; return ``True`` when Ctrl+C stopped training early (Lightning shuts down cleanly).

    Raises:
        CheckpointError: ``ckpt_path`` is unsafe or belongs to another model (see :func:`check_resume_checkpoint`).
    """
    if ckpt_path is not None:
        check_resume_checkpoint(model, ckpt_path)
    fresh_dirs = new_log_dirs(trainer)
    try:
        with warnings.catch_warnings():
            # the CSV logger shares the TensorBoard logger's new folder on purpose (see _share_log_dir)
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        if not trainer.interrupted:
            raise
    except DataError as exc:
        if trainer.global_step == 0:
            remove_unused_log_dirs(fresh_dirs)
        short, _ = fit_guidance.shorten_dataset_error(str(exc), trainer.default_root_dir)
        if short == str(exc):
            raise
        raise DataError(short) from None
    except GeoguessError:
        if trainer.global_step == 0:  # refused before training: no empty version_N folder stays behind
            remove_unused_log_dirs(fresh_dirs)
        raise
    if trainer.interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores Ctrl+C after the first
        return True
    return False


def test_best(trainer: pl.Trainer, model: GeoTask, datamodule: GeoDataModule) -> list[dict[str, float]]:
    """Test the best checkpoint (or the current weights when none was written)."""
    path = best_checkpoint(trainer)
    if path is None:
        rank_zero_info("no checkpoint was written; testing the current weights")
    else:
        rank_zero_info(f"testing checkpoint {path}")
    return trainer.test(model, datamodule=datamodule, ckpt_path=path, weights_only=True)


def run(argv: list[str]) -> int:
    """Entry point of ``geoguess fit``.

    Args:
        argv: Arguments after ``fit``: ``--config FILE`` and any ``--section.key value`` override.

    Returns:
        0 after a complete run (or after printing help), 130 when training was
        interrupted with Ctrl+C.

    Raises:
        ConfigError: A config file that does not exist, an unknown option (with the
            closest valid names), or a GPU config on a machine without CUDA.
        DataError: Invalid data; thousands of problems are shortened to a count, the
            first few and the setting to change (see :mod:`geoguess_utils.training.fit_guidance`).
    """
    if fit_guidance.HELP_SHORT_FLAG in argv:
        print(fit_guidance.help_summary() + fit_guidance.SHORT_USAGE)
        return 0
    if "--help" in argv or "-h" in argv:
        print(fit_guidance.help_summary(full_help_follows=True))
    else:
        missing = fit_guidance.missing_config_files(argv)
        if missing:
            raise ConfigError(f"config file {missing[0]} does not exist (try --config {fit_guidance.QUICK_CONFIG})")
    check_moved_keys(argv)
    with quiet_dependencies():
        return _run(argv)


def _run(argv: list[str]) -> int:
    cli = GeoguessCLI(args=argv, epoch_lines=not sys.stderr.isatty())  # a terminal has the progress bar
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    members = int(cli.config.get("ensemble") or 1)
    ensemble_fit.check_ensemble_settings(members, model, cli.config.get("ckpt_path"), trainer.world_size)
    if members > 1:
        return _run_ensemble(cli, argv, members)
    interrupted = fit(trainer, model, datamodule, cli.config.get("ckpt_path"))
    path, kind = describe_checkpoint(trainer)
    if interrupted:
        print("training interrupted; the best checkpoint so far is kept", file=sys.stderr)
    if cli.config.get("test_after_fit"):
        if interrupted and trainer.world_size > 1:
            print("not testing after an interrupted multi-process run; use geoguess predict/evaluate", file=sys.stderr)
        elif interrupted and kind != "best":
            print(
                "not testing: training was interrupted before any validation, so no checkpoint was validated "
                "(resume with --ckpt_path to finish training)",
                file=sys.stderr,
            )
        else:
            if interrupted:
                print(f"testing the best validated checkpoint of the interrupted run: {path}", file=sys.stderr)
            test_best(trainer, model, datamodule)
    if path is not None and kind == "best" and not interrupted and trainer.is_global_zero:
        if trainer.world_size > 1:  # its processes still hold the process group: calibrate afterwards, in one
            print(f"not calibrating a multi-process run here; run: geoguess calibrate --ckpt {path}", file=sys.stderr)
        else:
            _calibrate(cli, path)
    if path is not None and trainer.is_global_zero:
        if kind == "best":
            print(f"best checkpoint: {path}", file=sys.stderr)
        else:
            print(f"last checkpoint (never validated; no best checkpoint yet): {path}", file=sys.stderr)
    return INTERRUPTED_EXIT_CODE if interrupted else 0


def _calibrate(cli: GeoguessCLI, checkpoint: str | Path) -> None:
    """Fit the calibration of the checkpoint the run ended with on its validation split (``--calibrate_after_fit``)."""
    if not cli.config.get("calibrate_after_fit", True):
        return
    from geoguess_utils.data.splits import SPLIT_FILE
    from geoguess_utils.inference.calibrate import calibrate_after_fit
    from geoguess_utils.training.run_files import run_files_of_checkpoint

    trainer, datamodule = cli.trainer, cli.datamodule
    run_dir = getattr(datamodule, "run_dir", None) or trainer.log_dir or trainer.default_root_dir
    split_csv = Path(run_dir) / SPLIT_FILE
    if not split_csv.is_file():
        split_csv = run_files_of_checkpoint(checkpoint).split_csv
    device = trainer.strategy.root_device
    calibrate_after_fit(
        checkpoint,
        datamodule.roots,
        split_csv,
        batch_size=datamodule.batch_size,
        device="cpu" if device.type == "cpu" else f"cuda:{device.index or 0}",
        cache_dir=datamodule.cache.dir,
        lenient=datamodule.reading.lenient,
    )


def _run_ensemble(cli: GeoguessCLI, argv: list[str], members: int) -> int:
    """Train ``members`` runs one after another, assemble them into one checkpoint and test it."""
    trainer = cli.trainer
    run_dir = Path(trainer.log_dir or trainer.default_root_dir)
    seed = int(cli.config.get("seed_everything") or 0)
    ensemble_fit.say(ensemble_fit.describe(members, seed))
    if isinstance(trainer.checkpoint_callback, ModelCheckpoint):
        trainer.checkpoint_callback.dirpath = str(ensemble_fit.member_checkpoint_dir(run_dir, 0))
    trained: list[GeoTask] = []  # each member's best checkpoint, read once with the safe loader
    shared: dict[str, Any] = {}
    for member in range(members):
        if member == 0:
            current = cli
        else:
            args = ensemble_fit.member_args(argv, run_dir, member, seed)
            current = GeoguessCLI(args=args, epoch_lines=not sys.stderr.isatty())
            current.trainer.callbacks.append(ensemble_fit.SharedBackbone(shared))
        ensemble_fit.say(f"member {member + 1} of {members} (seed {seed + member})")
        if fit(current.trainer, current.model, current.datamodule):
            print(f"training interrupted at member {member + 1} of {members}; no ensemble written", file=sys.stderr)
            return INTERRUPTED_EXIT_CODE
        path, kind = describe_checkpoint(current.trainer)
        if path is None or kind != "best":
            raise ConfigError(f"ensemble member {member + 1} wrote no validated checkpoint to join the ensemble")
        trained.append(load_task(path))
        if member == 0:
            shared = trained[0].net.backbone.state_dict()
    ensemble = assemble_ensemble(trained)
    out = ensemble_fit.save_ensemble(ensemble, run_dir / "checkpoints" / "best.ckpt")
    if cli.config.get("test_after_fit"):
        rank_zero_info(f"testing the ensemble of {members}: {out}")
        trainer.test(ensemble, datamodule=cli.datamodule)
    _calibrate(cli, out)
    where = run_dir / ensemble_fit.MEMBERS_DIR
    print(f"best checkpoint: {out} (an ensemble of {members}; members in {where})", file=sys.stderr)
    return 0
