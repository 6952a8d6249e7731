"""What the Street View downloader checks before a view or a row is kept.

Two guards, each small: each downloaded view must pass the reader's own limits, and the
rows of an existing ``data.csv`` that the downloader did not write are kept. (The API
key is removed from every text by :func:`geoguess_utils.datasets.download_driver.redact`.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
from geoguess_utils.errors import DataError


def check_view(path: Path) -> None:
    """Decode a downloaded view with the reader's limits; delete it when it is refused.

    Args:
        path: The JPEG just written.

    Raises:
        DataError: When the reader would refuse the file (undecodable, or more than
            :data:`~geoguess_utils.data.reader.DEFAULT_MAX_PIXELS` pixels); the message names it.
    """
    from geoguess_utils.data.images import load_view

    try:
        load_view(path, 64, max_pixels=DEFAULT_MAX_PIXELS)
    except DataError:
        path.unlink(missing_ok=True)
        raise


def kept_rows(data_csv: Path, status: pd.DataFrame) -> pd.DataFrame | None:
    """Rows of an existing ``data.csv`` that the downloader did not write; they are kept on every save.

    Args:
        data_csv: The root's ``data.csv`` (it may not exist).
        status: The status table; rows whose uuid it lists are the downloader's own.

    Returns:
        The other rows, every cell as the text it was, or ``None`` when there is no file.

    Raises:
        DataError: When the file exists but cannot be read or has no ``uuid`` column (it
            would otherwise be replaced and its rows lost).
    """
    if not data_csv.is_file():
        return None
    try:
        existing = pd.read_csv(data_csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{data_csv} exists but cannot be read ({exc}); refusing to replace it") from exc
    except pd.errors.EmptyDataError:
        return None
    if "uuid" not in existing.columns:
        raise DataError(f"{data_csv} exists but has no uuid column; refusing to replace it (choose another --out)")
    return existing[~existing["uuid"].isin(set(status["uuid"].astype(str)))].reset_index(drop=True)
