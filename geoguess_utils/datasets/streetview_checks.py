"""What the Street View downloader checks before a view or a row is kept.

Two guards, each small: each downloaded view must be as large as asked for and pass the
reader's own limits, and the rows of an existing ``data.csv`` that the downloader did not
write are kept. (The API key is removed from every text by
:func:`geoguess_utils.datasets.download_driver.redact`.)
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd

from geoguess_utils.data.layout import IMAGE_FORMATS
from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
from geoguess_utils.errors import DataError


def view_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` of an image from its header alone (nothing is decoded).

    Args:
        path: An image file.

    Returns:
        The size in pixels, or ``None`` when the header cannot be read (the full check
        then says why).
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as image:
                return image.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def check_view(path: Path, min_size: tuple[int, int] | None = None) -> None:
    """Check a downloaded view as the reader would; delete it when it is refused.

    The pixel size is read from the header first: a view smaller than the size asked for
    (a placeholder or an error image sent with HTTP 200) is refused without decoding it.

    Args:
        path: The JPEG just written.
        min_size: ``(width, height)`` asked for; a view smaller in either dimension is refused.

    Raises:
        DataError: When the view is smaller than ``min_size`` or the reader would refuse the
            file (undecodable, or more than :data:`~geoguess_utils.data.reader.DEFAULT_MAX_PIXELS`
            pixels); the message names the file and, for a small view, both sizes.
    """
    from geoguess_utils.data.images import load_view

    try:
        size = view_size(path) if min_size is not None else None
        if min_size is not None and size is not None and (size[0] < min_size[0] or size[1] < min_size[1]):
            raise DataError(
                f"{path} is {size[0]}x{size[1]} pixels, smaller than the {min_size[0]}x{min_size[1]} asked for"
            )
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
