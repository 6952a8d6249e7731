"""Where the course finds its project folder, its figures and its data.

The notebooks run with their own folder (``notebooks/``) as the working directory, the
command line runs from anywhere inside the project; both find the project root by
walking up to ``pyproject.toml``. Data comes from ``GEOGUESS_DATA_DIR`` when it is set
(one or more LUMEN roots) and otherwise from the synthetic sample under ``data/``,
which is generated on first use.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from geoguess_utils.data.provenance import SYNTHETIC_SOURCE, data_kind, is_synthetic  # noqa: F401 - the notebooks read them here
from geoguess_utils.errors import DataError

DATA_DIR_ENV = "GEOGUESS_DATA_DIR"
"""Environment variable naming the dataset roots, separated by ``os.pathsep``."""

SAMPLE_SUBDIR = Path("data") / "synthetic"
"""Where the synthetic sample lives, relative to the project root."""

GENERATED_SUBDIR = "generated"
"""Sub-folder of ``figures/`` that the notebooks write into (ignored by git)."""

SAMPLE_LOCATIONS = 2000
SAMPLE_SIZE_PX = 96
SAMPLE_SEED = 0
"""Settings of the default synthetic sample (the same as ``make demo``); notebook 01, section 5, draws with them."""


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds a ``pyproject.toml``.

    Used in notebooks 04 and 05, section 'Setup', and by the other functions here.

    Args:
        start: Where to begin the search; the current working directory by default.

    Returns:
        The project root, or the resolved ``start`` itself when no folder above it
        holds a ``pyproject.toml``.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def figures_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where the notebooks write their figures: ``figures/generated/`` (created when missing).

    Used in the section 'Setup' of every notebook.

    That folder is not in git, so running a notebook never changes a tracked file. The
    copies the README shows live one level up, in :func:`published_figures_dir`, and are
    refreshed on purpose with ``make figures`` (see :mod:`geoguess_utils.course.figures`).

    Args:
        root: Project root; found with :func:`project_root` when ``None``.
    """
    path = published_figures_dir(root) / GENERATED_SUBDIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def published_figures_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The tracked ``figures/`` folder whose images the README shows (created when missing).

    Used by :func:`geoguess_utils.course.figures.publish_figures` (``make figures``); no notebook
    calls it.

    Args:
        root: Project root; found with :func:`project_root` when ``None``.
    """
    folder = Path(root) if root is not None else project_root()
    path = folder / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_name(
    roots: Sequence[str | os.PathLike[str]], base: str = "course", root: str | os.PathLike[str] | None = None
) -> str:
    """Name of the course's run folder under ``runs/`` for these dataset roots.

    Used in notebooks 04 and 05, section 'Setup'.

    The default synthetic sample gets ``base`` itself (``runs/course``); any other set of
    roots gets ``base``, the first root's folder name and a short digest of all resolved
    paths, so training on another dataset never replaces (or silently reuses) the run
    made on the sample.

    Args:
        roots: Dataset roots, as :func:`data_roots` returns them.
        base: Leading part of the name.
        root: Project root (to recognise the default sample); found with
            :func:`project_root` when ``None``.

    Returns:
        A folder name made of letters, digits, ``-`` and ``_``.
    """
    resolved = [Path(r).expanduser().resolve() for r in roots]
    if resolved == [sample_dir(root).resolve()]:
        return base
    digest = hashlib.sha1("\n".join(str(r) for r in resolved).encode("utf-8")).hexdigest()[:8]
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", resolved[0].name if resolved else "none").strip("-") or "data"
    return f"{base}-{label[:40]}-{digest}"


def sample_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the default synthetic sample (it may not exist yet).

    Used by :func:`data_roots` and :func:`run_name`.

    Args:
        root: Project root; found with :func:`project_root` when ``None``.
    """
    return (Path(root) if root is not None else project_root()) / SAMPLE_SUBDIR


def make_sample(
    out: str | os.PathLike[str],
    locations: int = SAMPLE_LOCATIONS,
    size_px: int = SAMPLE_SIZE_PX,
    seed: int = SAMPLE_SEED,
) -> Path:
    """Generate the synthetic sample into ``out`` unless a complete one is already there.

    Used by :func:`data_roots` when the sample is missing (the section 'Setup' of every notebook).

    The generator runs as ``geoguess make-sample`` in a child process and writes into a
    temporary folder next to ``out``, which is renamed onto ``out`` only when the
    generator succeeded; an interrupted run therefore never leaves a half-written
    sample behind.

    Args:
        out: Destination folder; the sample is complete when ``out/data.csv`` exists.
        locations: Number of locations.
        size_px: Side of each square image, pixels.
        seed: Seed of the generator (same seed, same bytes).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: When the generator fails (its own message is included), or when
            ``out`` exists without a ``data.csv`` (an unknown folder is never replaced).
    """
    target = Path(out)
    if (target / "data.csv").is_file():
        return target
    if target.exists():
        raise DataError(
            f"{target} exists but holds no data.csv, so it is not a complete sample; remove it to regenerate it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    command = [
        sys.executable,
        "-m",
        "geoguess_utils.cli",
        "make-sample",
        "--out",
        str(staging),
        "--locations",
        str(int(locations)),
        "--size",
        str(int(size_px)),
        "--seed",
        str(int(seed)),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
            raise DataError(f"could not generate the synthetic sample in {target}: {detail}")
        if not (staging / "data.csv").is_file():
            raise DataError(f"the synthetic sample generator wrote no data.csv into {staging}")
        try:
            staging.rename(target)
        except OSError:
            if not (target / "data.csv").is_file():  # another process did not win the race: a real error
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def data_roots(
    env: str | None = None,
    root: str | os.PathLike[str] | None = None,
    generate: bool = True,
) -> list[Path]:
    """Dataset roots for the course: ``GEOGUESS_DATA_DIR`` or the synthetic sample.

    Used in the section 'Setup' of every notebook.

    Args:
        env: The roots as one string separated by ``os.pathsep``; read from the
            ``GEOGUESS_DATA_DIR`` environment variable when ``None``. An empty value
            means "not set".
        root: Project root for the synthetic sample; found with :func:`project_root`
            when ``None``.
        generate: Generate the synthetic sample when it is missing (a minute or so);
            when ``False`` a missing sample raises instead.

    Returns:
        Existing folders, in the order given.

    Raises:
        DataError: When a named root does not exist, or the sample is missing and
            ``generate`` is ``False``.
    """
    value = os.environ.get(DATA_DIR_ENV, "") if env is None else env
    named = [part.strip() for part in value.split(os.pathsep) if part.strip()]
    if named:
        roots = [Path(part).expanduser() for part in named]
        missing = [str(p) for p in roots if not p.is_dir()]
        if missing:
            raise DataError(f"{DATA_DIR_ENV} names folders that do not exist: {', '.join(missing)}")
        return roots
    sample = sample_dir(root)
    if not (sample / "data.csv").is_file():
        if not generate:
            raise DataError(
                f"no dataset: {DATA_DIR_ENV} is not set and the synthetic sample {sample} is missing "
                f"(create it with: geoguess make-sample --out {sample})"
            )
        make_sample(sample)
    return [sample]
