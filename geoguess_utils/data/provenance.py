"""Where a dataset root comes from: a synthetic sample or real photos (its ``data.csv`` says)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geoguess_utils.data.layout import CSV_NAME
from geoguess_utils.errors import DataError

SYNTHETIC_SOURCE = "synthetic"
"""Value of the ``source`` column in a synthetic sample's ``data.csv``."""


def is_synthetic(roots: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether every root is a synthetic sample (its ``data.csv`` says so in ``source``).

    Args:
        roots: Dataset roots.

    Returns:
        ``True`` when each root has a ``data.csv`` whose ``source`` column is
        ``"synthetic"`` on every row; ``False`` as soon as one root is real (no
        ``source`` column, another value, or no ``data.csv`` at all).

    Raises:
        DataError: When a ``data.csv`` cannot be parsed.
    """
    if not roots:
        return False
    for folder in roots:
        csv = Path(folder) / CSV_NAME
        if not csv.is_file():
            return False
        try:
            source = pd.read_csv(csv, usecols=lambda name: name == "source", dtype=str)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{csv}: cannot read the CSV: {exc}") from exc
        if "source" not in source.columns or source.empty:
            return False
        values = source["source"].fillna("").str.strip().str.lower()
        if not (values == SYNTHETIC_SOURCE).all():
            return False
    return True


def data_kind(roots: Sequence[str | os.PathLike[str]]) -> str:
    """Whether a set of dataset roots is synthetic, real, or a mix of both.

    Args:
        roots: Dataset roots (each judged with :func:`is_synthetic`).

    Returns:
        ``"synthetic"`` when every root is a synthetic sample, ``"real"`` when none
        is (and for no roots at all), ``"mixed"`` otherwise.

    Raises:
        DataError: When a ``data.csv`` cannot be parsed.
    """
    synthetic = [is_synthetic([root]) for root in roots]
    if synthetic and all(synthetic):
        return SYNTHETIC_SOURCE
    return "mixed" if any(synthetic) else "real"
