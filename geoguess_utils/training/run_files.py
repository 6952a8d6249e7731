"""The files of one training run folder: checkpoints, logs, the split and the config with its data roots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from geoguess_utils.errors import ConfigError

CONFIG_FILE = "config.yaml"
"""The resolved config ``geoguess fit`` saves in the run folder (LightningCLI's copy of every setting)."""

ROOTS_FILE = "data_roots.txt"
"""The absolute path of every dataset root of the run, one per line (written by ``geoguess fit``)."""


def save_data_roots(roots: list[str] | list[Path], run_dir: Path) -> Path:
    """Write the absolute paths of ``roots`` to ``run_dir/data_roots.txt`` (atomically); return that path."""
    from geoguess_utils.io import atomic_write_text

    lines = [str(Path(root).expanduser().resolve()) for root in roots]
    return atomic_write_text(run_dir / ROOTS_FILE, "".join(f"{line}\n" for line in lines))


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
    def config_yaml(self) -> Path:
        """The run's resolved config, as ``geoguess fit`` saved it (``data.roots`` names its dataset roots)."""
        return self.run_dir / CONFIG_FILE

    def data_roots(self) -> list[Path]:
        """The dataset roots the run was trained on.

        ``data_roots.txt`` (absolute paths, written by ``geoguess fit``) is read when the run
        has one. Runs without it have only ``config.yaml``'s ``data.roots``, as typed: a
        relative root is then looked up from the run folder and the folders above it,
        nearest first (``geoguess fit`` writes ``runs/<name>/version_<N>/`` below the folder
        it ran in), then from the current folder.

        Returns:
            The roots, in the config's order, each an existing folder.

        Raises:
            ConfigError: When the config is missing or unreadable, names no roots, or names
                a root that is not a folder here (the message names the file and the root).
        """
        import yaml

        recorded = self.run_dir / ROOTS_FILE
        if recorded.is_file():
            roots = [Path(line) for line in recorded.read_text(encoding="utf-8").splitlines() if line.strip()]
            missing = [str(root) for root in roots if not root.is_dir()]
            if missing:
                raise ConfigError(f"{recorded} names the dataset root {missing[0]}, which is not a folder here")
            if roots:
                return roots
        path = self.config_yaml
        if not path.is_file():
            raise ConfigError(f"{path} does not exist, so the run folder does not say which dataset roots it used")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path} is not a readable YAML file: {' '.join(str(exc).split())}") from None
        data = config.get("data") if isinstance(config, dict) else None
        roots = data.get("roots") if isinstance(data, dict) else None
        if isinstance(roots, str):
            roots = [roots]
        if not roots or not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
            raise ConfigError(f"{path} names no dataset roots (data.roots is {roots!r})")
        return [self._find_root(text, path) for text in roots]

    def _find_root(self, text: str, config: Path) -> Path:
        root = Path(text).expanduser()
        above = [self.run_dir, *self.run_dir.parents]  # the run folder itself when fit wrote no logger folders
        candidates = [root] if root.is_absolute() else [*(p / root for p in above), Path.cwd() / root]
        for candidate in candidates:
            if candidate.is_dir():
                return candidate
        where = "" if root.is_absolute() else f" (looked in {self.run_dir}, the folders above it and {Path.cwd()})"
        raise ConfigError(f"{config} names the dataset root {text!r}, which is not a folder here{where}")

    @property
    def complete(self) -> bool:
        """Whether the run left a checkpoint and its logs."""
        return self.checkpoint is not None and self.metrics_csv.is_file() and self.split_csv.is_file()


def run_files_of_checkpoint(checkpoint: str | os.PathLike[str]) -> RunFiles:
    """The run folder a checkpoint was written into (``<run_dir>/checkpoints/<name>.ckpt``)."""
    return RunFiles(Path(checkpoint).resolve().parent.parent)


def run_files_of(path: str | os.PathLike[str]) -> RunFiles:
    """The run of a run folder, or of a checkpoint file inside one.

    Args:
        path: A run folder (``runs/<name>/version_<N>``) or a checkpoint in its ``checkpoints/``.

    Raises:
        ConfigError: When ``path`` is neither a folder nor a file.
    """
    given = Path(path)
    if given.is_dir():
        return RunFiles(given.resolve())
    if given.is_file():
        return run_files_of_checkpoint(given)
    raise ConfigError(f"{given} is neither a run folder nor a checkpoint file")
