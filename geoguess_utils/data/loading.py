"""Load LUMEN roots into one validated table of locations."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import pandas as pd

from geoguess_utils.data.validation import validate_roots
from geoguess_utils.errors import DataError


def load_locations(
    roots: Sequence[str | os.PathLike[str]],
    *,
    lenient: bool = False,
    report_path: str | os.PathLike[str] | None = None,
    require_labels: bool = True,
    **validate_kwargs: object,
) -> pd.DataFrame:
    """Read and validate LUMEN roots into one locations table.

    Args:
        roots: Dataset roots (see :func:`validate_roots`).
        lenient: Leave out locations with problems instead of raising. What was left
            out, and why, goes to ``report_path`` (and, when no path is given, into a
            warning listing every problem), so nothing disappears silently.
        report_path: Where to write the problems CSV (uuid, file, kind, message);
            written in strict mode too when there are problems.
        require_labels: Every root must have a ``data.csv`` (training data).
        **validate_kwargs: Passed to :func:`validate_roots` (``deep``,
            ``expected_size``, ``coast_tolerance_km``, ``max_pixels``, ``workers``).

    Returns:
        Columns :data:`LOCATION_COLUMNS`: uuid (str), latitude and longitude (float64
        degrees; NaN for a predict-only root), root, and the four view paths.

    Raises:
        DataError: In strict mode, when anything is wrong; the message lists every
            problem by uuid and file.
    """
    report = validate_roots(roots, require_labels=require_labels, **validate_kwargs)  # type: ignore[arg-type]
    fewer = {w.uuid for w in report.warnings} - report.bad_uuids()
    if fewer:
        example = next(w.file for w in report.warnings if w.uuid in fewer)
        warnings.warn(
            f"{len(fewer)} locations have fewer than four views (e.g. {example} is missing); they are used with "
            "the views they have",
            stacklevel=2,
        )
    if report.ok:
        return report.locations
    if report_path is not None:
        report.write_csv(report_path)
    if not lenient:
        where = f" (also written to {report_path})" if report_path is not None else ""
        raise DataError(f"the dataset has problems{where}:\n{report.format()}")
    clean = report.clean_locations()
    skipped = len(report.bad_uuids())
    if report_path is None:
        warnings.warn(
            f"lenient mode: skipped {skipped} locations because of these problems:\n{report.format()}",
            stacklevel=2,
        )
    else:
        warnings.warn(
            f"lenient mode: skipped {skipped} locations; the reasons are listed in {report_path} ({report.summary()})",
            stacklevel=2,
        )
    return clean
