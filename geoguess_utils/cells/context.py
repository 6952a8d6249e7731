"""GeoContext: everything fitted on the training split, in one serialisable object.

A context holds the projection, the min-max scaler and the class table. It is fitted
on training locations only and stored inside every checkpoint as a plain dictionary,
so prediction needs nothing but the checkpoint and the images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.cells import square
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders, projection

CentroidKind = Literal["weighted", "clipped", "geometric"]
CENTROID_KINDS: tuple[str, ...] = ("weighted", "clipped", "geometric")
CONTEXT_FORMAT = 1


@dataclass
class GeoContext:
    """Projection, scaler and classes fitted on training locations.

    Attributes:
        crs: Projected CRS, e.g. ``"EPSG:3766"``.
        spacing_deg: Grid cell side in degrees.
        variant: Croatia variant the grid was built on.
        centroid: Which class point predictions use: ``"weighted"`` (mean training
            position), ``"clipped"`` (cell centroid moved onto land) or ``"geometric"``.
        scaler: Min-max scaler of projected training coordinates.
        class_table: One row per class, columns :data:`geoguess_utils.cells.square.CLASS_TABLE_COLUMNS`.
    """

    crs: str
    spacing_deg: float
    variant: str
    centroid: str
    scaler: projection.MinMaxScaler
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
    ) -> GeoContext:
        """Fit a context on training locations (never on validation or test rows).

        Args:
            train_lat: Training latitudes, degrees, shape (N,).
            train_lon: Training longitudes, degrees, shape (N,).
            spacing_deg: Grid cell side in degrees.
            crs: Projected CRS for scaling and centroids.
            variant: Croatia variant for the grid and for clipping.
            centroid: Which class point predictions use.
        """
        if centroid not in CENTROID_KINDS:
            raise ConfigError(f"unknown centroid kind {centroid!r}; choose one of {', '.join(CENTROID_KINDS)}")
        x, y = projection.to_projected(train_lat, train_lon, crs)
        table = square.fit_class_table(square.build_grid(spacing_deg, variant), train_lat, train_lon, crs, variant)
        return cls(crs, float(spacing_deg), variant, centroid, projection.MinMaxScaler.fit(x, y), table)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_table)

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
        """Class index per location, shape (N,) int64."""
        return square.assign_classes(self.class_table, lat, lon)

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
        """Plain dict of str, int, float and lists: safe in a ``weights_only`` checkpoint."""
        columns = {}
        for name in square.CLASS_TABLE_COLUMNS:
            values = self.class_table[name].to_numpy()
            columns[name] = [int(v) for v in values] if values.dtype.kind in "iu" else [float(v) for v in values]
        return {
            "format": CONTEXT_FORMAT,
            "crs": self.crs,
            "spacing_deg": float(self.spacing_deg),
            "variant": self.variant,
            "centroid": self.centroid,
            "scaler": self.scaler.to_dict(),
            "class_table": columns,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeoContext:
        """Rebuild a context from :meth:`to_dict` output.

        Raises:
            ConfigError: When the dict is from an unknown format or misses fields.
        """
        if data.get("format") != CONTEXT_FORMAT:
            raise ConfigError(f"unsupported GeoContext format {data.get('format')!r} (expected {CONTEXT_FORMAT})")
        try:
            table = pd.DataFrame({name: data["class_table"][name] for name in square.CLASS_TABLE_COLUMNS})
            return cls(
                crs=str(data["crs"]),
                spacing_deg=float(data["spacing_deg"]),
                variant=str(data["variant"]),
                centroid=str(data["centroid"]),
                scaler=projection.MinMaxScaler.from_dict(data["scaler"]),
                class_table=table,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"GeoContext dict is incomplete or malformed: {exc}") from exc

    def fingerprint(self) -> str:
        """Short hex digest of :meth:`to_dict`: equal contexts give equal fingerprints."""
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]
