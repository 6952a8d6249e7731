"""Training runs for the course: configs, run folders, training or reusing a run, its logs."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from geoguess_utils.course import workspace
from geoguess_utils.errors import ConfigError, DataError, GeoguessError
from geoguess_utils.training.run_files import CONFIG_FILE, ROOTS_FILE, RunFiles, run_files_of_checkpoint  # noqa: F401 - the notebooks read them here

# ----------------------------------------------------------------------------- training runs

REGRESSION_LR = 1e-4
"""Learning rate of the regression head (the configs are tuned for the classifier); notebook 04, section 7."""

GPU_CONFIG = "gpu_full.yaml"
CPU_CONFIG = "quick_cpu.yaml"

QUICK_OVERRIDES: dict[str, str] = {
    "--model.init_args.backbone": "efficientnet_lite0",
    "--model.init_args.pretrained": "true",
    "--model.init_args.freeze_backbone_epochs": "all",
    "--data.image_size": "64",
    "--data.batch_size": "32",
    "--data.num_workers": "0",
    "--data.loader.persistent_workers": "false",
    "--data.loader.pin_memory": "false",
    "--data.embeddings.enabled": "true",
    "--trainer.max_epochs": "12",
    "--trainer.limit_train_batches": "1.0",
    "--trainer.log_every_n_steps": "10",
}
"""What a QUICK run changes in any config, the same as notebook 04's ``QUICK = True``: the
small backbone whose ImageNet weights ship with the package, kept frozen, 64 px views, and
12 epochs that train only the head from each view's features, computed once (the embedding
cache). A minute or two on two CPU cores."""

_RUN_FILES = {
    "checkpoints",
    "metrics.csv",
    "hparams.yaml",
    CONFIG_FILE,
    ROOTS_FILE,
    "split.csv",
    "skipped_locations.csv",
}


def default_config() -> str:
    """``gpu_full.yaml`` when a CUDA GPU is visible, else ``quick_cpu.yaml``.

    Used through :func:`resolve_config` (``"auto"``) in notebooks 04 and 05, section 'Setup'.
    """
    import torch

    return GPU_CONFIG if torch.cuda.is_available() else CPU_CONFIG


def resolve_config(config: str | os.PathLike[str] | None = None, root: str | os.PathLike[str] | None = None) -> Path:
    """The YAML file of a training configuration.

    Used in notebooks 04 and 05, section 'Setup'.

    Args:
        config: ``None`` or ``"auto"`` (see :func:`default_config`), a name in
            ``configs/`` with or without ``.yaml``, or a path to a file.
        root: Project root; found with :func:`geoguess_utils.course.workspace.project_root` when ``None``.

    Raises:
        ConfigError: When the file does not exist.
    """
    project = Path(root) if root is not None else workspace.project_root()
    name = default_config() if config is None or str(config) == "auto" else str(config)
    candidates = [Path(name), project / name, project / "configs" / name, project / "configs" / f"{name}.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"no training config {name!r}: looked for {', '.join(str(c) for c in candidates)}")


def override_settings(settings: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a parsed YAML config with ``{"section.key": value}`` overrides applied.

    Notebook 04's ``SMOKE`` parameter (for tests only) shrinks a config this way before any
    cell reads it. The keys are those of ``geoguess fit``'s ``--section.key value`` overrides
    (``"data.image_size"``, ``"model.init_args.backbone"``, ``"trainer.max_epochs"``), so the
    notebook hands the same pairs to ``geoguess fit``'s parser, which refuses a misspelt one.

    Used in notebook 04, section 1 ('What a run is made of').

    Args:
        settings: The config, as ``yaml.safe_load`` reads it (left unchanged).
        overrides: Dotted keys and their new values; ``None`` or empty: an unchanged copy.

    Returns:
        The config with the overrides in place.

    Raises:
        ConfigError: A key's sections are not all sections of the config (a misspelt section).
    """
    result = copy.deepcopy(dict(settings))
    for dotted, value in (overrides or {}).items():
        *sections, key = str(dotted).split(".")
        part: Any = result
        for depth, name in enumerate(sections):
            part = part.get(name) if isinstance(part, dict) else None
            if not isinstance(part, dict):
                where = ".".join(sections[: depth + 1])
                raise ConfigError(f"override {dotted!r}: the config has no section {where!r}")
        part[key] = value
    return result


def fit_arguments(
    config: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    run_dir: str | os.PathLike[str],
    task: str = "classification",
    quick: bool = False,
    seed: int = 0,
    extra: Sequence[str] = (),
) -> list[str]:
    """Arguments of ``geoguess fit`` for a run written into exactly ``run_dir``.

    Used by :func:`train`; notebook 04 points to it in section 10 ('The same run from a terminal').

    Both loggers (TensorBoard and CSV) write into ``run_dir`` and the best checkpoint
    is always called ``best.ckpt``, so the run can be found again by its folder alone.
    The run prints one line per epoch, no progress bar and no model summary (the notebooks
    show the network themselves).

    Args:
        config: YAML config file.
        roots: Labelled dataset roots.
        run_dir: Folder of the run's logs, ``split.csv`` and ``checkpoints/``.
        task: ``"classification"`` or ``"regression"`` (the latter with :data:`REGRESSION_LR`).
        quick: Add :data:`QUICK_OVERRIDES`.
        seed: Seed of Lightning and of the train/val/test split.
        extra: More ``--key value`` overrides, applied last.

    Returns:
        The argument list (without the ``fit`` command name).
    """
    from geoguess_utils.tasks.registry import TASKS, class_path

    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if not roots:
        raise ConfigError("no dataset roots to train on")
    folder = Path(run_dir).resolve()
    loggers = [
        {
            "class_path": f"pytorch_lightning.loggers.{name}",
            "init_args": {"save_dir": str(folder.parent), "name": "", "version": folder.name},
        }
        for name in ("TensorBoardLogger", "CSVLogger")
    ]
    argv = [
        "--config",
        str(config),
        "--model.class_path",
        class_path(task),
        "--data.roots",
        json.dumps([str(Path(r).resolve()) for r in roots]),
        "--trainer.logger",
        json.dumps(loggers),
        "--checkpoint.filename",
        "best",
        "--seed_everything",
        str(int(seed)),
        "--data.split.seed",
        str(int(seed)),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    ]
    if task == "regression":
        argv += ["--model.init_args.lr", str(REGRESSION_LR)]
    if workspace.is_synthetic(roots):
        argv += ["--data.reading.expected_source_size", "null"]  # the sample's images are small, not LUMEN's 640 px
    if quick:
        for key, value in QUICK_OVERRIDES.items():
            argv += [key, value]
    return argv + list(extra)


def clear_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Delete a previous run's folder before a new run writes there.

    Used in notebook 04, section 6 ('Training the classifier').

    Raises:
        ConfigError: When the folder holds anything a training run does not write,
            so that no unrelated folder is ever deleted.
    """
    folder = Path(run_dir)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ConfigError(f"{folder} is a file, not a run folder")
    foreign = [p.name for p in folder.iterdir() if p.name not in _RUN_FILES and not p.name.startswith("events.out.")]
    if foreign:
        raise ConfigError(
            f"{folder} holds files a training run does not write ({', '.join(sorted(foreign)[:5])}); "
            "choose another run folder"
        )
    shutil.rmtree(folder)


def train(
    config: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    run_dir: str | os.PathLike[str],
    task: str = "classification",
    quick: bool = False,
    seed: int = 0,
    extra: Sequence[str] = (),
) -> RunFiles:
    """Train one task with ``geoguess fit`` (LightningCLI) in this process, then test it.

    Used by :func:`find_or_train` when notebook 05 (section 'Setup') has to train a missing run.

    A previous run in ``run_dir`` is removed first (see :func:`clear_run_dir`).

    Args:
        config: YAML config (see :func:`resolve_config`).
        roots: Labelled dataset roots.
        run_dir: Folder for this run.
        task: ``"classification"`` or ``"regression"``.
        quick: Shrink the run (see :data:`QUICK_OVERRIDES`).
        seed: Seed of training and of the split.
        extra: More ``--key value`` overrides.

    Returns:
        The run's files.

    Raises:
        GeoguessError: When training was interrupted or wrote no checkpoint.
    """
    from geoguess_utils.training import lightning_cli

    clear_run_dir(run_dir)
    argv = fit_arguments(resolve_config(config), roots, run_dir, task, quick, seed, extra)
    try:
        status = lightning_cli.run(argv)
    except SystemExit as exc:  # the argument parser refused a value; it has printed why
        raise ConfigError(
            f"geoguess fit refused the arguments (exit status {exc.code}); see the message above"
        ) from exc
    files = RunFiles(Path(run_dir).resolve())
    if status != 0:
        raise GeoguessError(f"training in {files.run_dir} was interrupted; the best checkpoint so far is kept")
    if files.checkpoint is None:
        raise GeoguessError(f"training in {files.run_dir} wrote no checkpoint")
    return files


def find_or_train(
    config: str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    run_dir: str | os.PathLike[str],
    task: str = "classification",
    quick: bool = False,
    seed: int = 0,
) -> RunFiles:
    """The finished run in ``run_dir``, or a new one trained there with :func:`train`.

    Used in notebook 05, section 'Setup'.

    Args:
        config: Config used when a run must be trained.
        roots: Labelled dataset roots.
        run_dir: Folder of the run.
        task: ``"classification"`` or ``"regression"``.
        quick: Train a QUICK run when one is needed.
        seed: Seed when one is trained.

    Returns:
        The run's files.
    """
    files = RunFiles(Path(run_dir).resolve())
    if files.complete:
        return files
    print(f"no finished {task} run in {files.run_dir}: training one now, as notebook 04 does")
    return train(config, roots, run_dir, task, quick, seed)


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Per-epoch training curves from a CSV logger file.

    Used in notebook 04, section 8 ('Training curves').

    Args:
        path: ``metrics.csv`` of a run.

    Returns:
        One row per epoch (index ``epoch``), one column per logged train/val value
        (``train/loss_epoch``, ``val/loss``, ``val/mean_km``, ...); step-level and
        test values are left out.

    Raises:
        DataError: When the file is missing, unreadable or has no epoch rows.
    """
    table = _read_metrics_csv(path)
    keep = [
        c
        for c in table.columns
        if (c.startswith("train/") or c.startswith("val/")) and not c.endswith("_step") and c != "train/loss"
    ]
    rows = table[table["epoch"].notna()]
    curves = rows.groupby(rows["epoch"].astype(int))[keep].first().dropna(how="all")
    if curves.empty:
        raise DataError(f"{path} holds no per-epoch values (did training finish an epoch?)")
    return curves


def logged_test_results(path: str | os.PathLike[str]) -> dict[str, float]:
    """The ``test/...`` values a run logged after training (empty when it did not test).

    Used in notebook 04, section 8 ('Training curves'), and notebook 05, section 2.

    Args:
        path: ``metrics.csv`` of a run.

    Returns:
        ``{name without the "test/" prefix: value}``.
    """
    table = _read_metrics_csv(path)
    out = {}
    for column in table.columns:
        if column.startswith("test/"):
            values = table[column].dropna()
            if len(values):
                out[column.removeprefix("test/")] = float(values.iloc[-1])
    return out


def _read_metrics_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"no training log at {file}")
    try:
        table = pd.read_csv(file)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{file}: cannot read the training log: {exc}") from exc
    if "epoch" not in table.columns:
        raise DataError(f"{file} is not a CSV logger file (no 'epoch' column)")
    return table
