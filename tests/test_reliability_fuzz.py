"""Fuzzing the CSV reader and the image loader: every input loads or raises the project's own error.

Random bytes as ``data.csv``, random rows and columns, random bytes as JPEGs, real
JPEGs cut short or with bytes changed: each input must either load or raise a
:class:`~geoguess_utils.errors.GeoguessError` subclass, within a time limit. Any other
exception, or a hang, fails the test and hypothesis shows the smallest input that does it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from geoguess_utils.data import images, layout, reader, validation
from geoguess_utils.errors import DataError, GeoguessError
from geoguess_utils.geo import borders
from geoguess_utils.viz import webmap_html

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")  # corrupt EXIF, by design

FUZZ = settings(
    max_examples=150,
    deadline=None,  # no per-input time limit: a busy machine must not fail the test (no_hang catches hangs)
    derandomize=True,  # the same inputs on every run: a failure is reproducible, the suite stable
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
HANG_SECONDS = 60  # only a hang guard: far above any honest input, even on a busy machine


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail an input that takes longer than ``seconds`` (a hang), instead of waiting for ever."""

    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: the input makes the code hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def lumen_root(workdir) -> Path:
    """A root with two complete locations; each example replaces its data.csv."""
    borders.is_on_land(45.8, 15.97)  # load the outlines once, outside the timed examples
    root = workdir / "root"
    rng = np.random.default_rng(0)
    for uuid in ("a1", "b2"):
        folder = root / "data" / uuid
        folder.mkdir(parents=True)
        for heading in layout.HEADINGS:
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{heading}.jpg", quality=80)
    return root


def _encoded(fmt: str, **options) -> bytes:
    y, x = np.mgrid[0:48, 0:64]
    pixels = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def real_jpeg() -> bytes:
    """A small but real photograph-like JPEG (progressive, with EXIF), as bytes."""
    exif = Image.Exif()
    exif[0x010F] = "fuzz camera"
    return _encoded("JPEG", quality=85, progressive=True, exif=exif)


@pytest.fixture(scope="module")
def real_images(real_jpeg) -> list[bytes]:
    """Real files of the formats a dataset might hold by mistake (all named .jpg when tested)."""
    return [real_jpeg, _encoded("JPEG", quality=60), *(_encoded(f) for f in ("PNG", "GIF", "BMP", "TIFF", "DDS"))]


def _read_csv_or_project_error(path: Path) -> None:
    try:
        with no_hang():
            table = reader.read_data_csv(path)
    except DataError as exc:
        assert str(path) in str(exc)
        return
    assert list(table.columns) == ["uuid", "latitude", "longitude", "latitude_text", "longitude_text", "line"]
    assert table["latitude"].dtype == np.float64 and table["longitude"].dtype == np.float64
    assert table["uuid"].map(type).eq(str).all()


def _validate_or_project_error(root: Path) -> None:
    try:
        with no_hang():
            report = validation.validate_roots([root])
    except GeoguessError:
        return
    text = report.format()  # every problem printable on one line each
    assert text.count("\n") == len(report.problems)
    report.write_csv(root.parent / "report.csv")
    written = pd.read_csv(root.parent / "report.csv", dtype=str, keep_default_na=False)
    assert len(written) == len(report.problems)


# ----------------------------------------------------------------------------- CSV reader

CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["", "nan", "NaN", "inf", "-inf", "1e999", "45.1", "15.9", "16,5", '"', "''", "a1", "b2", "../..", "\x00"]
)
COLUMN = st.sampled_from(["uuid", "latitude", "longitude", "Unnamed: 0", "", "uuid", "source"]) | st.text(max_size=6)


@FUZZ
@given(payload=st.binary(max_size=600))
def test_random_bytes_as_data_csv(payload, workdir, lumen_root):
    path = workdir / "random.csv"
    path.write_bytes(payload)
    _read_csv_or_project_error(path)
    (lumen_root / "data.csv").write_bytes(payload)
    _validate_or_project_error(lumen_root)


@pytest.mark.slow
@FUZZ
@given(
    header=st.lists(COLUMN, min_size=0, max_size=6),
    rows=st.lists(st.lists(CELL, min_size=0, max_size=7), max_size=8),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC, None]),
)
def test_random_rows_and_columns_as_data_csv(header, rows, quoting, workdir, lumen_root):
    if quoting is None:  # written by hand: stray quotes and separators stay as they are
        text = "\n".join(",".join(cells) for cells in [header, *rows])
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=quoting)
        for cells in [header, *rows]:
            writer.writerow(cells)
        text = buffer.getvalue()
    path = lumen_root / "data.csv"
    path.write_text(text, encoding="utf-8")
    _read_csv_or_project_error(path)
    _validate_or_project_error(lumen_root)


# ----------------------------------------------------------------------------- image loader


def _load_or_project_error(path: Path) -> None:
    try:
        with no_hang():
            view = images.load_view(path, 16)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert view.shape == (16, 16, 3) and view.dtype == np.uint8
    with no_hang():
        for deep in (False, True):
            info = validation._inspect_image(str(path), "u", deep, reader.DEFAULT_MAX_PIXELS)
            assert info.problem is None or info.problem.kind in validation.PROBLEM_KINDS
    try:
        with no_hang():
            uri = webmap_html.thumbnail_data_uri(path, 24)
    except DataError as exc:
        assert str(path) in str(exc)
    else:
        assert uri.startswith("data:image/jpeg;base64,")


@FUZZ
@given(payload=st.binary(max_size=2000))
def test_random_bytes_as_jpeg(payload, workdir):
    path = workdir / "random.jpg"
    path.write_bytes(payload)
    _load_or_project_error(path)


@FUZZ
@given(payload=st.binary(max_size=400))
def test_random_bytes_after_a_jpeg_header(payload, workdir):
    """Start like a JPEG (SOI, then a marker), so the decoder goes deeper before giving up."""
    path = workdir / "headed.jpg"
    path.write_bytes(b"\xff\xd8\xff" + payload)
    _load_or_project_error(path)


@FUZZ
@given(data=st.data())
def test_truncated_real_jpeg(data, real_jpeg, workdir):
    cut = data.draw(st.integers(min_value=0, max_value=len(real_jpeg)))
    path = workdir / "cut.jpg"
    path.write_bytes(real_jpeg[:cut])
    _load_or_project_error(path)


@FUZZ
@given(data=st.data())
def test_real_images_with_changed_bytes(data, real_images, workdir):
    payload = bytearray(data.draw(st.sampled_from(real_images)))
    n_changes = data.draw(st.integers(min_value=1, max_value=8))
    for _ in range(n_changes):
        where = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
        payload[where] = data.draw(st.integers(min_value=0, max_value=255))
    path = workdir / "changed.jpg"
    path.write_bytes(bytes(payload))
    _load_or_project_error(path)


# ----------------------------------------------------------------------------- what the fuzzers found


# Found by test_real_images_with_changed_bytes: 15 bytes inserted into a PNG's image data,
# so the chunk after it starts in the middle of the data. Pillow opens it, then raises
# SyntaxError("broken PNG file") while decoding, which the map's thumbnail maker let through.
BROKEN_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000400000003008020000002e29eb480000004e49444154789cedcf810980"
    "300004b1b7e8fe2b3b46281c64813cdbde9d9b7d67bb5801ad8056402ba015d00a6805b4025a01ad8056402ba015d00a"
    "6805b4025a01ad8056f181565175adda3a77764d1562f574402ba015d00a6805b41f68d91aa35dd61cd4000000004945"
    "4e44ae426082"
)


def test_png_with_a_damaged_chunk(workdir):
    path = workdir / "png.jpg"
    path.write_bytes(BROKEN_PNG)
    with pytest.raises(DataError, match="cannot make a thumbnail"):
        webmap_html.thumbnail_data_uri(path, 24)
    _load_or_project_error(path)


def test_rare_formats_are_not_decoded(workdir):
    """A DDS file with unknown pixel-format flags made Pillow raise NotImplementedError; rare
    decoders (DDS, EPS via Ghostscript, ...) are no longer tried on dataset files at all."""
    payload = bytearray(_encoded("DDS"))
    payload[80:84] = (0x200000).to_bytes(4, "little")  # ddspf.dwFlags: no format Pillow knows
    path = workdir / "dds.jpg"
    path.write_bytes(bytes(payload))
    with pytest.raises(DataError, match=r"dds\.jpg: cannot decode the image"):
        images.load_view(path, 16)
    problem = validation._inspect_image(str(path), "u", True, reader.DEFAULT_MAX_PIXELS).problem
    assert problem is not None and problem.kind == "unreadable_image"
    eps = workdir / "eps.jpg"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n")
    with pytest.raises(DataError, match="cannot decode"):
        images.load_view(eps, 16)
    with pytest.raises(DataError, match="cannot make a thumbnail"):
        webmap_html.thumbnail_data_uri(eps, 24)
    _load_or_project_error(path)
