"""Great-circle error metrics and summaries of predictions (NumPy and pandas only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from geoguess_utils.errors import DataError
from geoguess_utils.geo import distance, projection

if TYPE_CHECKING:
    pass

THRESHOLDS_KM: tuple[int, ...] = (1, 25, 200, 750)
"""Distances (km) at which the share of close-enough predictions is reported."""

MEAN_NAME = "mean_km"
"""Logged name of the mean great-circle error, e.g. ``val/mean_km``."""


@dataclass
class Predictions:
    """Predicted and true points of a set of locations.

    Attributes:
        table: One row per location: ``uuid``, ``true_lat``, ``true_lon``,
            ``pred_lat``, ``pred_lon`` (degrees), ``error_km`` (NaN without truth) and
            the view paths ``path_0`` ... ``path_270``.
        probabilities: Class probabilities, shape (N, K), rows in ``table`` order,
            columns in ``class_index`` order; ``None`` for a regression model.
        task_name: ``"classification"`` or ``"regression"``.
        class_table: The model's classes with their cell polygons
            (``GeoContext.cells_frame()``: the class table plus ``geometry``).
        non_finite: Per location (N,) bool: whether the network's outputs held NaN or
            infinity (its point is then the model's fallback point and means nothing);
            ``None`` when not recorded.
    """

    table: pd.DataFrame
    probabilities: np.ndarray | None
    task_name: str
    class_table: pd.DataFrame
    non_finite: np.ndarray | None = None

    @property
    def non_finite_count(self) -> int:
        """How many locations had non-finite network outputs (0 when not recorded)."""
        return 0 if self.non_finite is None else int(np.count_nonzero(self.non_finite))

    @property
    def labelled(self) -> bool:
        """Whether every location has a true position (and thus an error)."""
        return bool(np.isfinite(self.table["error_km"].to_numpy(dtype=np.float64)).all())


def metric_names(thresholds_km: Sequence[float] = THRESHOLDS_KM) -> list[str]:
    """Names :class:`HaversineMetrics` reports, in order: mean, median, then each ``acc_<t>_km``."""
    return [MEAN_NAME, "median_km", *(f"acc_{_label(t)}_km" for t in thresholds_km)]


def _label(threshold_km: float) -> str:
    return str(int(threshold_km)) if float(threshold_km).is_integer() else str(threshold_km)


def summarise_km(distances_km: ArrayLike, thresholds_km: Sequence[float] = THRESHOLDS_KM) -> dict[str, float]:
    """Mean, median and within-threshold shares of a set of errors.

    Args:
        distances_km: Errors in km, shape (N,), N >= 1.
        thresholds_km: Thresholds for the ``acc_<t>_km`` shares.

    Returns:
        ``{"mean_km", "median_km", "acc_<t>_km" for each threshold, "count"}``; shares are
        fractions in [0, 1].
    """
    d = np.asarray(distances_km, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("no distances to summarise")
    out: dict[str, float] = {"mean_km": float(d.mean()), "median_km": float(np.median(d))}
    for t in thresholds_km:
        out[f"acc_{_label(t)}_km"] = float(np.mean(d <= t))
    out["count"] = int(d.size)
    return out


# ----------------------------------------------------------------------------- baselines

_MEDIAN_ITERATIONS = 200
_MEDIAN_TOLERANCE_M = 1.0


def _latlon_columns(points: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise DataError(f"{what} must be an (N, 2) array of [lat, lon] degrees with N >= 1, got shape {array.shape}")
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array).all(axis=1))[:5].tolist()
        raise DataError(f"{what} holds non-finite coordinates in rows {rows}")
    if (np.abs(array[:, 0]) > 90).any() or (np.abs(array[:, 1]) > 180).any():
        raise DataError(
            f"{what} holds impossible coordinates (latitude must be in [-90, 90], longitude in [-180, 180])"
        )
    return array[:, 0], array[:, 1]


def mean_position(latlon: ArrayLike) -> tuple[float, float]:
    """The mean of a set of points, taken in projected metres (EPSG:3766) and mapped back.

    Args:
        latlon: Points, shape (N, 2), ``[lat, lon]`` degrees.

    Returns:
        ``(lat, lon)`` degrees of the mean.
    """
    lat, lon = _latlon_columns(latlon, "the points")
    x, y = projection.to_projected(lat, lon)
    mid_lat, mid_lon = projection.to_latlon(np.array([x.mean()]), np.array([y.mean()]))
    return float(mid_lat[0]), float(mid_lon[0])


def best_constant(latlon: ArrayLike) -> tuple[float, float]:
    """The one point with the smallest mean distance to a set of points (their geometric median).

    Weiszfeld's iteration in projected metres (EPSG:3766), where straight-line and
    great-circle distances agree to well under 1 % across Croatia.

    Args:
        latlon: Points, shape (N, 2), ``[lat, lon]`` degrees.

    Returns:
        ``(lat, lon)`` degrees of the median point.
    """
    lat, lon = _latlon_columns(latlon, "the points")
    x, y = projection.to_projected(lat, lon)
    points = np.column_stack([x, y])
    current = np.median(points, axis=0)
    for _ in range(_MEDIAN_ITERATIONS):
        gaps = np.linalg.norm(points - current, axis=1)
        weights = 1.0 / np.maximum(gaps, 1e-6)  # a point sitting on the estimate keeps a large, finite weight
        updated = (weights[:, None] * points).sum(axis=0) / weights.sum()
        moved = float(np.linalg.norm(updated - current))
        current = updated
        if moved < _MEDIAN_TOLERANCE_M:
            break
    mid_lat, mid_lon = projection.to_latlon(np.array([current[0]]), np.array([current[1]]))
    return float(mid_lat[0]), float(mid_lon[0])


def constant_error_km(point: tuple[float, float], latlon: ArrayLike) -> float:
    """Mean great-circle error (km) of predicting ``point`` (lat, lon degrees) for every point (N, 2)."""
    lat, lon = _latlon_columns(latlon, "the evaluated points")
    return float(np.mean(distance.haversine_km(lat, lon, point[0], point[1])))


def baselines(train_latlon: ArrayLike | None, eval_latlon: ArrayLike) -> dict[str, float]:
    """What a model that ignores the photos scores on the evaluated locations.

    Args:
        train_latlon: Training locations, shape (M, 2), ``[lat, lon]`` degrees; ``None``
            when the training split is not known (the mean baseline is then left out).
        eval_latlon: Evaluated (true) locations, shape (N, 2), ``[lat, lon]`` degrees.

    Returns:
        ``baseline_best_constant_km``: mean km of the single point that is best for the
        evaluated locations (their geometric median: no constant guess does better, so
        a model above it has learned nothing usable). With ``train_latlon`` also
        ``baseline_mean_km``: mean km of always predicting the training split's mean
        position, the honest "no photos" guess.

    Raises:
        DataError: Malformed or non-finite coordinates.
    """
    out = {"baseline_best_constant_km": constant_error_km(best_constant(eval_latlon), eval_latlon)}
    if train_latlon is not None:
        out["baseline_mean_km"] = constant_error_km(mean_position(train_latlon), eval_latlon)
    return out


# ----------------------------------------------------------------------------- errors


def summarise(predictions: Predictions | pd.DataFrame) -> dict[str, float]:
    """Mean and median error and the shares within 1/25/200/750 km (see :func:`geoguess_utils.evaluation.summarise_km`).

    Raises:
        DataError: When some location has no true position.
    """
    table = predictions.table if isinstance(predictions, Predictions) else predictions
    errors = table["error_km"].to_numpy(dtype=np.float64)
    if not np.isfinite(errors).all():
        missing = table.loc[~np.isfinite(errors), "uuid"].head(5).tolist()
        raise DataError(f"some locations have no true position, e.g. {missing}: their error is unknown")
    return summarise_km(errors)


def compare(runs: Mapping[str, Predictions | pd.DataFrame]) -> pd.DataFrame:
    """The summary of several models side by side, one row per model.

    Args:
        runs: ``{model name: predictions}``.

    Returns:
        Columns ``mean_km``, ``median_km``, ``acc_<t>_km`` and ``count``, indexed by name.
    """
    return pd.DataFrame({name: summarise(p) for name, p in runs.items()}).T.astype({"count": int})


def prediction_spread(predictions: Predictions | pd.DataFrame) -> dict[str, float]:
    """How far points lie from their own mean position, for the true and the predicted points.

    A model that is unsure hedges towards the middle of the country, so its predictions
    spread less than the truth (for the ideal mean-squared-error predictor this follows
    from the law of total variance).

    Returns:
        ``{"true_km": ..., "pred_km": ...}``: mean great-circle distance of the true,
        respectively predicted, points to their mean (computed in projected metres).
    """
    table = predictions.table if isinstance(predictions, Predictions) else predictions
    out = {}
    for name in ("true", "pred"):
        lat = table[f"{name}_lat"].to_numpy(dtype=np.float64)
        lon = table[f"{name}_lon"].to_numpy(dtype=np.float64)
        x, y = projection.to_projected(lat, lon)
        mid_lat, mid_lon = projection.to_latlon(np.array([x.mean()]), np.array([y.mean()]))
        out[f"{name}_km"] = float(distance.haversine_km(lat, lon, mid_lat[0], mid_lon[0]).mean())
    return out


def per_cell_errors(predictions: Predictions) -> pd.DataFrame:
    """Errors grouped by the cell the true location falls in.

    Args:
        predictions: Labelled predictions; ``class_table`` is a cells frame
            (``GeoContext.cells_frame()``) or another table
            :func:`geoguess_utils.cells.frame.as_cells_frame` accepts.

    Returns:
        GeoDataFrame with one row per class of the model (``class_index`` order):
        ``class_index``, ``cell_id``, the cell's bounding box ``lon_min``, ``lat_min``,
        ``lon_max``, ``lat_max`` (degrees), ``n_train`` (training locations of the
        class), ``n`` (predicted locations in it), ``mean_error_km``,
        ``median_error_km`` (NaN where ``n`` is 0) and the cell polygon as ``geometry``.
    """
    from geoguess_utils.cells import frame as cell_frames

    summarise(predictions)  # refuses unlabelled predictions
    cells = cell_frames.as_cells_frame(predictions.class_table)
    if "n_train" not in cells.columns:
        raise DataError(f"the class table lacks 'n_train' (training locations per class); it has {list(cells.columns)}")
    frame = predictions.table
    classes = cell_frames.assign_to_cells(cells, frame["true_lat"], frame["true_lon"])
    stats = pd.DataFrame({"class_index": classes, "error_km": frame["error_km"].to_numpy()}).groupby("class_index")
    errors = stats["error_km"]
    import geopandas as gpd
    import shapely

    bounds = shapely.bounds(cells.geometry.to_numpy())
    out = pd.DataFrame(
        {
            "class_index": cells["class_index"].to_numpy(dtype=np.int64),
            "cell_id": cells["cell_id" if "cell_id" in cells.columns else "class_index"].to_numpy(dtype=np.int64),
            "lon_min": bounds[:, 0],
            "lat_min": bounds[:, 1],
            "lon_max": bounds[:, 2],
            "lat_max": bounds[:, 3],
            "n_train": cells["n_train"].to_numpy(dtype=np.int64),
        }
    )
    out["n"] = out["class_index"].map(errors.size()).fillna(0).astype(np.int64)
    out["mean_error_km"] = out["class_index"].map(errors.mean())
    out["median_error_km"] = out["class_index"].map(errors.median())
    return gpd.GeoDataFrame(out, geometry=list(cells.geometry.to_numpy()), crs=cells.crs)
