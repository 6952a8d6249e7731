"""Croatian projected coordinate systems and the min-max scaler of projected points."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_CRS = "EPSG:3766"
"""HTRS96 / Croatia LCC, the projected CRS used unless another is chosen."""

SUPPORTED_CRS = ("EPSG:3766", "EPSG:3765")


def check_crs(crs: str) -> str:
    """Return ``crs`` when it is one of :data:`SUPPORTED_CRS`; refuse it otherwise."""
    if crs not in SUPPORTED_CRS:
        from geoguess_utils.errors import ConfigError

        raise ConfigError(f"unsupported CRS {crs!r}; choose one of {', '.join(SUPPORTED_CRS)}")
    return crs


@functools.lru_cache(maxsize=8)
def _transformer(source: str, target: str):  # noqa: ANN202 - pyproj type
    from pyproj import Transformer

    return Transformer.from_crs(source, target, always_xy=True)


def to_projected(lat_deg: ArrayLike, lon_deg: ArrayLike, crs: str = DEFAULT_CRS) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 degrees to a Croatian CRS.

    Args:
        lat_deg: Latitudes in degrees, shape (N,) or scalar.
        lon_deg: Longitudes in degrees, same shape.
        crs: ``"EPSG:3766"`` (default) or ``"EPSG:3765"``.

    Returns:
        ``(x_m, y_m)``: easting and northing in metres, float64 arrays of the input shape.
    """
    x, y = _transformer("EPSG:4326", check_crs(crs)).transform(
        np.asarray(lon_deg, dtype=np.float64), np.asarray(lat_deg, dtype=np.float64)
    )
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_latlon(x_m: ArrayLike, y_m: ArrayLike, crs: str = DEFAULT_CRS) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_projected`: metres in a Croatian CRS back to WGS84 degrees.

    Args:
        x_m: Eastings in metres, shape (N,) or scalar.
        y_m: Northings in metres, same shape.
        crs: The CRS the metres are in.

    Returns:
        ``(lat_deg, lon_deg)`` as float64 arrays of the input shape.
    """
    lon, lat = _transformer(check_crs(crs), "EPSG:4326").transform(
        np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)
    )
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)


@dataclass(frozen=True)
class MinMaxScaler:
    """Maps projected metres to [0, 1] per axis, using bounds fitted on training rows.

    Attributes:
        x_min: Smallest training easting, metres.
        x_max: Largest training easting, metres.
        y_min: Smallest training northing, metres.
        y_max: Largest training northing, metres.
    """

    x_min: float
    x_max: float
    y_min: float
    y_max: float

    @classmethod
    def fit(cls, x_m: ArrayLike, y_m: ArrayLike) -> MinMaxScaler:
        """Fit on training coordinates only (fitting on validation rows would leak them).

        Args:
            x_m: Training eastings in metres, shape (N,), N >= 1.
            y_m: Training northings in metres, shape (N,).

        Raises:
            ValueError: When there are no finite coordinates to fit on.
        """
        x = np.asarray(x_m, dtype=np.float64)
        y = np.asarray(y_m, dtype=np.float64)
        if x.size == 0 or not np.isfinite(x).all() or not np.isfinite(y).all():
            raise ValueError("MinMaxScaler.fit needs at least one point and only finite coordinates")
        return cls(float(x.min()), float(x.max()), float(y.min()), float(y.max()))

    def _spans(self) -> tuple[float, float]:
        # A single training point gives a zero span; 1 m keeps the maths finite.
        return max(self.x_max - self.x_min, 1.0), max(self.y_max - self.y_min, 1.0)

    def transform(self, x_m: ArrayLike, y_m: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Scale metres to [0, 1] (values outside the training range fall outside [0, 1])."""
        sx, sy = self._spans()
        return (np.asarray(x_m, dtype=np.float64) - self.x_min) / sx, (
            np.asarray(y_m, dtype=np.float64) - self.y_min
        ) / sy

    def inverse_transform(self, x_scaled: ArrayLike, y_scaled: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Map scaled values back to metres."""
        sx, sy = self._spans()
        return (
            np.asarray(x_scaled, dtype=np.float64) * sx + self.x_min,
            np.asarray(y_scaled, dtype=np.float64) * sy + self.y_min,
        )

    def to_dict(self) -> dict[str, float]:
        """Plain-float form, safe to store in a ``weights_only`` checkpoint."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> MinMaxScaler:
        """Rebuild a scaler from :meth:`to_dict` output."""
        return cls(**{k: float(data[k]) for k in ("x_min", "x_max", "y_min", "y_max")})
