"""GeoContext: everything fitted on the training split, in one serialisable object.

A context holds the projection, the min-max scaler, the cell scheme (its parameters
and cells) and the class table. It is fitted on training locations only and stored
inside every checkpoint as a plain dictionary, so prediction needs nothing but the
checkpoint and the images.

Dict formats: 1 stored square bounds in the class table; 2 stores the scheme's name,
parameters and cell polygons next to a class table of counts and class points.
:meth:`GeoContext.from_dict` reads both.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.cells import frame as cells_frame_module
from geoguess_utils.cells.scheme import CLASS_COLUMNS, CellScheme, geometry_to_plain, get_scheme
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, projection

CentroidKind = Literal["weighted", "clipped", "geometric"]
CENTROID_KINDS: tuple[str, ...] = ("weighted", "clipped", "geometric")
CONTEXT_FORMAT = 2
READABLE_FORMATS: tuple[int, ...] = (1, 2)


@dataclass
class GeoContext:
    """Projection, scaler, cell scheme and classes fitted on training locations.

    Attributes:
        crs: Projected CRS, e.g. ``"EPSG:3766"``.
        variant: Croatia variant the cells were built on.
        centroid: Which class point predictions use: ``"weighted"`` (mean training
            position), ``"clipped"`` (cell centroid moved onto land) or ``"geometric"``.
        scaler: Min-max scaler of projected training coordinates.
        scheme: The fitted cell scheme (:class:`geoguess_utils.cells.scheme.CellScheme`):
            its name, parameters and the K cells in class order.
        class_table: One row per class: :data:`geoguess_utils.cells.scheme.CLASS_COLUMNS`
            plus the scheme's own columns (the square scheme adds its bounds, giving
            :data:`geoguess_utils.cells.square.CLASS_TABLE_COLUMNS`).
    """

    crs: str
    variant: str
    centroid: str
    scaler: projection.MinMaxScaler
    scheme: CellScheme
    class_table: pd.DataFrame = field(repr=False)

    @classmethod
    def fit(
        cls,
        train_lat: ArrayLike,
        train_lon: ArrayLike,
        spacing_deg: float = 0.3,
        crs: str = projection.DEFAULT_CRS,
        variant: borders.Variant = "mainland",
        centroid: CentroidKind = "weighted",
        scheme: str | CellScheme = "square",
        scheme_params: Mapping[str, Any] | None = None,
    ) -> GeoContext:
        """Fit a context on training locations (never on validation or test rows).

        Args:
            train_lat: Training latitudes, degrees, shape (N,).
            train_lon: Training longitudes, degrees, shape (N,).
            spacing_deg: Cell side in degrees, for schemes that take a ``spacing_deg``.
            crs: Projected CRS for scaling and centroids.
            variant: Croatia variant for the cells and for clipping.
            centroid: Which class point predictions use.
            scheme: A registered scheme name (built with :meth:`CellScheme.from_options`
                from ``spacing_deg`` and ``scheme_params``), or an unfitted scheme instance
                with its own parameters.
            scheme_params: Parameters of the named scheme, e.g. ``{"max_per_cell": 40}``
                (see :meth:`CellScheme.from_params`); not allowed with a scheme instance.

        Raises:
            ConfigError: Unknown centroid kind, variant, scheme or scheme parameter.
        """
        if centroid not in CENTROID_KINDS:
            raise ConfigError(f"unknown centroid kind {centroid!r}; choose one of {', '.join(CENTROID_KINDS)}")
        borders.check_variant(variant)
        # A given instance is copied, so fitting never changes the caller's scheme.
        if isinstance(scheme, CellScheme) and scheme_params:
            raise ConfigError("scheme_params are for a scheme given by name; this scheme instance has its own")
        cells = (
            copy.deepcopy(scheme)
            if isinstance(scheme, CellScheme)
            else get_scheme(scheme).from_params(scheme_params, spacing_deg=spacing_deg, crs=crs)
        )
        cells.fit(train_lat, train_lon, variant)
        table = cells.class_table(train_lat, train_lon, crs, variant)
        x, y = projection.to_projected(train_lat, train_lon, crs)
        return cls(crs, variant, centroid, projection.MinMaxScaler.fit(x, y), cells, table)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_table)

    @property
    def scheme_name(self) -> str:
        """Registered name of the cell scheme, e.g. ``"square"``."""
        return self.scheme.name

    @property
    def spacing_deg(self) -> float | None:
        """The scheme's ``spacing_deg`` parameter (square cell side, degrees); ``None`` for schemes without one."""
        value = self.scheme.params().get("spacing_deg")
        return None if value is None else float(value)

    @property
    def description(self) -> str:
        """How the cells were made, in one line.

        ``"square 0.3 deg grid, mainland, EPSG:3766"`` for the seed's grid, otherwise the
        scheme's name and parameters, e.g. ``"county_split cells (max_per_cell 32,
        min_per_cell 8), mainland, EPSG:3766"``.
        """
        if self.scheme_name == "square" and self.spacing_deg is not None:
            return f"square {self.spacing_deg:g} deg grid, {self.variant}, {self.crs}"
        params = {k: v for k, v in self.scheme.params().items() if k != "crs" or v != self.crs}
        shown = f" ({', '.join(f'{k} {v:g}' if isinstance(v, float) else f'{k} {v}' for k, v in params.items())})"
        return f"{self.scheme_name} cells{shown if params else ''}, {self.variant}, {self.crs}"

    def cell_polygons(self) -> np.ndarray:
        """The K cells in class order: object array of shapely polygons, EPSG:4326 degrees."""
        return self.scheme.polygons

    def cells_frame(self):  # noqa: ANN201 - GeoDataFrame
        """The classes as polygons: what maps, figures and per-cell errors read.

        Returns:
            GeoDataFrame in EPSG:4326, one row per class in class order, with the class
            table's columns (``class_index``, ``cell_id``, ``n_train``, the class points,
            the scheme's own columns) and the cell polygon as ``geometry``; ``attrs``
            names the scheme (``attrs["cell_scheme"] = {"name", "params"}``).
        """
        import geopandas as gpd

        frame = gpd.GeoDataFrame(
            self.class_table.reset_index(drop=True).copy(),
            geometry=list(self.cell_polygons()),
            crs=cells_frame_module.CELLS_CRS,
        )
        frame.attrs[cells_frame_module.SCHEME_ATTR] = {"name": self.scheme_name, "params": self.scheme.params()}
        return frame

    def centroids_latlon(self, kind: str | None = None) -> np.ndarray:
        """Class points as a (K, 2) float64 array of ``[lat, lon]`` degrees.

        Args:
            kind: Centroid kind; defaults to the context's own.
        """
        kind = kind or self.centroid
        if kind not in CENTROID_KINDS:
            raise ConfigError(f"unknown centroid kind {kind!r}")
        return self.class_table[[f"{kind}_lat", f"{kind}_lon"]].to_numpy(dtype=np.float64)

    def centroids_xy(self, kind: str | None = None) -> np.ndarray:
        """Class points as a (K, 2) float64 array of projected ``[x, y]`` metres."""
        lat_lon = self.centroids_latlon(kind)
        x, y = projection.to_projected(lat_lon[:, 0], lat_lon[:, 1], self.crs)
        return np.column_stack([x, y])

    def assign(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Class index per location, shape (N,) int64 (the scheme's rule; nearest cell when in none)."""
        return self.scheme.assign(lat, lon)

    def enrich(self, df: pd.DataFrame) -> pd.DataFrame:
        """Add projected, scaled and class columns to a table of labelled locations.

        Args:
            df: Frame with ``latitude`` and ``longitude`` columns (degrees, finite).

        Returns:
            A copy with ``x_m``, ``y_m``, ``x_scaled``, ``y_scaled``, ``class_index``,
            ``centroid_lat`` and ``centroid_lon`` added.
        """
        out = df.copy()
        lat = out["latitude"].to_numpy(dtype=np.float64)
        lon = out["longitude"].to_numpy(dtype=np.float64)
        out["x_m"], out["y_m"] = projection.to_projected(lat, lon, self.crs)
        out["x_scaled"], out["y_scaled"] = self.scaler.transform(out["x_m"], out["y_m"])
        classes = self.assign(lat, lon)
        out["class_index"] = classes
        centres = self.centroids_latlon()[classes]
        out["centroid_lat"], out["centroid_lon"] = centres[:, 0], centres[:, 1]
        return out

    def scaled_to_latlon(self, x_scaled: ArrayLike, y_scaled: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Scaled ``[0, 1]`` coordinates back to ``(lat, lon)`` degrees."""
        x, y = self.scaler.inverse_transform(x_scaled, y_scaled)
        return projection.to_latlon(x, y, self.crs)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of str, int, float and lists: safe in a ``weights_only`` checkpoint.

        Returns:
            ``{"format": 2, "crs", "variant", "centroid", "scaler": dict, "scheme":
            CellScheme.to_dict(), "class_table": {column: list} for CLASS_COLUMNS}``.
        """
        columns = {}
        for name in CLASS_COLUMNS:
            values = self.class_table[name].to_numpy()
            columns[name] = [int(v) for v in values] if values.dtype.kind in "iu" else [float(v) for v in values]
        return {
            "format": CONTEXT_FORMAT,
            "crs": self.crs,
            "variant": self.variant,
            "centroid": self.centroid,
            "scaler": self.scaler.to_dict(),
            "scheme": self.scheme.to_dict(),
            "class_table": columns,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeoContext:
        """Rebuild a context from :meth:`to_dict` output, of this format or format 1.

        Raises:
            ConfigError: When the dict is from an unknown format, misses fields, or its
                class table does not match its cells.
        """
        if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"unsupported GeoContext format {found!r} (readable: {READABLE_FORMATS})")
        try:
            if data["format"] == 1:
                data = upgrade_format_1(data)
            scheme = CellScheme.from_dict(data["scheme"])
            table = pd.DataFrame({name: data["class_table"][name] for name in CLASS_COLUMNS})
            _check_table(table, scheme)
            return cls(
                crs=str(data["crs"]),
                variant=str(borders.check_variant(str(data["variant"]))),
                centroid=str(data["centroid"]),
                scaler=projection.MinMaxScaler.from_dict(data["scaler"]),
                scheme=scheme,
                class_table=scheme.table_with_cell_columns(table),
            )
        except (KeyError, TypeError, ValueError, DataError) as exc:
            raise ConfigError(f"GeoContext dict is incomplete or malformed: {exc}") from exc

    def fingerprint(self) -> str:
        """Short hex digest of :meth:`to_dict`: equal contexts give equal fingerprints."""
        return dict_fingerprint(self.to_dict())


def dict_fingerprint(data: dict[str, Any]) -> str:
    """Short hex digest of a context dict exactly as stored (of any format).

    A checkpoint records the fingerprint of the dict it was written with, so an older
    file is checked against its own dict, not against the converted context.
    """
    payload = json.dumps(data, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def _check_table(table: pd.DataFrame, scheme: CellScheme) -> None:
    """Refuse a stored class table that does not describe the stored cells, in order."""
    if len(table) != scheme.num_cells:
        raise ConfigError(
            f"class table has {len(table)} rows but the {scheme.name} scheme holds {scheme.num_cells} cells"
        )
    if table["class_index"].tolist() != list(range(len(table))):
        raise ConfigError("class table: class_index must be 0..K-1 in order")
    if table["cell_id"].astype(np.int64).tolist() != scheme.cell_ids.tolist():
        raise ConfigError("class table: cell_id differs from the scheme's cells")


def upgrade_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """A format-1 context dict (square bounds in the class table) in format 2.

    Args:
        data: Format-1 dict: ``crs``, ``spacing_deg``, ``variant``, ``centroid``,
            ``scaler`` and a ``class_table`` with ``lon_min``/``lat_min``/``lon_max``/``lat_max``.

    Returns:
        The same context as a format-2 dict with a ``square`` scheme.
    """
    from geoguess_utils.cells import square

    old = data["class_table"]
    boxes = square.box_polygons(pd.DataFrame({name: old[name] for name in square.BOX_COLUMNS}))
    return {
        "format": 2,
        "crs": data["crs"],
        "variant": data["variant"],
        "centroid": data["centroid"],
        "scaler": data["scaler"],
        "scheme": {
            "name": "square",
            "params": {"spacing_deg": float(data["spacing_deg"])},
            "cell_ids": [int(v) for v in old["cell_id"]],
            "cells": [geometry_to_plain(box) for box in boxes],
        },
        "class_table": {name: list(old[name]) for name in CLASS_COLUMNS},
    }
