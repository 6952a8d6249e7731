"""What stands around a synthetic location: zone, sea, peaks and settlements."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import shapely

from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.datasets.synthetic.styles import ZONES
from geoguess_utils.errors import DataError
from geoguess_utils.geo import borders, distance, projection
from geoguess_utils.geo.places import croatian_places

SOURCE_LABEL = "synthetic"
"""Value of the ``source`` column of every generated row."""

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
PROBE_ANGLES_DEG = np.array([-40.0, -27.0, -13.0, 0.0, 13.0, 27.0, 40.0])
_PROBE_DISTANCES_KM = np.array([0.3, 0.6, 1.0, 1.5, 2.2, 3.0, 4.0, 5.5, 7.0, 9.0, 12.0, 15.0, 19.0, 24.0, 30.0])
PEAK_RANGE_KM = 130.0
_REFRACTED_EARTH_RADIUS_KM = distance.EARTH_RADIUS_KM * 1.15  # standard terrestrial refraction
VERTICAL_EXAGGERATION = 3.0


# --------------------------------------------------------------------------------------
# Cached geography loaders
# --------------------------------------------------------------------------------------


def _project_geometry(geometry: shapely.Geometry) -> shapely.Geometry:
    def project(coords: np.ndarray) -> np.ndarray:
        x, y = projection.to_projected(coords[:, 1], coords[:, 0])
        return np.column_stack([x, y])

    return shapely.transform(geometry, project)


@functools.lru_cache(maxsize=1)
def sea_geometry() -> shapely.Geometry:
    """The Adriatic Sea near Croatia, in EPSG:3766 metres (cached).

    It is the part of the box around Croatia that is not land of any country
    (:func:`geoguess_utils.geo.borders.neighbours_land`), keeping only the piece that holds
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


@functools.lru_cache(maxsize=1)
def _peaks_xy() -> np.ndarray:
    """(P, 4) float64: x_m, y_m, height_m, radius_m of :data:`PEAKS`."""
    lat = np.array([p[1] for p in PEAKS])
    lon = np.array([p[2] for p in PEAKS])
    x, y = projection.to_projected(lat, lon)
    return np.column_stack([x, y, [p[3] for p in PEAKS], [p[4] * 1000.0 for p in PEAKS]])


@functools.lru_cache(maxsize=1)
def _zone_anchors_xy() -> tuple[np.ndarray, np.ndarray]:
    """Anchor positions (A, 3: x_m, y_m, radius_m) and their zone index (A,)."""
    lat = np.array([a[1] for a in _ZONE_ANCHORS])
    lon = np.array([a[2] for a in _ZONE_ANCHORS])
    x, y = projection.to_projected(lat, lon)
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


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _bearing_deg(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def _sea_probes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk out from each point along every heading and probe angle; see :class:`Scenes`."""
    sea = sea_geometry()
    bearings = np.radians(np.asarray(HEADINGS, dtype=float)[:, None] + PROBE_ANGLES_DEG[None, :])  # (4, A)
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
    x, y = projection.to_projected(lat, lon)
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
