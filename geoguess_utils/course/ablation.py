"""The measured ablation (``benchmarks/ablation.py``) as the course reads it: settings and summary table."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from geoguess_utils.errors import DataError

SUMMARY_COLUMNS: tuple[str, ...] = ("variant", "mean_km", "mean_km_sd", "median_km", "median_km_sd", "vs_recipe")
"""Columns every row of an ablation summary carries (km, and the ratio to the recipe's mean)."""

ABLATION_FILES: dict[str, str] = {
    "all 2,000 locations": "benchmarks/ablation.json",
    "100 locations": "benchmarks/ablation_100.json",
}
"""The committed ablation runs, by what they measured, relative to the project root."""


@dataclass(frozen=True)
class AblationRun:
    """One run of the ablation script.

    Used in notebook 05, section 6 ('What beats the 2022 recipe? The ablation').

    Attributes:
        path: The JSON file it was read from.
        settings: Dataset, number of locations, seeds and epochs of the run.
        summary: One row per variant (:data:`SUMMARY_COLUMNS` and more), recipe first.
        constant_km: Test mean error of the best constant guess, km (averaged over seeds).
    """

    path: Path
    settings: dict[str, Any] = field(repr=False)
    summary: pd.DataFrame = field(repr=False)
    constant_km: float

    @property
    def best(self) -> pd.Series:
        """The variant with the lowest test mean error."""
        return self.summary.loc[self.summary["mean_km"].idxmin()]

    @property
    def recipe_km(self) -> float:
        """The recipe's test mean error, km."""
        return float(self.summary.loc[self.summary["variant"] == "recipe", "mean_km"].iloc[0])


def load_ablation(path: str | os.PathLike[str]) -> AblationRun:
    """Read a JSON file written by ``benchmarks/ablation.py --out``.

    Used by :func:`committed_ablations` (notebook 05, section 6).

    Args:
        path: The file.

    Returns:
        Its settings and summary.

    Raises:
        DataError: The file is missing or not JSON, a summary row lacks a column or holds a
            non-finite error, or there is no ``recipe`` row (each message names the file, and
            the row where one is at fault).
    """
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{source}: no such ablation file (write one with benchmarks/ablation.py --out)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{source}: not a readable ablation JSON file ({exc})") from None
    rows = data.get("summary") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{source}: no 'summary' list of variants")
    for number, row in enumerate(rows, start=1):
        missing = [c for c in SUMMARY_COLUMNS if not isinstance(row, dict) or c not in row]
        if missing:
            raise DataError(f"{source}: summary row {number} lacks {', '.join(missing)}")
        bad = [c for c in SUMMARY_COLUMNS[1:] if not _finite(row[c])]
        if bad:
            raise DataError(f"{source}: summary row {number} ({row['variant']!r}) has non-finite {', '.join(bad)}")
    summary = pd.DataFrame(rows)
    if not (summary["variant"] == "recipe").any():
        raise DataError(f"{source}: the summary has no 'recipe' row to compare with")
    constants = [float(v) for v in summary.get("constant_mean_km", pd.Series(dtype=float)) if _finite(v)]
    constant = sum(constants) / len(constants) if constants else math.nan
    return AblationRun(source, dict(data.get("settings", {})), summary, constant)


def committed_ablations(root: str | os.PathLike[str]) -> dict[str, AblationRun]:
    """The ablation runs that ship with the project (:data:`ABLATION_FILES`), by what they measured.

    Used in notebook 05, section 6 ('What beats the 2022 recipe? The ablation').

    Args:
        root: The project root (see :func:`geoguess_utils.course.workspace.project_root`).
    """
    return {title: load_ablation(Path(root) / relative) for title, relative in ABLATION_FILES.items()}


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
