"""Search regions of predictions: the cells (or the disc) that hold the truth with a chosen probability.

A region needs a checkpoint's GeoContext and its :class:`~geoguess_utils.tasks.calibration.Calibration`
(``geoguess calibrate``, or the end of ``geoguess fit``). :class:`SearchRegions` turns one task
output row, or a whole table of them, into regions: the columns ``geoguess predict --region``
writes, a GeoJSON feature per location, and the dict the server answers with
(:meth:`SearchRegions.region`). Areas: a classifier's region is the sum of its cells' areas,
measured in the context's projected CRS; a disc's is ``pi r^2``, not clipped to land.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.geo import regions as geometry
from geoguess_utils.geo.distance import haversine_km
from geoguess_utils.tasks.calibration import DEFAULT_COVERAGE, Calibration, cell_set_order, check_coverage

if TYPE_CHECKING:
    from geoguess_utils.tasks.base import GeoTask

COVERAGE_COLUMN = "region_coverage"
"""Nominal coverage of the region (the ``c`` asked for)."""
AREA_COLUMN = "region_km2"
"""Area of the region, km² (cells: the sum of their areas; disc: ``pi r^2``, not clipped to land)."""
CELLS_COLUMN = "region_cells"
"""Classifiers: the region's cell ids (the class table's ``cell_id``), most probable first, separated by spaces."""
RADIUS_COLUMN = "region_radius_km"
"""Discs: the region's radius, km (``inf`` when the validation split was too small for the coverage)."""

NO_CALIBRATION = "has no calibration; run geoguess calibrate --ckpt CKPT (it fits one on the run's validation split)"
"""End of the message that refuses regions of a checkpoint without a calibration."""


class SearchRegions:
    """Regions of one model: its cells and their areas, and its calibration.

    Build it once per model (a classifier's cell areas are measured then) and ask it for
    regions of any coverage.

    Args:
        context: The checkpoint's GeoContext (cells in lon/lat, projected CRS, class table).
        calibration: The checkpoint's calibration.
    """

    def __init__(self, context: GeoContext, calibration: Calibration) -> None:
        self.context = context
        self.calibration = calibration
        self._areas_km2: np.ndarray | None = None

    @classmethod
    def of_task(cls, task: GeoTask, source: str = "the checkpoint") -> SearchRegions:
        """The regions of a loaded task.

        Raises:
            CheckpointError: The task has no context, or no calibration (the message says to
                run ``geoguess calibrate``).
        """
        if task.context is None:
            raise CheckpointError(f"{source} has no GeoContext")
        if task.calibration is None:
            raise CheckpointError(f"{source} {NO_CALIBRATION}")
        return cls(task.context, task.calibration)

    @classmethod
    def of_checkpoint(cls, path: str, record: dict[str, Any]) -> SearchRegions:
        """The regions of a checkpoint from its geoguess record alone (no network is built).

        Raises:
            CheckpointError: The record has no calibration, or an unusable context.
        """
        from geoguess_utils.checkpoints.record import CALIBRATION_FIELD

        stored = record.get(CALIBRATION_FIELD)
        if stored is None:
            raise CheckpointError(f"{path} {NO_CALIBRATION}")
        try:
            context = GeoContext.from_dict(record["context"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: the stored GeoContext is unusable: {exc}") from exc
        return cls(context, Calibration.from_dict(stored, path))

    @property
    def kind(self) -> str:
        """``"cells"`` or ``"disc"``."""
        return self.calibration.kind

    def cell_areas_km2(self) -> np.ndarray:
        """Area of each cell in class order, km² (K,), measured in the context's projected CRS."""
        if self._areas_km2 is None:
            self._areas_km2 = geometry.polygon_areas_km2(self.context.cell_polygons(), self.context.crs)
        return self._areas_km2

    def region(
        self,
        coverage: float = DEFAULT_COVERAGE,
        *,
        probabilities: ArrayLike | None = None,
        latlon: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """The search region of one location, as the server and the map want it.

        Args:
            coverage: Nominal coverage ``c`` in ``(0, 1)``.
            probabilities: Classifiers: the reported (calibrated) class probabilities of the
                location, shape (K,), as ``predict_step`` returns them.
            latlon: Discs: the predicted point ``(lat, lon)`` in degrees.

        Returns:
            ``{"coverage": c, "area_km2": float, "geojson": GeoJSON Feature}`` (lon/lat degrees;
            its properties repeat coverage and area and add ``cells`` or ``radius_km``). The
            geometry is ``None`` and the area ``inf`` for a disc whose radius is unbounded
            (a validation split too small for ``c``).

        Raises:
            ConfigError: A bad coverage, or the input the calibration's kind needs is missing.
        """
        if self.kind == "cells":
            if probabilities is None:
                raise ConfigError("a classifier's region needs its probabilities (K,)")
            table = self.table(coverage, probabilities=np.asarray(probabilities, dtype=np.float64)[None, :])
        else:
            if latlon is None:
                raise ConfigError("a disc region needs the predicted point (lat, lon)")
            table = self.table(coverage, latlon=np.asarray(latlon, dtype=np.float64).reshape(1, 2))
        feature = self.features(table, latlon=None if latlon is None else [tuple(latlon)])[0]
        return {
            "coverage": float(table[COVERAGE_COLUMN].iloc[0]),
            "area_km2": feature_area(feature),
            "geojson": feature,
        }

    def table(
        self,
        coverage: float = DEFAULT_COVERAGE,
        *,
        probabilities: ArrayLike | None = None,
        latlon: ArrayLike | None = None,
    ) -> pd.DataFrame:
        """The region columns of many locations.

        Args:
            coverage: Nominal coverage ``c`` in ``(0, 1)``.
            probabilities: Classifiers: reported class probabilities, shape (N, K).
            latlon: Discs: predicted points ``[lat, lon]`` degrees, shape (N, 2).

        Returns:
            One row per location: :data:`COVERAGE_COLUMN`, :data:`AREA_COLUMN` and
            :data:`CELLS_COLUMN` (cells) or :data:`RADIUS_COLUMN` (disc).
        """
        c = check_coverage(coverage)
        threshold = self.calibration.threshold(c)
        if self.kind == "cells":
            if probabilities is None:
                raise ConfigError("a classifier's regions need the class probabilities (N, K)")
            p = np.asarray(probabilities, dtype=np.float64)
            if p.ndim != 2 or p.shape[1] != self.context.num_classes:
                raise ConfigError(f"probabilities of shape {p.shape} do not match {self.context.num_classes} cells")
            order, size = cell_set_order(p, threshold)
            ids = self.context.class_table["cell_id"].to_numpy(dtype=np.int64)
            areas = self.cell_areas_km2()
            cells = [order[i, : size[i]] for i in range(len(p))]
            return pd.DataFrame(
                {
                    COVERAGE_COLUMN: np.full(len(p), c),
                    AREA_COLUMN: [float(areas[chosen].sum()) for chosen in cells],
                    CELLS_COLUMN: [" ".join(str(v) for v in ids[chosen]) for chosen in cells],
                }
            )
        if latlon is None:
            raise ConfigError("disc regions need the predicted points (N, 2)")
        n = len(np.asarray(latlon).reshape(-1, 2))
        return pd.DataFrame(
            {
                COVERAGE_COLUMN: np.full(n, c),
                AREA_COLUMN: np.full(n, geometry.disc_area_km2(threshold)),
                RADIUS_COLUMN: np.full(n, threshold),
            }
        )

    def features(
        self, table: pd.DataFrame, latlon: ArrayLike | None = None, uuids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """One GeoJSON Feature per row of :meth:`table`: the union of its cells, or its geodesic disc.

        Args:
            table: Region columns, one row per location.
            latlon: Discs: the predicted points ``[lat, lon]`` degrees, shape (N, 2).
            uuids: Location ids, put in each feature's properties.

        Returns:
            Features in lon/lat degrees, properties ``uuid`` (when given), ``coverage``,
            ``area_km2`` (``None`` when unbounded) and ``cells`` (list of cell ids) or ``radius_km``.
        """
        out = []
        index_of = {int(v): i for i, v in enumerate(self.context.class_table["cell_id"].to_numpy(dtype=np.int64))}
        polygons = self.context.cell_polygons()
        points = None if latlon is None else np.asarray(latlon, dtype=np.float64).reshape(-1, 2)
        for i, row in enumerate(table.to_dict("records")):
            area = float(row[AREA_COLUMN])
            properties: dict[str, Any] = {} if uuids is None else {"uuid": str(uuids[i])}
            properties.update(coverage=float(row[COVERAGE_COLUMN]), area_km2=area if math.isfinite(area) else None)
            if self.kind == "cells":
                ids = [int(v) for v in str(row[CELLS_COLUMN]).split()]
                properties["cells"] = ids
                shape = geometry.union_geojson([polygons[index_of[v]] for v in ids])
            else:
                if points is None:
                    raise ConfigError("disc regions need the predicted points to draw")
                radius = float(row[RADIUS_COLUMN])
                properties["radius_km"] = radius if math.isfinite(radius) else None
                shape = geometry.geodesic_disc(points[i, 0], points[i, 1], radius) if math.isfinite(radius) else None
            out.append(geometry.feature(shape, properties))
        return out

    def covered(self, table: pd.DataFrame) -> np.ndarray:
        """Whether each location's region holds its true location.

        Args:
            table: Region columns plus ``true_lat``, ``true_lon`` (cells) and ``pred_lat``,
                ``pred_lon`` (disc), degrees.

        Returns:
            (N,) bool.
        """
        return covered(table, self.context)


def feature_area(feature: dict[str, Any]) -> float:
    """A region feature's area in km² (``inf`` when unbounded)."""
    area = feature["properties"]["area_km2"]
    return math.inf if area is None else float(area)


def region_columns(table: pd.DataFrame) -> list[str]:
    """The region columns a predictions table holds (empty when it has none)."""
    return [c for c in (COVERAGE_COLUMN, AREA_COLUMN, CELLS_COLUMN, RADIUS_COLUMN) if c in table.columns]


def covered(table: pd.DataFrame, context: GeoContext | None = None) -> np.ndarray:
    """Whether each row's region holds its true location (the empirical coverage is the mean).

    Args:
        table: Rows with :data:`CELLS_COLUMN` and ``true_lat``, ``true_lon`` (degrees), or
            :data:`RADIUS_COLUMN` and ``true_lat``, ``true_lon``, ``pred_lat``, ``pred_lon``.
        context: The model's GeoContext; needed for cells (the true point is placed in its
            cell by the context's rule: the nearest cell when it falls in none).

    Returns:
        (N,) bool.

    Raises:
        ConfigError: Cells without a context, or no region column.
    """
    true_lat = table["true_lat"].to_numpy(dtype=np.float64)
    true_lon = table["true_lon"].to_numpy(dtype=np.float64)
    if CELLS_COLUMN in table.columns:
        if context is None:
            raise ConfigError("placing true points in the region's cells needs the model's checkpoint")
        ids = context.class_table["cell_id"].to_numpy(dtype=np.int64)[context.assign(true_lat, true_lon)]
        sets = [set(str(cells).split()) for cells in table[CELLS_COLUMN].fillna("")]
        return np.array([str(cell) in chosen for cell, chosen in zip(ids, sets, strict=True)], dtype=bool)
    if RADIUS_COLUMN in table.columns:
        radius = pd.to_numeric(table[RADIUS_COLUMN], errors="coerce").to_numpy(dtype=np.float64)
        error = haversine_km(true_lat, true_lon, table["pred_lat"].to_numpy(), table["pred_lon"].to_numpy())
        return np.asarray(error <= radius, dtype=bool)
    raise ConfigError(f"no region column ({CELLS_COLUMN} or {RADIUS_COLUMN}) in the table")


def search_region(
    context: GeoContext,
    calibration: Calibration,
    coverage: float = DEFAULT_COVERAGE,
    *,
    probabilities: ArrayLike | None = None,
    latlon: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The search region of one task output row: ``{"coverage", "area_km2", "geojson"}``.

    A shortcut of :meth:`SearchRegions.region`; a caller answering many requests (the
    server) keeps one :class:`SearchRegions` per model, so the cells' areas are measured once.

    Args:
        context: The checkpoint's GeoContext (``task.context``).
        calibration: The checkpoint's calibration (``task.calibration``).
        coverage: Nominal coverage ``c`` in ``(0, 1)``.
        probabilities: Classifiers: the reported class probabilities (K,) of ``predict_step``.
        latlon: Discs: the predicted ``(lat, lon)`` degrees.
    """
    return SearchRegions(context, calibration).region(coverage, probabilities=probabilities, latlon=latlon)
