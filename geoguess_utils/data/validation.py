"""Validate LUMEN dataset roots: every problem named by file, line and uuid."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import (
    CSV_NAME,
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    LOCATION_COLUMNS,
    PATH_COLUMNS,
    VIEW_FILES,
)
from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS, find_image_dir, is_safe_uuid, printable, read_data_csv
from geoguess_utils.data.view_files import escapes, view_file_problem
from geoguess_utils.errors import DataError
from geoguess_utils.io import atomic_write_csv

REPORT_COLUMNS: tuple[str, ...] = ("uuid", "file", "kind", "message")

DEFAULT_COAST_TOLERANCE_KM = 5.0
"""Distance from Natural Earth's (coarse, 10m) Croatia within which a point still counts as Croatian."""
_JPEG_END = b"\xff\xd9"

PROBLEM_KINDS: tuple[str, ...] = (
    "bad_uuid",
    "duplicate_uuid",
    "missing_folder",
    "missing_row",
    "missing_image",
    "extra_image",
    "extra_file",
    "unreadable_image",
    "truncated_image",
    "not_jpeg",
    "image_too_large",
    "unexpected_size",
    "unexpected_mode",
    "nan_coordinate",
    "swapped_coordinates",
    "outside_croatia",
    "outside_root",
    "not_a_file",
)
"""Every kind of problem :func:`validate_roots` can report."""

WARNING_KINDS: tuple[str, ...] = ("missing_view",)
"""What :func:`validate_roots` reports as a warning: the location stays usable (with fewer views)."""
_FORMULA_START = ("=", "+", "-", "@")


def _report_cell(value: object) -> str:
    """A report CSV cell: :func:`printable`, and never read as a formula by a spreadsheet."""
    text = printable(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        uuid: The location concerned (empty for a stray file that belongs to none).
        file: The file or folder at fault, as a path string.
        kind: One of :data:`PROBLEM_KINDS`.
        message: What is wrong, in words a user can act on.
    """

    uuid: str
    file: str
    kind: str
    message: str


@dataclass
class ValidationReport:
    """Everything :func:`validate_roots` found.

    Attributes:
        problems: Every problem, in the order found (roots in the order given).
        locations: Every location seen (CSV rows and folders), with columns
            :data:`LOCATION_COLUMNS`; rows whose uuid is unsafe are not included.
            Latitude and longitude are NaN where unknown; paths are empty strings
            where the uuid has no folder.
        n_images: How many image files were checked.
        warnings: Things that leave a location usable, in the order found: a view missing
            from a folder that has others (kind ``missing_view``; its path is empty in
            ``locations``, and the models that take any views use the others).
    """

    problems: list[Problem] = field(default_factory=list)
    locations: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(LOCATION_COLUMNS)))
    n_images: int = 0
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def bad_uuids(self) -> set[str]:
        """Uuids that have at least one problem."""
        return {p.uuid for p in self.problems if p.uuid}

    def clean_locations(self) -> pd.DataFrame:
        """The locations without any problem, index reset."""
        bad = self.bad_uuids()
        keep = ~self.locations["uuid"].isin(bad)
        return self.locations[keep].reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        """Problems as a DataFrame with columns uuid, file, kind, message (text as found)."""
        return pd.DataFrame([vars(p) for p in self.problems], columns=list(REPORT_COLUMNS))

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write the problems to a CSV (atomically) and return its path.

        Cells are made :func:`printable` (one problem per line) and a leading ``=``, ``+``,
        ``-`` or ``@`` gets a ``'`` in front, so a spreadsheet shows it instead of running it.
        """
        return atomic_write_csv(self.to_frame().map(_report_cell), path)

    def format(self) -> str:
        """Every problem and warning on its own line (dataset text made :func:`printable`), then a one-line summary."""
        lines = [format_problem(p) for p in [*self.problems, *self.warnings]]
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: how much was checked and how many problems of each kind."""
        n_loc = len(self.locations)
        fewer = len({w.uuid for w in self.warnings if w.kind == "missing_view"})
        note = f"; warning: {fewer} locations have fewer than four views (missing_view)" if fewer else ""
        if self.ok:
            return f"checked {n_loc} locations and {self.n_images} images: no problems{note}"
        counts = Counter(p.kind for p in self.problems)
        detail = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
        return (
            f"checked {n_loc} locations and {self.n_images} images: {len(self.problems)} problems "
            f"({detail}) affecting {len(self.bad_uuids())} locations{note}"
        )


def format_problem(problem: Problem) -> str:
    """One report line: uuid, kind, file and message, tab-separated, each :func:`printable`.

    A uuid with spaces around it is shown quoted (``' a1'``), so it does not look like ``a1``.
    """
    uuid = problem.uuid or "-"
    if uuid != uuid.strip():
        uuid = repr(uuid)
    fields = (uuid, problem.kind, problem.file, problem.message)
    return "\t".join(printable(field) for field in fields)


@dataclass
class _RootScan:
    root: Path
    image_dir: Path
    csv_path: Path | None
    rows: pd.DataFrame | None
    folders: dict[str, str]


def _scan_root(root: Path, problems: list[Problem]) -> _RootScan:
    image_dir = find_image_dir(root)
    csv_path = root / CSV_NAME
    rows = read_data_csv(csv_path) if csv_path.is_file() else None
    folders: dict[str, str] = {}
    with os.scandir(image_dir) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = entry.path
            if not entry.is_dir():
                kind = "extra_image" if entry.name.lower().endswith(IMAGE_SUFFIXES) else "extra_file"
                problems.append(Problem("", path, kind, f"{path}: stray file in {image_dir}, not in a uuid folder"))
                continue
            if not is_safe_uuid(entry.name):
                problems.append(
                    Problem(entry.name, path, "bad_uuid", f"{path}: folder name is not a plain uuid; skipped")
                )
                continue
            outside = escapes(path, image_dir) if entry.is_symlink() else None
            if outside is not None:
                problems.append(
                    Problem(
                        entry.name,
                        path,
                        "outside_root",
                        f"{path}: symbolic link resolves to {outside}, outside {image_dir}; refusing it",
                    )
                )
                continue
            folders[entry.name] = path
    return _RootScan(root, image_dir, csv_path if rows is not None else None, rows, folders)


def _check_rows(scan: _RootScan, problems: list[Problem]) -> pd.DataFrame:
    """Check the CSV rows of one root; return its safe rows (uuid, latitude, longitude, line)."""
    rows = scan.rows
    assert rows is not None and scan.csv_path is not None
    csv = scan.csv_path
    safe = rows["uuid"].map(is_safe_uuid).to_numpy(dtype=bool)
    for row in rows[~safe].itertuples():
        problems.append(
            Problem(
                "" if not row.uuid else row.uuid,
                str(csv),
                "bad_uuid",
                f"{csv} line {row.line}: uuid {row.uuid!r} is not a plain folder name "
                f"(it could point outside {scan.image_dir}); refusing this row",
            )
        )
    rows = rows[safe]
    lines_by_uuid = rows.groupby("uuid", sort=False)["line"].apply(list)
    for uuid, lines in lines_by_uuid[lines_by_uuid.map(len) > 1].items():
        problems.append(
            Problem(
                uuid,
                str(csv),
                "duplicate_uuid",
                f"{csv}: uuid {uuid} appears {len(lines)} times (lines {', '.join(map(str, lines))})",
            )
        )
    for row in rows.itertuples():
        if row.uuid not in scan.folders:
            problems.append(
                Problem(
                    row.uuid,
                    str(csv),
                    "missing_folder",
                    f"{csv} line {row.line}: uuid {row.uuid} has no folder {scan.image_dir / row.uuid}",
                )
            )
        for axis in ("latitude", "longitude"):
            if not np.isfinite(getattr(row, axis)):
                text = getattr(row, f"{axis}_text")
                problems.append(
                    Problem(
                        row.uuid,
                        str(csv),
                        "nan_coordinate",
                        f"{csv} line {row.line}: uuid {row.uuid} has {axis} {text!r}, not a finite number",
                    )
                )
    return rows


def _check_coordinates(rows: pd.DataFrame, csv: Path, tolerance_km: float, problems: list[Problem]) -> None:
    finite = rows[np.isfinite(rows["latitude"]) & np.isfinite(rows["longitude"])]
    if finite.empty:
        return
    from geoguess_utils.geo import borders

    lat = finite["latitude"].to_numpy()
    lon = finite["longitude"].to_numpy()
    inside = borders.is_on_land(lat, lon, "full", tolerance_km=tolerance_km)
    if inside.all():
        return
    out = finite[~inside]
    swapped = borders.is_on_land(out["longitude"].to_numpy(), out["latitude"].to_numpy(), "full", tolerance_km)
    for row, is_swapped in zip(out.itertuples(), swapped, strict=True):
        where = f"{csv} line {row.line}: uuid {row.uuid} at latitude {row.latitude}, longitude {row.longitude}"
        if is_swapped:
            problems.append(
                Problem(
                    row.uuid,
                    str(csv),
                    "swapped_coordinates",
                    f"{where} is outside Croatia, but swapping the two gives a point in Croatia: "
                    f"latitude and longitude look exchanged",
                )
            )
        else:
            problems.append(
                Problem(
                    row.uuid,
                    str(csv),
                    "outside_croatia",
                    f"{where} is more than {tolerance_km:g} km from Croatia",
                )
            )


@dataclass
class _ImageInfo:
    path: str
    uuid: str
    size: tuple[int, int] | None = None
    mode: str | None = None
    problem: Problem | None = None


def _inspect_image(path: str, uuid: str, deep: bool, max_pixels: int) -> _ImageInfo:
    """Read one image's header (and, when ``deep``, decode it) without raising."""
    from PIL import Image, UnidentifiedImageError

    info = _ImageInfo(path, uuid)
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            info.size, info.mode = image.size, image.mode
            width, height = image.size
            if width * height > max_pixels:
                info.problem = Problem(
                    uuid,
                    str(path),
                    "image_too_large",
                    f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels "
                    f"(possible decompression bomb); refusing to decode it",
                )
                return info
            if image.format != "JPEG":
                info.problem = Problem(uuid, str(path), "not_jpeg", f"{path}: is a {image.format} file, not a JPEG")
                return info
            if deep:
                image.load()
        if not deep:
            with open(path, "rb") as handle:
                handle.seek(-2, os.SEEK_END)
                if handle.read(2) != _JPEG_END:
                    info.problem = Problem(
                        uuid,
                        str(path),
                        "truncated_image",
                        f"{path}: JPEG does not end with the end-of-image marker; the file is truncated",
                    )
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        info.problem = Problem(uuid, str(path), "unreadable_image", f"{path}: not a readable image ({exc})")
    except OSError as exc:
        text = str(exc)
        kind = "truncated_image" if "truncated" in text.lower() else "unreadable_image"
        info.problem = Problem(uuid, str(path), kind, f"{path}: cannot decode the image ({text})")
    except (ValueError, SyntaxError) as exc:  # Pillow raises these for some malformed headers
        info.problem = Problem(uuid, str(path), "unreadable_image", f"{path}: malformed image ({exc})")
    except Exception as exc:  # a decoder failing in any other way on hostile bytes
        info.problem = Problem(
            uuid, str(path), "unreadable_image", f"{path}: malformed image ({type(exc).__name__}: {exc})"
        )
    return info


def _check_folder(
    uuid: str,
    folder: str,
    problems: list[Problem],
    image_dir: Path | None = None,
    warnings: list[Problem] | None = None,
) -> list[str]:
    """List one location folder; report missing, extra and escaping files; return the images present.

    With ``warnings`` given, a missing view of a folder that holds at least one view is a
    ``missing_view`` warning there instead of a problem; a folder without any view is a
    problem either way.

    A view is refused without being opened when it leads outside ``image_dir`` (a link of
    the file or of its folder: reading it would read, and a map would show, a file from
    elsewhere) or is no regular file (a FIFO would block for ever, a link loop cannot be
    resolved); see :func:`geoguess_utils.data.view_files.view_file_problem`.
    """
    try:
        names = {name for name in os.listdir(folder) if not name.startswith(".")}
    except OSError as exc:
        problems.append(Problem(uuid, folder, "missing_image", f"{folder}: cannot list the folder ({exc})"))
        return []
    present = []
    absent = []
    for name in VIEW_FILES:
        path = os.path.join(folder, name)
        refused = view_file_problem(path, image_dir if image_dir is not None else folder) if name in names else None
        if refused is not None:
            kind, reason = refused
            problems.append(Problem(uuid, path, kind, f"{path}: {reason}"))
            continue
        if name in names:
            present.append(path)
        else:
            absent.append(path)
    have = ", ".join(sorted(names)) or "nothing"
    views_left = len(VIEW_FILES) - len(absent)  # a refused view is there (and a problem of its own)
    if warnings is not None and not views_left:
        message = f"{absent[0]}: missing, and so are the other views (the folder holds {have}); a location needs one"
        problems.append(Problem(uuid, absent[0], "missing_image", message))
        absent = []
    for path in absent:
        if warnings is not None:
            warnings.append(Problem(uuid, path, "missing_view", f"{path}: missing (the folder holds {have})"))
        else:
            problems.append(Problem(uuid, path, "missing_image", f"{path}: missing (the folder holds {have})"))
    for name in sorted(names - set(VIEW_FILES)):
        path = os.path.join(folder, name)
        kind = "extra_image" if name.lower().endswith(IMAGE_SUFFIXES) else "extra_file"
        problems.append(
            Problem(
                uuid, path, kind, f"{path}: unexpected file; a location folder holds exactly {', '.join(VIEW_FILES)}"
            )
        )
    return present


def _check_images(
    images: list[tuple[str, str]],
    *,
    deep: bool,
    expected_size: tuple[int, int] | None,
    expected_mode: str,
    max_pixels: int,
    workers: int,
    problems: list[Problem],
) -> None:
    def inspect(item: tuple[str, str]) -> _ImageInfo:
        return _inspect_image(item[1], item[0], deep, max_pixels)

    if workers > 1 and len(images) > 64:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            infos = list(pool.map(inspect, images))
    else:
        infos = [inspect(item) for item in images]
    sizes = Counter(info.size for info in infos if info.size is not None and info.problem is None)
    target = expected_size
    if target is None and sizes:
        target = sizes.most_common(1)[0][0]
    for info in infos:
        if info.problem is not None:
            problems.append(info.problem)
            continue
        if target is not None and info.size != tuple(target):
            source = "expected" if expected_size is not None else "most images are"
            problems.append(
                Problem(
                    info.uuid,
                    info.path,
                    "unexpected_size",
                    f"{info.path}: image is {info.size[0]}x{info.size[1]} pixels, {source} {target[0]}x{target[1]}",
                )
            )
        if info.mode != expected_mode:
            problems.append(
                Problem(
                    info.uuid,
                    info.path,
                    "unexpected_mode",
                    f"{info.path}: image mode is {info.mode}, expected {expected_mode}",
                )
            )


def validate_roots(
    roots: Sequence[str | os.PathLike[str]],
    *,
    deep: bool = False,
    expected_size: tuple[int, int] | None = None,
    expected_mode: str = "RGB",
    coast_tolerance_km: float = DEFAULT_COAST_TOLERANCE_KM,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    require_labels: bool = False,
    workers: int | None = None,
    require_four_views: bool = False,
) -> ValidationReport:
    """Check one or more LUMEN roots and report every problem.

    Checks: each CSV row has a folder and each folder (in a root with ``data.csv``) a
    row; each folder holds one to four views and nothing else (a missing view is a
    ``missing_view`` warning, or a problem with ``require_four_views``); every view is a readable JPEG of the
    expected size and mode that ends with the end-of-image marker; coordinates are
    numbers inside Croatia (within ``coast_tolerance_km``), with swapped latitude and
    longitude recognised; uuids are plain folder names and unique within and across
    roots.

    By default only image headers and the last two bytes are read, so 16,000 folders
    take seconds; ``deep=True`` decodes every image (catches corrupt data in the middle).

    Args:
        roots: Dataset roots, each holding ``data/`` or ``images/`` and usually ``data.csv``.
        deep: Decode every image completely.
        expected_size: Required ``(width, height)`` in pixels; ``None`` flags images whose
            size differs from the most common size.
        expected_mode: Required Pillow mode (``"RGB"``; grayscale is ``"L"``).
        coast_tolerance_km: How far outside Natural Earth's Croatia a point may lie.
        max_pixels: Images with more pixels are refused without decoding.
        require_labels: Raise when a root has no ``data.csv``.
        workers: Threads reading images. Defaults to 1 for header checks (they are
            Python-bound: more threads only contend for the interpreter on files in the
            page cache) and ``min(8, cpu count)`` for ``deep`` (decoding runs in parallel).
        require_four_views: Report a missing view as a problem (``missing_image``), not as
            a warning.

    Returns:
        The report; its ``locations`` holds every location seen.

    Raises:
        DataError: When a root is missing, has no (or two) image folders, its CSV cannot
            be read or lacks a required column, or ``require_labels`` is set and a root
            has no ``data.csv``. These make the whole root unusable, so they are raised
            at once rather than listed.
    """
    if not roots:
        raise DataError("no dataset roots given")
    if workers is None:
        workers = min(8, os.cpu_count() or 1) if deep else 1
    problems: list[Problem] = []
    notes: list[Problem] | None = None if require_four_views else []
    tables: list[pd.DataFrame] = []
    images: list[tuple[str, str]] = []
    seen_in: dict[str, list[Path]] = defaultdict(list)
    for root_like in roots:
        root = Path(root_like)
        scan = _scan_root(root, problems)
        if scan.rows is None and require_labels:
            raise DataError(f"dataset root {root} has no {CSV_NAME}; locations used for training need coordinates")
        if scan.rows is not None:
            rows = _check_rows(scan, problems)
            _check_coordinates(rows, scan.csv_path, coast_tolerance_km, problems)  # type: ignore[arg-type]
            listed = set(rows["uuid"])
            for uuid in sorted(set(scan.folders) - listed):
                folder = scan.folders[uuid]
                problems.append(Problem(uuid, folder, "missing_row", f"{folder}: folder has no row in {scan.csv_path}"))
            coords = rows.drop_duplicates("uuid")[["uuid", "latitude", "longitude"]]
            extra = sorted(set(scan.folders) - listed)
            if extra:
                coords = pd.concat(
                    [coords, pd.DataFrame({"uuid": extra, "latitude": np.nan, "longitude": np.nan})], ignore_index=True
                )
        else:
            names = sorted(scan.folders)
            coords = pd.DataFrame({"uuid": names, "latitude": np.nan, "longitude": np.nan})
        coords = coords.astype({"latitude": np.float64, "longitude": np.float64})
        for uuid in coords["uuid"]:
            seen_in[uuid].append(root)
        paths = {column: [] for column in PATH_COLUMNS}
        for uuid in coords["uuid"]:
            folder = scan.folders.get(uuid)
            if folder is None:
                for column in PATH_COLUMNS:
                    paths[column].append("")
                continue
            before = len(notes or [])
            for path in _check_folder(uuid, folder, problems, scan.image_dir, notes):
                images.append((uuid, path))
            absent = {problem.file for problem in (notes or [])[before:]}
            for column, name in zip(PATH_COLUMNS, VIEW_FILES, strict=True):
                path = os.path.join(folder, name)
                paths[column].append("" if path in absent else path)
        table = coords.assign(root=str(root), **paths)
        tables.append(table[list(LOCATION_COLUMNS)])
    for uuid, where in seen_in.items():
        if len(where) > 1:
            problems.append(
                Problem(
                    uuid,
                    ", ".join(str(r) for r in where),
                    "duplicate_uuid",
                    f"uuid {uuid} appears in {len(where)} dataset roots: {', '.join(str(r) for r in where)}",
                )
            )
    _check_images(
        images,
        deep=deep,
        expected_size=expected_size,
        expected_mode=expected_mode,
        max_pixels=max_pixels,
        workers=workers,
        problems=problems,
    )
    locations = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(LOCATION_COLUMNS))
    return ValidationReport(problems=problems, locations=locations, n_images=len(images), warnings=notes or [])
