"""The files of one training run folder: checkpoints, logs and the split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFiles:
    """The files of one training run folder (``<run_dir>/checkpoints/best.ckpt`` and the logs)."""

    run_dir: Path

    @property
    def best_checkpoint(self) -> Path | None:
        """The checkpoint with the best validation mean km, or ``None``."""
        folder = self.run_dir / "checkpoints"
        if (folder / "best.ckpt").is_file():
            return folder / "best.ckpt"
        found = sorted(folder.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
        return found[-1] if found else None

    @property
    def last_checkpoint(self) -> Path | None:
        """The checkpoint of the last finished epoch (to resume from), or ``None``."""
        path = self.run_dir / "checkpoints" / "last.ckpt"
        return path if path.is_file() else None

    @property
    def checkpoint(self) -> Path | None:
        """The best checkpoint, else the last one, else ``None``."""
        return self.best_checkpoint or self.last_checkpoint

    @property
    def metrics_csv(self) -> Path:
        """The CSV logger's file: one row per logging step and per epoch."""
        return self.run_dir / "metrics.csv"

    @property
    def split_csv(self) -> Path:
        """Which location went to train, val and test in this run."""
        return self.run_dir / "split.csv"

    @property
    def complete(self) -> bool:
        """Whether the run left a checkpoint and its logs."""
        return self.checkpoint is not None and self.metrics_csv.is_file() and self.split_csv.is_file()


def run_files_of_checkpoint(checkpoint: str | os.PathLike[str]) -> RunFiles:
    """The run folder a checkpoint was written into (``<run_dir>/checkpoints/<name>.ckpt``)."""
    return RunFiles(Path(checkpoint).resolve().parent.parent)
