"""Refresh the README's figures from what the notebooks last wrote.

The notebooks write every figure into ``figures/generated/`` (not in git), so a
learner's run leaves ``git status`` clean. The README shows the copies one level up, in
the tracked ``figures/``; :func:`publish_figures` replaces those copies with the freshly
generated ones. ``make figures`` first runs the notebooks on the synthetic sample
and then calls this module::

    python -m geoguess_utils.course.figures
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from geoguess_utils.course import workspace
from geoguess_utils.errors import DataError, GeoguessError
from geoguess_utils.io import atomic_write_bytes

PUBLISHED_SUFFIXES = (".png",)
"""Kinds of file that are published (the interactive map's HTML is never tracked)."""


def publish_figures(root: str | os.PathLike[str] | None = None, names: Sequence[str] | None = None) -> list[Path]:
    """Copy generated figures over their tracked counterparts in ``figures/``.

    Used by ``make figures`` (through :func:`main`) after the notebooks; no notebook calls it.

    Args:
        root: Project root; found with :func:`~geoguess_utils.course.workspace.project_root` when ``None``.
        names: File names to publish (e.g. ``["locations.png"]``); ``None`` publishes
            every generated file with a suffix in :data:`PUBLISHED_SUFFIXES`.

    Returns:
        The tracked files written, sorted by name.

    Raises:
        DataError: When nothing was generated yet, or a named figure was not generated.
    """
    source = workspace.figures_dir(root)
    target = workspace.published_figures_dir(root)
    if names is None:
        chosen = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in PUBLISHED_SUFFIXES)
        if not chosen:
            raise DataError(f"{source} holds no figures yet: run the notebooks first (make figures does both)")
    else:
        chosen = [source / Path(name).name for name in names]
        missing = [p.name for p in chosen if not p.is_file()]
        if missing:
            raise DataError(f"not generated yet in {source}: {', '.join(missing)} (run the notebook that draws it)")
    written = []
    for figure in chosen:
        written.append(atomic_write_bytes(target / figure.name, figure.read_bytes()))
    return sorted(written)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m geoguess_utils.course.figures [NAME ...]``; returns the exit status.

    Run by ``make figures``; no notebook calls it.
    """
    parser = argparse.ArgumentParser(
        prog="python -m geoguess_utils.course.figures",
        description="Copy the figures the notebooks wrote into figures/generated/ over the tracked ones in figures/.",
    )
    parser.add_argument("names", nargs="*", help="file names to publish (default: every generated .png)")
    args = parser.parse_args(argv)
    try:
        written = publish_figures(names=args.names or None)
    except GeoguessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = workspace.project_root()
    for path in written:
        print(f"published {path.relative_to(root) if path.is_relative_to(root) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
