"""The LUMEN dataset layout in one place: file and folder names, headings, CSV columns."""

from __future__ import annotations

HEADINGS: tuple[int, ...] = (0, 90, 180, 270)
"""Camera headings in degrees, in the order views are stored and returned."""

IMAGE_DIR_NAMES: tuple[str, ...] = ("data", "images")
"""Accepted names of the image folder inside a dataset root."""

CSV_NAME = "data.csv"

WRITTEN_IMAGE_DIR = "images"
"""The image folder this project's producers (synthetic sample, downloaders) write; both names are read."""
REQUIRED_COLUMNS: tuple[str, ...] = ("uuid", "latitude", "longitude")
PATH_COLUMNS: tuple[str, ...] = tuple(f"path_{h}" for h in HEADINGS)
LOCATION_COLUMNS: tuple[str, ...] = ("uuid", "latitude", "longitude", "root", *PATH_COLUMNS)
"""Columns of the locations table returned by :func:`load_locations`."""

VIEW_FILES: tuple[str, ...] = tuple(f"{h}.jpg" for h in HEADINGS)

IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
"""Pillow formats geoguess opens. Others (EPS, which runs Ghostscript, and dozens of rarely
used decoders) are never tried on dataset files; such a file is reported as unreadable."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def view_file(heading: int) -> str:
    """File name of the view at ``heading`` degrees, e.g. ``"90.jpg"``."""
    return f"{int(heading)}.jpg"


IMAGE_SIZE_RANGE: tuple[int, int] = (8, 1024)
"""Smallest and largest side (pixels) of the square views fed to a model; LUMEN photos are 640 px,
models here train at 64 to 448. Training refuses others, and so does a checkpoint's record."""
