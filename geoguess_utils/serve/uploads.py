"""Uploaded photos -> the pixels the model takes, through the data pipeline's own decoder.

Every view is decoded by :func:`geoguess_utils.data.images.load_view` (the same
decompression-bomb limit, DCT scaling and resize as training and ``geoguess predict``)
from an in-memory buffer that names its form field, so a decoding error says which
upload was bad. A JPEG is decoded in draft mode: libjpeg scales it by the smallest
1/2, 1/4 or 1/8 whose sides stay at least the model's image size (a 640 px photo for a
64 px model is decoded at 80 px, in about a third of the CPU time of a full decode),
then resized to the model's size; other formats are decoded at full size. Locations in
a zip use the LUMEN layout: ``<uuid>/0.jpg`` .. ``<uuid>/270.jpg``, optionally under
``data/`` or ``images/`` and one top folder.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from geoguess_utils.data.images import load_view
from geoguess_utils.data.layout import HEADINGS, IMAGE_DIR_NAMES, VIEW_FILES
from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS, is_safe_uuid, printable
from geoguess_utils.errors import DataError

IMAGE_CONTENT_TYPES: frozenset[str] = frozenset(
    {"image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
)
"""Content types accepted for a photo (what browsers and curl send for the formats the reader opens)."""

ZIP_CONTENT_TYPES: frozenset[str] = frozenset(
    {"application/zip", "application/x-zip-compressed", "application/octet-stream"}
)
HEADING_FIELDS: tuple[str, ...] = tuple(str(h) for h in HEADINGS)
"""Form field names of the four views, in heading order: ``"0"``, ``"90"``, ``"180"``, ``"270"``."""


MAX_REQUEST_PIXELS = 512_000_000
"""Most source pixels one batch request may ask the server to decode, summed over every photo (512 MP:
256 locations of four 640 px photos are 420 MP)."""


class UploadError(DataError):
    """A request's upload is unusable; ``status`` is the HTTP status and ``field`` the form field at fault.

    Args:
        message: What is wrong, in words.
        field: The form field (or zip member) the problem is in, if any.
        status: HTTP status to answer with (400, 413 or 415).
    """

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class NamedBuffer(io.BytesIO):
    """An in-memory file whose ``str()`` names where its bytes came from (used in decoder messages)."""

    def __init__(self, data: bytes, label: str) -> None:
        super().__init__(data)
        self.label = label

    def __str__(self) -> str:
        return self.label

    __repr__ = __str__  # decoders name a file with repr() too: never a heap address in a message


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the form field, the client's file name and content type, and the bytes."""

    field: str
    filename: str
    content_type: str
    data: bytes


def check_content_type(upload: Upload, allowed: frozenset[str] = IMAGE_CONTENT_TYPES) -> None:
    """Refuse an upload whose declared content type is not an image type the reader opens.

    Raises:
        UploadError: With status 415, naming the field.
    """
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared not in allowed:
        raise UploadError(
            f"field {upload.field!r}: content type {printable(declared or 'none')!r} is not accepted; "
            f"send one of {', '.join(sorted(allowed))}",
            field=upload.field,
            status=415,
        )


def decode_upload(upload: Upload, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode one uploaded photo to a (size, size, 3) ``uint8`` RGB array.

    A JPEG is decoded in draft mode (DCT scaling, see the module's description), then
    resized; its pixels differ from a full decode's by less than one level of 255 on average.

    Args:
        upload: The uploaded file.
        size: Side of the output, pixels (the model's image size).
        max_pixels: Largest source image accepted (width * height).

    Returns:
        ``uint8`` array of shape (size, size, 3), RGB.

    Raises:
        UploadError: Empty, non-image or too large (pixel count) bytes, naming the field.
    """
    if not upload.data:
        raise UploadError(f"field {upload.field!r}: the file is empty", field=upload.field)
    label = f"field {upload.field!r} ({printable(upload.filename) or 'no file name'})"
    try:
        return load_view(NamedBuffer(upload.data, label), size, use_draft=True, max_pixels=max_pixels)
    except DataError as exc:
        status = 413 if "decompression bomb" in str(exc) else 400
        raise UploadError(str(exc), field=upload.field, status=status) from exc


def views_from_form(
    files: Mapping[str, list[Upload]], others: Mapping[str, list[str]], size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """The four views of one location from a form with exactly the fields ``0``, ``90``, ``180``, ``270``.

    Args:
        files: Field name -> files sent under it.
        others: Field name -> plain (non-file) values sent under it.
        size: Side the views are resized to, pixels.
        max_pixels: Largest source image accepted (width * height).

    Returns:
        ``uint8`` array of shape (4, size, size, 3), headings 0/90/180/270 in order.

    Raises:
        UploadError: A missing, repeated, unexpected or non-file field, a wrong content
            type, or bytes that are not a decodable image; the message names the field.
    """
    for field in others:
        if field in HEADING_FIELDS:
            raise UploadError(f"field {field!r} must be an image file, not a text value", field=field)
        raise UploadError(f"unexpected form field {printable(field)!r}; send only {', '.join(HEADING_FIELDS)}", field)
    for field in files:
        if field not in HEADING_FIELDS:
            raise UploadError(
                f"unexpected file field {printable(field)!r}; send exactly four images in fields "
                f"{', '.join(HEADING_FIELDS)} (the camera headings)",
                field=field,
            )
    missing = [field for field in HEADING_FIELDS if field not in files]
    if missing:
        raise UploadError(
            f"missing heading {missing[0]!r}: send exactly four images in fields {', '.join(HEADING_FIELDS)}"
            + (f" (missing: {', '.join(missing)})" if len(missing) > 1 else ""),
            field=missing[0],
        )
    uploads = []
    for field in HEADING_FIELDS:
        if len(files[field]) != 1:
            raise UploadError(f"field {field!r} holds {len(files[field])} files; send exactly one", field=field)
        upload = files[field][0]
        check_content_type(upload)
        uploads.append(upload)
    return np.stack([decode_upload(upload, size, max_pixels) for upload in uploads])


def locations_from_fields(
    files: Mapping[str, list[Upload]],
    size: int,
    max_locations: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_request_pixels: int = MAX_REQUEST_PIXELS,
) -> tuple[list[str], np.ndarray]:
    """Several locations from repeated field groups named ``<uuid>/<heading>`` (``loc1/0``, ``loc1/90``, ...).

    Returns:
        The uuids in the order first sent, and their views, ``uint8`` (N, 4, size, size, 3).

    Raises:
        UploadError: A badly named field, an unsafe uuid, a location without all four
            headings, too many locations, or an undecodable image; naming the field.
    """
    groups: dict[str, dict[str, Upload]] = {}
    for field, uploads in files.items():
        uuid, _, heading = field.rpartition("/")
        if not uuid or heading not in HEADING_FIELDS:
            raise UploadError(
                f"field {printable(field)!r} is not named <uuid>/<heading> with heading one of "
                f"{', '.join(HEADING_FIELDS)}",
                field=field,
            )
        if not is_safe_uuid(uuid):
            raise UploadError(f"field {printable(field)!r}: {printable(uuid)!r} is not a plain uuid", field=field)
        if len(uploads) != 1:
            raise UploadError(f"field {printable(field)!r} holds {len(uploads)} files; send exactly one", field=field)
        check_content_type(uploads[0])
        groups.setdefault(uuid, {})[heading] = uploads[0]
    return _stack_groups(groups, size, max_locations, max_pixels, "field", max_request_pixels)


def locations_from_zip(
    data: bytes,
    size: int,
    max_locations: int,
    max_member_bytes: int,
    max_total_bytes: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_request_pixels: int = MAX_REQUEST_PIXELS,
) -> tuple[list[str], np.ndarray]:
    """Several locations from a zip in the LUMEN layout.

    Accepted member paths end in ``<uuid>/<heading>.jpg``; the uuid folder may sit at
    the top, under ``data/`` or ``images/``, and all of it under one more folder.
    Other members (``data.csv``, folders, ``__MACOSX`` files) are ignored.

    Args:
        data: The zip file's bytes.
        size: Side the views are resized to, pixels.
        max_locations: Most locations accepted in one zip.
        max_member_bytes: Largest uncompressed image member, bytes.
        max_total_bytes: Largest total of uncompressed image members, bytes (zip-bomb guard).
        max_pixels: Largest source image accepted (width * height).
        max_request_pixels: Most source pixels all the photos may declare together (413 beyond).

    Returns:
        The uuids in sorted order and their views, ``uint8`` (N, 4, size, size, 3).

    Raises:
        UploadError: Not a zip, an unsafe or incomplete location, or members over the limits.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UploadError(f"field 'zip': not a readable zip file ({exc})", field="zip") from exc
    groups: dict[str, dict[str, Upload]] = {}
    total = 0
    with archive:
        for member in archive.infolist():
            parts = [p for p in member.filename.split("/") if p]
            if member.is_dir() or len(parts) < 2 or parts[-1] not in VIEW_FILES or parts[0] == "__MACOSX":
                continue
            prefix, uuid = parts[:-2], parts[-2]
            shown = printable(member.filename)
            if len(prefix) > 2 or (prefix and prefix[-1] not in IMAGE_DIR_NAMES and len(prefix) == 2):
                raise UploadError(f"zip member {shown!r} is not in the LUMEN layout <uuid>/<heading>.jpg", field=shown)
            if not is_safe_uuid(uuid):
                raise UploadError(f"zip member {shown!r}: {printable(uuid)!r} is not a plain uuid", field=shown)
            if member.file_size > max_member_bytes:
                raise UploadError(
                    f"zip member {shown!r} unpacks to {member.file_size} bytes, over the limit of {max_member_bytes}",
                    field=shown,
                    status=413,
                )
            total += member.file_size
            if total > max_total_bytes:
                raise UploadError(
                    f"the zip's images unpack to more than {max_total_bytes} bytes; send fewer locations per request",
                    field="zip",
                    status=413,
                )
            heading = parts[-1].rsplit(".", 1)[0]
            if heading in groups.get(uuid, {}):
                raise UploadError(f"zip holds location {uuid!r} heading {heading} twice", field=shown)
            try:
                content = archive.read(member)
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, EOFError) as exc:
                raise UploadError(f"zip member {shown!r} cannot be read ({exc})", field=shown) from exc
            groups.setdefault(uuid, {})[heading] = Upload(shown, parts[-1], "image/jpeg", content)
    return _stack_groups(dict(sorted(groups.items())), size, max_locations, max_pixels, "zip", max_request_pixels)


def declared_pixels(upload: Upload) -> int:
    """Width times height that an upload's header declares, read without decoding it (0 when unreadable)."""
    from PIL import Image

    try:
        with Image.open(NamedBuffer(upload.data, upload.field)) as image:
            width, height = image.size
    except Exception:
        return 0
    return int(width) * int(height)


def check_pixel_budget(uploads: list[Upload], budget: int, source: str) -> None:
    """Refuse (413) a request whose photos declare more source pixels in all than ``budget``.

    The per-photo limit stops one decompression bomb; this stops many small files that each
    declare a large image (a 292 KB zip of 1,024 black 4096-px PNGs would cost minutes of CPU).

    Raises:
        UploadError: 413, naming the total and the limit.
    """
    total = 0
    for upload in uploads:
        total += declared_pixels(upload)
        if total > budget:
            raise UploadError(
                f"the photos of this request declare more than {budget / 1e6:g} megapixels in all (the server's "
                f"--max-request-megapixels); send fewer or smaller photos per request",
                field=source,
                status=413,
            )


def _stack_groups(
    groups: dict[str, dict[str, Upload]],
    size: int,
    max_locations: int,
    max_pixels: int,
    source: str,
    budget: int = MAX_REQUEST_PIXELS,
) -> tuple[list[str], np.ndarray]:
    if not groups:
        where = "the zip" if source == "zip" else "the form"
        raise UploadError(f"{where} holds no location (expected <uuid>/0.jpg .. <uuid>/270.jpg)", field=source)
    if len(groups) > max_locations:
        raise UploadError(
            f"{len(groups)} locations in one request; the limit is {max_locations}", field=source, status=413
        )
    for uuid, views in groups.items():
        missing = [h for h in HEADING_FIELDS if h not in views]
        if missing:
            field = f"{uuid}/{missing[0]}"
            raise UploadError(f"location {uuid!r} lacks heading(s) {', '.join(missing)} ({field!r})", field=field)
    check_pixel_budget([views[h] for views in groups.values() for h in HEADING_FIELDS], budget, source)
    pixels = np.stack(
        [np.stack([decode_upload(views[h], size, max_pixels) for h in HEADING_FIELDS]) for views in groups.values()]
    )
    return list(groups), pixels
