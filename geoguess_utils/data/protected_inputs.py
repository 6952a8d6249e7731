"""Checks that a command's output files never land on its own inputs.

A careless ``--out`` can point at the dataset being read: ``predict --out ROOT/data.csv``
would replace the ground truth with the predictions (after which ``evaluate`` reports
0 km and ``validate`` finds nothing wrong), and ``map --out`` over a view JPEG would turn
the photo into HTML. Commands call :func:`refuse_outputs_on_inputs` before doing any
work, so nothing is computed or written when the answer is no.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from geoguess_utils.data.layout import CSV_NAME, IMAGE_DIR_NAMES
from geoguess_utils.errors import ConfigError

PathLike = str | os.PathLike[str]


def _real(path: PathLike) -> Path:
    """``path`` made absolute with every symbolic link followed (it need not exist)."""
    return Path(os.path.realpath(path))


def dataset_inputs(root: PathLike) -> list[tuple[Path, str, bool]]:
    """The parts of a dataset root that no output may overwrite.

    Args:
        root: A dataset root (it need not be valid; missing parts are still guarded).

    Returns:
        ``(real path, description, is_folder)`` for the root's ``data.csv`` and each of
        its possible image folders.
    """
    parts = [(_real(Path(root) / CSV_NAME), f"the {CSV_NAME} of input dataset {root}", False)]
    for name in IMAGE_DIR_NAMES:
        parts.append((_real(Path(root) / name), f"the image folder {Path(root) / name} of input dataset {root}", True))
    return parts


def refuse_outputs_on_inputs(
    outputs: Mapping[str, PathLike | None],
    roots: Iterable[PathLike] = (),
    files: Mapping[str, PathLike | None] | None = None,
) -> None:
    """Refuse any output path that would overwrite a dataset or another input file.

    Paths are compared after following symbolic links, so a link to ``data.csv`` is
    caught as well as the file itself.

    Args:
        outputs: Option name (e.g. ``"--out"``) -> path the command will write; ``None`` skipped.
        roots: Input dataset roots: neither their ``data.csv`` nor anything inside their
            image folder may be written.
        files: Option name -> other input file (a checkpoint, a split.csv, a predictions
            CSV) that must not be overwritten either; ``None`` skipped.

    Raises:
        ConfigError: Naming the output option, its path and the input it would destroy.
    """
    guarded: list[tuple[Path, str, bool]] = []
    for root in roots:
        guarded += dataset_inputs(root)
    for option, path in (files or {}).items():
        if path is not None:
            guarded.append((_real(path), f"the input file {path} ({option})", False))
    for option, path in outputs.items():
        if path is None:
            continue
        real = _real(path)
        for protected, what, is_folder in guarded:
            if real == protected or (is_folder and real.is_relative_to(protected)):
                verb = "lies inside" if real != protected and is_folder else "would overwrite"
                raise ConfigError(
                    f"refusing {option} {path}: it {verb} {what} ({protected}); choose an output path outside "
                    "the inputs"
                )
