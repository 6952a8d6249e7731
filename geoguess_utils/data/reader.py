"""Read the pieces of a LUMEN root: its data.csv, its image folder, a location's view files."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import CSV_NAME, IMAGE_DIR_NAMES, REQUIRED_COLUMNS, VIEW_FILES
from geoguess_utils.errors import DataError

DEFAULT_MAX_PIXELS = 4096 * 4096
"""Largest image (width * height) accepted before decoding; guards against decompression bombs."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

_CONTROL_CHARS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    c: f"\\u{c:04x}" for c in (*range(0x80, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def printable(value: object) -> str:
    r"""``str(value)`` with control and bidi-override characters shown as escapes (``\x0a``, ``\u202e``).

    Text taken from a dataset (uuids, file names, CSV cells) passes through this before
    it is printed or written to a report, so it cannot start new report lines, move the
    cursor, recolour the terminal or reverse the text around it.
    """
    return str(value).translate(_CONTROL_CHARS)


def is_safe_uuid(value: object) -> bool:
    """Whether ``value`` can be used as a folder name inside the image folder.

    A safe uuid is a single path component of letters, digits, ``.``, ``_`` and ``-``
    that does not start with a dot, so ``..``, ``a/b`` or an absolute path can never
    lead outside the dataset.
    """
    return isinstance(value, str) and _SAFE_NAME.fullmatch(value) is not None


def find_image_dir(root: str | os.PathLike[str]) -> Path:
    """Return the image folder of a dataset root (``data/`` or ``images/``).

    Raises:
        DataError: When the root does not exist, has neither folder, has both, or its
            image folder is a symbolic link leading outside the root (the dataset would
            then read images, and list file names, from elsewhere on the disk).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise DataError(f"dataset root {root_path} does not exist or is not a folder")
    found = [root_path / name for name in IMAGE_DIR_NAMES if (root_path / name).is_dir()]
    if not found:
        raise DataError(
            f"dataset root {root_path} has no image folder: expected {' or '.join(n + '/' for n in IMAGE_DIR_NAMES)} "
            f"holding one folder per uuid"
        )
    if len(found) > 1:
        raise DataError(
            f"dataset root {root_path} has both {found[0].name}/ and {found[1].name}/; keep one image folder so "
            f"it is clear which images belong to {CSV_NAME}"
        )
    image_dir = found[0]
    real_root, real_images = root_path.resolve(), image_dir.resolve()
    if not real_images.is_relative_to(real_root) or real_images == real_root:
        raise DataError(
            f"dataset root {root_path}: its image folder {image_dir} resolves to {real_images}, outside the root; "
            f"refusing it (move or copy the images into {root_path})"
        )
    return image_dir


def view_paths(image_dir: str | os.PathLike[str], uuid: str) -> list[Path]:
    """The four image paths of a location, in heading order 0/90/180/270.

    Raises:
        DataError: When ``uuid`` is not a plain folder name (e.g. ``../../etc``) and
            could point outside ``image_dir``.
    """
    if not is_safe_uuid(uuid):
        raise DataError(f"{image_dir}: refusing uuid {uuid!r}: it is not a plain folder name")
    folder = Path(image_dir) / uuid
    return [folder / name for name in VIEW_FILES]


def _parse_float(text: str) -> float:
    # Python's float() round-trips the digits exactly (pandas' fast parser may differ in the last bit).
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _check_field_counts(csv_path: Path) -> None:
    """Refuse a row with more fields than the header, on any line.

    pandas would silently take the first column of such a file as its index when the
    first data row is the long one (shifting every column: longitudes read as uuids),
    and only raise for later rows; this check reports every line the same way.
    """
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None:
            return
        for row in rows:
            if len(row) > len(header):
                raise DataError(
                    f"{csv_path} line {rows.line_num}: {len(row)} fields, but the header has {len(header)} "
                    f"({printable(','.join(header))}); a stray comma or an unquoted value?"
                )


def read_data_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``data.csv`` with extra or unnamed columns in any order.

    Args:
        path: The CSV file.

    Returns:
        A frame with columns ``uuid`` (str as written), ``latitude``, ``longitude``
        (float64 degrees, NaN where empty or not a number), ``latitude_text``,
        ``longitude_text`` (the raw cells, for messages) and ``line`` (1-based line
        number in the file, the header being line 1). Extra columns are dropped.

    Raises:
        DataError: When the file cannot be parsed, a row has more fields than the header
            (the message names the line), or a required column is missing.
    """
    csv_path = Path(path)
    try:
        _check_field_counts(csv_path)
        raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=False, index_col=False)
    except FileNotFoundError as exc:
        raise DataError(f"{csv_path} does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error, OSError) as exc:
        raise DataError(f"{csv_path} is not a readable CSV file: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(
            f"{csv_path} lacks the column(s) {', '.join(missing)}; it has {', '.join(map(str, raw.columns)) or 'none'} "
            f"(required: {', '.join(REQUIRED_COLUMNS)})"
        )
    out = pd.DataFrame(
        {
            "uuid": raw["uuid"].astype(str),
            "latitude": raw["latitude"].map(_parse_float).astype(np.float64),
            "longitude": raw["longitude"].map(_parse_float).astype(np.float64),
            "latitude_text": raw["latitude"],
            "longitude_text": raw["longitude"],
            "line": np.arange(2, len(raw) + 2, dtype=np.int64),
        }
    )
    return out
