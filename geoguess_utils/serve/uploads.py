"""Uploaded photos -> the pixels the model takes, through the data pipeline's own decoder.

Every view is decoded by :func:`geoguess_utils.data.images.load_view` (the same
decompression-bomb limit, DCT scaling and resize as training and ``geoguess predict``)
from an in-memory buffer that names its form field, so a decoding error says which
upload was bad. A JPEG is decoded in draft mode: libjpeg scales it by the smallest
1/2, 1/4 or 1/8 whose sides stay at least the model's image size (a 640 px photo for a
64 px model is decoded at 80 px, in about a third of the CPU time of a full decode),
then resized to the model's size; other formats are decoded at full size.

A location has four heading slots (0, 90, 180, 270). A request may fill any one to four of
them: a photo sent in a heading field goes into its slot, and photos of unknown heading
(form field ``photo``, repeatable) fill the free slots, marked "heading unknown". What a
location holds travels as a view mask and a heading-known mask (both (4,) bool) beside the
pixels; an empty slot's pixels are zeros, which the model never looks at. Locations in a zip
use the LUMEN layout: ``<uuid>/0.jpg`` .. ``<uuid>/270.jpg`` (any one to four of them),
optionally under ``data/`` or ``images/`` and one top folder.

A model that concatenates the views (``pooling: concat``) needs all four headings: the
readers refuse anything less with a 422 when asked to (``all_headings=True``).
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
PHOTO_FIELD = "photo"
"""Form field of a photo whose heading is unknown; it may be repeated."""
UNKNOWN_HEADING = "unknown"
"""How an answer names the heading of a photo sent in :data:`PHOTO_FIELD`."""
MAX_VIEWS = len(HEADING_FIELDS)
"""Most photos of one location: one per heading slot."""
FIELDS_HINT = (
    f"send 1 to {MAX_VIEWS} images in all: at most one in each of the fields {', '.join(HEADING_FIELDS)} "
    f"(the camera headings) and any more of unknown heading in the field {PHOTO_FIELD!r} (repeated)"
)
ALL_HEADINGS_HINT = (
    f"this model needs all four headings, one photo in each of the fields {', '.join(HEADING_FIELDS)}: it "
    "concatenates the views in heading order (models trained with pooling attention or mean take 1 to 4 photos)"
)


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


@dataclass(frozen=True)
class LocationUploads:
    """One location's uploaded photos in the four heading slots, before decoding.

    Attributes:
        slots: Per heading slot (0, 90, 180, 270, in that order): the upload in it, or ``None``.
        heading_known: Per slot: ``False`` where a photo of unknown heading was placed.
    """

    slots: tuple[Upload | None, ...]
    heading_known: tuple[bool, ...]

    @property
    def view_mask(self) -> np.ndarray:
        """(4,) bool: the slots that hold a photo."""
        return np.array([upload is not None for upload in self.slots], dtype=bool)

    @property
    def known(self) -> np.ndarray:
        """(4,) bool: ``heading_known`` as an array."""
        return np.array(self.heading_known, dtype=bool)

    @property
    def missing(self) -> list[str]:
        """The heading fields with no photo of that heading, in heading order."""
        return [
            field
            for field, upload, known in zip(HEADING_FIELDS, self.slots, self.heading_known, strict=True)
            if upload is None or not known
        ]

    def decode(self, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """``uint8`` (4, size, size, 3): each photo decoded into its slot (:func:`decode_upload`), zeros elsewhere."""
        pixels = np.zeros((len(self.slots), size, size, 3), dtype=np.uint8)
        for slot, upload in enumerate(self.slots):
            if upload is not None:
                pixels[slot] = decode_upload(upload, size, max_pixels)
        return pixels


@dataclass(frozen=True)
class LocationBatch:
    """Decoded locations with the masks of what each holds.

    Attributes:
        uuids: One name per location, length N.
        pixels: ``uint8`` (N, 4, size, size, 3), heading slots 0/90/180/270; zeros in empty slots.
        view_mask: (N, 4) bool, the slots that hold a photo (at least one per location).
        heading_known: (N, 4) bool, ``False`` where a photo of unknown heading sits.
    """

    uuids: list[str]
    pixels: np.ndarray
    view_mask: np.ndarray
    heading_known: np.ndarray

    def __len__(self) -> int:
        return len(self.uuids)

    def part(self, start: int, stop: int) -> LocationBatch:
        """Locations ``start`` to ``stop`` (a slice of each field)."""
        return LocationBatch(
            self.uuids[start:stop], self.pixels[start:stop], self.view_mask[start:stop], self.heading_known[start:stop]
        )


def one_location(
    uuid: str, location: LocationUploads, size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LocationBatch:
    """``location`` decoded (:meth:`LocationUploads.decode`) as a batch of one named ``uuid``."""
    return LocationBatch(
        [uuid], location.decode(size, max_pixels)[None], location.view_mask[None], location.known[None]
    )


def location_from_form(
    files: Mapping[str, list[Upload]], others: Mapping[str, list[str]], all_headings: bool = False
) -> LocationUploads:
    """One location's photos from a form: 1 to 4 images in the heading fields and/or :data:`PHOTO_FIELD`.

    Each heading field (``0``, ``90``, ``180``, ``270``) holds at most one photo, which goes
    into its slot; photos in the field ``photo`` (heading unknown) fill the free slots in
    heading order. Nothing is decoded here (see :meth:`LocationUploads.decode`).

    Args:
        files: Field name -> files sent under it.
        others: Field name -> plain (non-file) values sent under it.
        all_headings: Refuse (422) anything but the four heading fields (a model that
            concatenates the views).

    Returns:
        The photos in their slots.

    Raises:
        UploadError: A text value, an unexpected field, a heading field sent twice, no photo or
            more than four (400), a wrong content type (415), or fewer than four headings when
            ``all_headings`` (422); the message names the field.
    """
    accepted = (*HEADING_FIELDS, PHOTO_FIELD)
    for field in others:
        if field in accepted:
            raise UploadError(f"field {field!r} must be an image file, not a text value", field=field)
        raise UploadError(f"unexpected form field {printable(field)!r}; {FIELDS_HINT}", field=field)
    for field, sent in files.items():
        if field not in accepted:
            raise UploadError(f"unexpected file field {printable(field)!r}; {FIELDS_HINT}", field=field)
        if field != PHOTO_FIELD and len(sent) != 1:
            raise UploadError(
                f"field {field!r} holds {len(sent)} files; send at most one per heading "
                f"(photos of unknown heading go in the field {PHOTO_FIELD!r})",
                field=field,
            )
    ordered = [upload for field in accepted for upload in files.get(field, [])]
    if not ordered:
        raise UploadError(f"no photo in the form; {FIELDS_HINT}")
    if len(ordered) > MAX_VIEWS:
        raise UploadError(
            f"{len(ordered)} photos in the form, more than {MAX_VIEWS}; {FIELDS_HINT}", field=ordered[-1].field
        )
    for upload in ordered:
        check_content_type(upload)
    slots: list[Upload | None] = [files[field][0] if field in files else None for field in HEADING_FIELDS]
    known = [True] * MAX_VIEWS
    loose = list(files.get(PHOTO_FIELD, []))
    for slot in range(MAX_VIEWS):
        if slots[slot] is None and loose:
            slots[slot], known[slot] = loose.pop(0), False
    location = LocationUploads(tuple(slots), tuple(known))
    if all_headings and location.missing:
        unknown = len(files.get(PHOTO_FIELD, []))
        what = f"missing heading(s) {', '.join(field for field in HEADING_FIELDS if field not in files)}"
        if unknown:
            what += f" ({unknown} photo(s) of unknown heading in the field {PHOTO_FIELD!r})"
        field = PHOTO_FIELD if unknown else location.missing[0]
        raise UploadError(f"{what}: {ALL_HEADINGS_HINT}", field=field, status=422)
    return location


def views_from_form(
    files: Mapping[str, list[Upload]], others: Mapping[str, list[str]], size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """The four views of one location from a form with exactly the fields ``0``, ``90``, ``180``, ``270``.

    The four-photo case of :func:`location_from_form` (which also takes fewer photos, or photos of
    unknown heading), decoded.

    Returns:
        ``uint8`` array of shape (4, size, size, 3), headings 0/90/180/270 in order.

    Raises:
        UploadError: As :func:`location_from_form` with ``all_headings``, or bytes that are not
            a decodable image; the message names the field.
    """
    return location_from_form(files, others, all_headings=True).decode(size, max_pixels)


def locations_from_fields(
    files: Mapping[str, list[Upload]],
    size: int,
    max_locations: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_request_pixels: int = MAX_REQUEST_PIXELS,
    all_headings: bool = False,
) -> LocationBatch:
    """Several locations from field groups named ``<uuid>/<heading>`` (``loc1/0``, ``loc1/90``, ...).

    A location may send any one to four of its headings.

    Args:
        files: Field name -> files sent under it.
        size: Side the views are resized to, pixels.
        max_locations: Most locations accepted in one request.
        max_pixels: Largest source image accepted (width * height).
        max_request_pixels: Most source pixels all the photos may declare together (413 beyond).
        all_headings: Refuse (422) a location without all four headings (a model that
            concatenates the views).

    Returns:
        The locations in the order first sent, decoded, with their view masks.

    Raises:
        UploadError: A badly named field, an unsafe uuid, too many locations, an undecodable
            image, or (``all_headings``) a location without all four headings; naming the field.
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
    return _stack_groups(groups, size, max_locations, max_pixels, "field", max_request_pixels, all_headings)


def locations_from_zip(
    data: bytes,
    size: int,
    max_locations: int,
    max_member_bytes: int,
    max_total_bytes: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_request_pixels: int = MAX_REQUEST_PIXELS,
    all_headings: bool = False,
) -> LocationBatch:
    """Several locations from a zip in the LUMEN layout.

    Accepted member paths end in ``<uuid>/<heading>.jpg``; the uuid folder may sit at
    the top, under ``data/`` or ``images/``, and all of it under one more folder. A
    location folder holds any one to four of ``0.jpg`` .. ``270.jpg``; a folder beside
    them that holds none is refused, by name. Other members (``data.csv``, ``__MACOSX``
    files) are ignored.

    Args:
        data: The zip file's bytes.
        size: Side the views are resized to, pixels.
        max_locations: Most locations accepted in one zip.
        max_member_bytes: Largest uncompressed image member, bytes.
        max_total_bytes: Largest total of uncompressed image members, bytes (zip-bomb guard).
        max_pixels: Largest source image accepted (width * height).
        max_request_pixels: Most source pixels all the photos may declare together (413 beyond).
        all_headings: Refuse (422) a location without all four headings (a model that
            concatenates the views).

    Returns:
        The locations in sorted uuid order, decoded, with their view masks.

    Raises:
        UploadError: Not a zip, an unsafe location, a location folder without a photo, members
            over the limits, or (``all_headings``) a location without all four headings.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UploadError(f"field 'zip': not a readable zip file ({exc})", field="zip") from exc
    groups: dict[str, dict[str, Upload]] = {}
    parents: set[tuple[str, ...]] = set()  # the folders that hold location folders
    total = 0
    with archive:
        for member in archive.infolist():
            parts = [p for p in member.filename.split("/") if p]
            if member.is_dir() or len(parts) < 2 or parts[-1] not in VIEW_FILES or parts[0] == "__MACOSX":
                continue
            prefix, uuid = parts[:-2], parts[-2]
            parents.add(tuple(prefix))
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
        _check_no_empty_folder(archive, parents, groups)
    return _stack_groups(
        dict(sorted(groups.items())), size, max_locations, max_pixels, "zip", max_request_pixels, all_headings
    )


def _check_no_empty_folder(
    archive: zipfile.ZipFile, parents: set[tuple[str, ...]], groups: Mapping[str, Mapping[str, Upload]]
) -> None:
    """Refuse a folder beside the location folders (in a folder that holds some) without any view file."""
    for member in archive.infolist():
        parts = [p for p in member.filename.split("/") if p]
        if not parts or parts[0] == "__MACOSX":
            continue
        for parent in parents:
            depth = len(parent)
            inside = len(parts) > depth + (0 if member.is_dir() else 1)  # a folder of parent's, or in one
            if inside and tuple(parts[:depth]) == parent and parts[depth] not in groups:
                folder = printable("/".join([*parent, parts[depth]]) + "/")
                raise UploadError(
                    f"zip folder {folder!r} holds no photo: a location folder needs at least one of "
                    f"{', '.join(VIEW_FILES)}",
                    field=folder,
                )


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
    all_headings: bool = False,
) -> LocationBatch:
    if not groups:
        where = "the zip" if source == "zip" else "the form"
        raise UploadError(
            f"{where} holds no location (expected <uuid>/0.jpg .. <uuid>/270.jpg, one to four of them)", field=source
        )
    if len(groups) > max_locations:
        raise UploadError(
            f"{len(groups)} locations in one request; the limit is {max_locations}", field=source, status=413
        )
    if all_headings:
        for uuid, views in groups.items():
            missing = [h for h in HEADING_FIELDS if h not in views]
            if missing:
                field = f"{uuid}/{missing[0]}"
                raise UploadError(
                    f"location {uuid!r} lacks heading(s) {', '.join(missing)} ({field!r}): {ALL_HEADINGS_HINT}",
                    field=field,
                    status=422,
                )
    check_pixel_budget([upload for views in groups.values() for upload in views.values()], budget, source)
    locations = [
        LocationUploads(tuple(views.get(h) for h in HEADING_FIELDS), (True,) * MAX_VIEWS) for views in groups.values()
    ]
    return LocationBatch(
        list(groups),
        np.stack([location.decode(size, max_pixels) for location in locations]),
        np.stack([location.view_mask for location in locations]),
        np.ones((len(locations), MAX_VIEWS), dtype=bool),
    )
