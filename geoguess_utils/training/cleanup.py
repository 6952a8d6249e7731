"""Leave no empty ``runs/.../version_N`` folder behind when ``geoguess fit`` is refused before training.

Lightning creates each logger's folder (and writes an event file and the config into
it) before the data module is set up, so a run refused for bad data or a foreign
checkpoint would otherwise leave a new, empty-looking version folder every time.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytorch_lightning as pl

BOOKKEEPING = ("events.out.tfevents.*", "hparams.yaml", "config.yaml", "metrics.csv", "split.csv", "data_roots.txt")
"""Files a logger or the CLI writes into a run folder before any training step."""


def new_log_dirs(trainer: pl.Trainer) -> dict[Path, Path]:
    """The loggers' folders this run is about to create, each with its first ancestor that exists now.

    Call before ``trainer.fit``; reading ``log_dir`` only computes the path.

    Returns:
        Folder that does not exist yet -> the nearest ancestor that does (cleanup stops there).
    """
    planned: dict[Path, Path] = {}
    for logger in trainer.loggers:
        log_dir = getattr(logger, "log_dir", None)
        if not log_dir:
            continue
        folder = Path(log_dir).absolute()
        if folder.exists():
            continue
        ancestor = folder.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        planned[folder] = ancestor
    return planned


def remove_unused_log_dirs(planned: dict[Path, Path]) -> list[Path]:
    """Remove the folders of :func:`new_log_dirs` when they hold only bookkeeping files.

    A folder holding anything else (a checkpoint, a file the user put there) is kept
    whole. Empty parents created along with the folder are removed too, up to the
    ancestor that existed before.

    Returns:
        The folders removed.
    """
    removed = []
    for folder, ancestor in planned.items():
        if not folder.is_dir() or folder.is_symlink():
            continue
        files = [p for p in folder.rglob("*")]
        if any(p.is_dir() or not any(p.match(pattern) for pattern in BOOKKEEPING) for p in files):
            continue
        shutil.rmtree(folder)
        removed.append(folder)
        parent = folder.parent
        while parent != ancestor and parent.is_relative_to(ancestor) and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return removed
