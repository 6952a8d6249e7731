"""Write tiny datasets in the LUMEN layout, optionally with planted faults.

Images are generated, never real Street View photos. In the default ``"coded"``
pattern every view is a smooth colour field whose red level encodes the heading and
whose green level encodes the location, so tests can check that views arrive in
heading order and belong to the right uuid. The ``"photo"`` pattern mimics the
statistics of real photographs (smooth structure, texture, noise) for timing.
"""

from __future__ import annotations

import shutil
import uuid as uuid_lib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HEADINGS = (0, 90, 180, 270)

# Croatian towns (lat, lon) away from the coastline, so small jitter stays on land.
TOWNS: tuple[tuple[float, float], ...] = (
    (45.815, 15.982),  # Zagreb
    (45.554, 18.695),  # Osijek
    (45.487, 15.548),  # Karlovac
    (46.305, 16.336),  # Varazdin
    (45.160, 18.016),  # Slavonski Brod
    (45.466, 16.378),  # Sisak
    (45.351, 19.002),  # Vukovar
    (45.898, 16.848),  # Bjelovar
    (44.546, 15.375),  # Gospic
    (44.041, 16.198),  # Knin
    (46.163, 16.833),  # Koprivnica
    (45.340, 17.685),  # Pozega
    (46.384, 16.434),  # Cakovec
    (45.832, 17.384),  # Virovitica
    (45.300, 14.700),  # Gorski kotar
    (43.703, 16.639),  # Sinj
)

OUTSIDE = (48.208, 16.372)  # Vienna

WARNING_FAULTS: dict[str, str] = {"missing_view": "missing_view"}
"""Planted faults the validator reports as warnings (the location stays usable)."""

FAULTS: dict[str, str] = {
    # planted fault -> problem kind the validator must report
    "missing_image": "missing_image",  # every view gone (one missing view is a warning: "missing_view")
    "extra_image": "extra_image",
    "truncated": "truncated_image",
    "unreadable": "unreadable_image",
    "grayscale": "unexpected_mode",
    "wrong_size": "unexpected_size",
    "row_without_folder": "missing_folder",
    "folder_without_row": "missing_row",
    "nan": "nan_coordinate",
    "swapped": "swapped_coordinates",
    "outside": "outside_croatia",
    "duplicate": "duplicate_uuid",
    "traversal": "bad_uuid",
    "corrupt_data": "unreadable_image",  # found only by a deep check
}


@dataclass
class LumenFixture:
    """What :func:`write_lumen_root` wrote.

    Attributes:
        root: The dataset root.
        image_dir: ``root / "data"`` or ``root / "images"``.
        uuids: The good locations' uuids, in CSV order.
        latitude: Their latitudes, degrees.
        longitude: Their longitudes, degrees.
        faults: Planted fault name -> the uuid it was planted on.
    """

    root: Path
    image_dir: Path
    uuids: list[str]
    latitude: np.ndarray
    longitude: np.ndarray
    faults: dict[str, str] = field(default_factory=dict)

    def location_index(self, uuid: str) -> int:
        """Position of a good uuid (its green code in the ``"coded"`` pattern)."""
        return self.uuids.index(uuid)


def coded_level(location: int, heading_index: int) -> tuple[int, int, int]:
    """The mean RGB colour of a view in the ``"coded"`` pattern."""
    return 40 + 50 * heading_index, 30 + (location * 37) % 190, 128


def _coded_image(location: int, heading_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    r, g, b = coded_level(location, heading_index)
    ramp = np.linspace(-12, 12, size)[None, :, None]
    image = np.array([r, g, b], dtype=np.float64)[None, None, :] + ramp
    image = image + rng.normal(0.0, 2.0, (size, size, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _photo_image(size: int, rng: np.random.Generator) -> np.ndarray:
    x = np.arange(size, dtype=np.float32)[None, :] / size
    y = np.arange(size, dtype=np.float32)[:, None] / size
    image = np.empty((size, size, 3), dtype=np.float32)
    image[..., 0] = 0.45 + 0.25 * np.sin(2 * np.pi * (x * rng.uniform(0.5, 2) + rng.uniform()))
    image[..., 1] = 0.5 + 0.2 * np.cos(2 * np.pi * y * rng.uniform(0.5, 2))
    image[..., 2] = 0.35 + 0.3 * x * y
    horizon = int(size * rng.uniform(0.3, 0.5))  # rows above it are a smooth sky
    image[:horizon] = np.array([0.55, 0.7, 0.9], dtype=np.float32) - 0.2 * y[:horizon, :, None]
    block = max(size // 32, 1)
    coarse = rng.standard_normal((size // block + 1, size // block + 1, 3), dtype=np.float32)
    texture = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:size, :size] * 0.06
    texture[:horizon] *= 0.1
    image += texture
    image += rng.standard_normal((size, size, 3), dtype=np.float32) * 0.015
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _scan_start(jpeg: bytes) -> int:
    """Offset of the first byte of entropy-coded data (after the start-of-scan header)."""
    sos = jpeg.index(b"\xff\xda")
    length = int.from_bytes(jpeg[sos + 2 : sos + 4], "big")
    return sos + 2 + length


def _new_uuid(rng: np.random.Generator) -> str:
    return str(uuid_lib.UUID(bytes=rng.bytes(16), version=4))


def write_lumen_root(
    root: str | Path,
    n: int,
    *,
    layout: str = "data",
    image_size: int = 32,
    extra_columns: bool = False,
    faults: tuple[str, ...] = (),
    with_csv: bool = True,
    seed: int = 0,
    pattern: str = "coded",
    quality: int = 90,
    town_offset: int = 0,
) -> LumenFixture:
    """Write ``n`` good locations (plus one per planted fault) in the LUMEN layout.

    Args:
        root: Dataset root to create.
        n: Number of good locations.
        layout: Name of the image folder, ``"data"`` or ``"images"``.
        image_size: Side of the square JPEGs, pixels.
        extra_columns: Write the self-collected CSV layout (unnamed index, sample
            coordinates, status, empty radius, ...) with columns in a shuffled order.
        faults: Names from :data:`FAULTS`; each is planted on an extra location.
        with_csv: Write ``data.csv`` (False gives a predict-only root).
        seed: Seeds uuids, coordinates and pixels.
        pattern: ``"coded"`` (colour encodes location and heading) or ``"photo"``.
        quality: JPEG quality.
        town_offset: Start position in :data:`TOWNS` (spreads roots over Croatia).

    Returns:
        A :class:`LumenFixture` describing the good locations and the faults.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    image_dir = root / layout
    image_dir.mkdir(parents=True, exist_ok=True)
    total = n + len(faults)
    uuids = [_new_uuid(rng) for _ in range(total)]
    towns = np.array([TOWNS[(town_offset + i) % len(TOWNS)] for i in range(total)])
    lat = towns[:, 0] + rng.uniform(-0.01, 0.01, total)
    lon = towns[:, 1] + rng.uniform(-0.01, 0.01, total)

    def write_views(index: int) -> Path:
        folder = image_dir / uuids[index]
        folder.mkdir()
        for h_index, heading in enumerate(HEADINGS):
            if pattern == "coded":
                pixels = _coded_image(index, h_index, image_size, rng)
            else:
                pixels = _photo_image(image_size, rng)
            Image.fromarray(pixels).save(folder / f"{heading}.jpg", quality=quality)
        return folder

    for index in range(total):
        write_views(index)

    lat_text = [repr(float(v)) for v in lat]
    lon_text = [repr(float(v)) for v in lon]
    rows_uuid = list(uuids)
    planted: dict[str, str] = {}
    for offset, fault in enumerate(faults):
        if fault not in FAULTS and fault not in WARNING_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        index = n + offset
        uid = uuids[index]
        folder = image_dir / uid
        planted[fault] = uid
        if fault == "missing_image":
            for name in ("0.jpg", "90.jpg", "180.jpg", "270.jpg"):
                (folder / name).unlink()
        elif fault == "missing_view":
            (folder / "90.jpg").unlink()
        elif fault == "extra_image":
            shutil.copy(folder / "0.jpg", folder / "45.jpg")
        elif fault == "truncated":
            data = (folder / "270.jpg").read_bytes()
            scan = _scan_start(data)
            (folder / "270.jpg").write_bytes(data[: scan + (len(data) - scan) // 2])
        elif fault == "unreadable":
            (folder / "0.jpg").write_bytes(b"this is not an image at all" * 10)
        elif fault == "corrupt_data":
            data = bytearray((folder / "180.jpg").read_bytes())
            scan = _scan_start(bytes(data))
            stop = len(data) - 2
            data[scan:stop] = rng.integers(0, 256, stop - scan, dtype=np.uint8).tobytes()
            (folder / "180.jpg").write_bytes(bytes(data))
        elif fault == "grayscale":
            Image.open(folder / "180.jpg").convert("L").save(folder / "180.jpg", quality=quality)
        elif fault == "wrong_size":
            Image.open(folder / "0.jpg").resize((image_size + 8, image_size + 8)).save(folder / "0.jpg")
        elif fault == "row_without_folder":
            shutil.rmtree(folder)
        elif fault == "folder_without_row":
            rows_uuid[index] = ""
        elif fault == "nan":
            lat_text[index] = ""
        elif fault == "swapped":
            lat_text[index], lon_text[index] = lon_text[index], lat_text[index]
        elif fault == "outside":
            lat_text[index], lon_text[index] = repr(OUTSIDE[0]), repr(OUTSIDE[1])
        elif fault == "duplicate":
            pass  # the row is written twice below
        elif fault == "traversal":
            shutil.rmtree(folder)
            rows_uuid[index] = "../../etc"
            planted[fault] = "../../etc"

    if with_csv:
        keep = [i for i in range(total) if rows_uuid[i]]
        if "duplicate" in planted:
            keep.append(uuids.index(planted["duplicate"]))
        frame = pd.DataFrame(
            {
                "uuid": [rows_uuid[i] for i in keep],
                "latitude": [lat_text[i] for i in keep],
                "longitude": [lon_text[i] for i in keep],
            }
        )
        if extra_columns:
            frame["Unnamed: 0"] = np.arange(len(frame))
            frame["sample_longitude"] = frame["longitude"]
            frame["sample_latitude"] = frame["latitude"]
            frame["row_idx"] = np.arange(len(frame))
            frame["status"] = "OK"
            frame["radius"] = ""
            frame["panorama_id"] = [f"pano{i:05d}" for i in range(len(frame))]
            order = list(frame.columns)
            rng.shuffle(order)
            frame = frame[order]
            frame.to_csv(root / "data.csv")  # keeps a leading unnamed index column, as pandas users write it
        else:
            frame.to_csv(root / "data.csv")  # a leading unnamed index column, as in the organisers' file
    return LumenFixture(root, image_dir, uuids[:n], lat[:n], lon[:n], planted)
