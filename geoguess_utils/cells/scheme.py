"""Cell schemes: how Croatia is cut into the cells a classifier predicts over.

A scheme is a class derived from :class:`CellScheme` and registered under a name with
:func:`register_scheme`. It answers one question, which polygons are the candidate
cells (:meth:`CellScheme.build_cells`), and may refine two more: which cell holds a
point (:meth:`CellScheme.locate`) and which descriptive columns its classes carry
(:meth:`CellScheme.cell_columns`). Everything else is shared:

* :meth:`CellScheme.fit` keeps the candidate cells that hold at least one training
  location, in candidate order; each kept cell is one class;
* :meth:`CellScheme.assign` gives any point its class (the nearest cell when it falls
  in none);
* :meth:`CellScheme.class_table` gives each class its training count and class points
  (``geometric``, ``clipped`` and ``weighted``, see :func:`class_points`);
* :meth:`CellScheme.to_dict` / :meth:`CellScheme.from_dict` store the parameters and the
  kept cells as plain lists, safe in a ``weights_only`` checkpoint.

Cells are shapely polygons in EPSG:4326, coordinates ``(lon, lat)`` in degrees.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike

from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, projection

CLASS_COLUMNS: tuple[str, ...] = (
    "class_index",
    "cell_id",
    "n_train",
    "geometric_lat",
    "geometric_lon",
    "clipped_lat",
    "clipped_lon",
    "weighted_lat",
    "weighted_lon",
)
"""Columns of the class table every scheme gives (schemes may add their own)."""

_BUILTIN_MODULES: tuple[str, ...] = ("geoguess_utils.cells.square", "geoguess_utils.cells.data_driven")
_REGISTRY: dict[str, type[CellScheme]] = {}

SchemeType = TypeVar("SchemeType", bound="type[CellScheme]")


def register_scheme(name: str) -> Callable[[SchemeType], SchemeType]:
    """Class decorator that makes a :class:`CellScheme` subclass available under ``name``.

    Registering the same class again (a module imported twice) is allowed; another
    class under a taken name is refused.

    Args:
        name: Scheme name used in configs and checkpoints, e.g. ``"square"``.

    Raises:
        ConfigError: When the name is empty, taken by another class, or the decorated
            object is not a :class:`CellScheme` subclass.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a cell scheme needs a non-empty name, got {name!r}")

    def decorate(cls: SchemeType) -> SchemeType:
        if not (inspect.isclass(cls) and issubclass(cls, CellScheme)):
            raise ConfigError(f"cell scheme {name!r}: {cls!r} is not a CellScheme subclass")
        known = _REGISTRY.get(name)
        if known is not None and f"{known.__module__}.{known.__qualname__}" != f"{cls.__module__}.{cls.__qualname__}":
            raise ConfigError(f"cell scheme name {name!r} is already taken by {known.__module__}.{known.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def list_schemes() -> list[str]:
    """Names of the registered cell schemes, sorted (the built-in ones included)."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_scheme(name: str) -> type[CellScheme]:
    """The scheme class registered under ``name``.

    Raises:
        ConfigError: When no scheme has that name (the message lists the known ones).
    """
    _load_builtins()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown cell scheme {name!r}; choose one of {', '.join(sorted(_REGISTRY))}") from None


def finite_points(lat: ArrayLike, lon: ArrayLike, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Flatten coordinates to float64 arrays and refuse mismatched or non-finite ones.

    Args:
        lat: Latitudes, degrees, shape (N,).
        lon: Longitudes, degrees, shape (N,).
        what: What the points are, for the error message.

    Raises:
        DataError: When the lengths differ or a coordinate is NaN or infinite.
    """
    lat_a = np.asarray(lat, dtype=np.float64).ravel()
    lon_a = np.asarray(lon, dtype=np.float64).ravel()
    if lat_a.shape != lon_a.shape:
        raise DataError(f"{what}: latitude and longitude have different lengths ({lat_a.size} vs {lon_a.size})")
    bad = np.flatnonzero(~(np.isfinite(lat_a) & np.isfinite(lon_a)))
    if bad.size:
        raise DataError(f"{what}: non-finite coordinates at positions {bad[:10].tolist()}")
    return lat_a, lon_a


def _project_geometries(geometries: np.ndarray, crs: str) -> np.ndarray:
    return shapely.transform(geometries, lambda c: np.column_stack(projection.to_projected(c[:, 1], c[:, 0], crs)))


def locate_in_polygons(
    polygons: ArrayLike, lat: ArrayLike, lon: ArrayLike, crs: str = projection.DEFAULT_CRS
) -> np.ndarray:
    """Position of the polygon holding each point; the nearest polygon when none does.

    Polygons are taken as closed. A point on the boundary of several polygons goes to
    the last of them, so cells ordered west to east and south to north own their west
    and south edges, as half-open boxes do. Distances to find the nearest polygon are
    measured in metres of ``crs``; among equally near polygons the first wins.

    Args:
        polygons: K shapely polygons in EPSG:4326, K >= 1.
        lat: Latitudes, degrees, shape (N,), finite.
        lon: Longitudes, degrees, shape (N,), finite.
        crs: Projected CRS for the nearest-polygon distances.

    Returns:
        int64 array of shape (N,) with values in ``[0, K)``.
    """
    shapes = np.asarray(polygons, dtype=object)
    if shapes.size == 0:
        raise DataError("there are no cells to place points in")
    lat_a, lon_a = finite_points(lat, lon, "locations to place in cells")
    out = np.full(lat_a.size, -1, dtype=np.int64)
    if lat_a.size == 0:
        return out
    tree = shapely.STRtree(shapes)
    points, cells = tree.query(shapely.points(lon_a, lat_a), predicate="covered_by")
    np.maximum.at(out, points, cells)
    missing = np.flatnonzero(out < 0)
    if missing.size:
        x, y = projection.to_projected(lat_a[missing], lon_a[missing], crs)
        near_tree = shapely.STRtree(_project_geometries(shapes, crs))
        which, nearest = near_tree.query_nearest(shapely.points(x, y), all_matches=True)
        best = np.full(missing.size, shapes.size, dtype=np.int64)
        np.minimum.at(best, which, nearest)
        out[missing] = best
    return out


def class_points(
    polygons: ArrayLike,
    classes: ArrayLike,
    train_lat: ArrayLike,
    train_lon: ArrayLike,
    crs: str = projection.DEFAULT_CRS,
    variant: borders.Variant = "mainland",
) -> pd.DataFrame:
    """Training count and the three class points of each cell.

    * ``geometric``: centroid of the cell's part of Croatia, computed in metres of ``crs``;
    * ``clipped``: that centroid moved onto land when it falls at sea or abroad;
    * ``weighted``: mean position (in metres) of the cell's training locations.

    Args:
        polygons: K cells, shapely polygons in EPSG:4326, each holding training locations.
        classes: Cell position of each training location, ints in ``[0, K)``, shape (N,).
        train_lat: Training latitudes, degrees, shape (N,).
        train_lon: Training longitudes, degrees, shape (N,).
        crs: Projected CRS in which centroids and means are computed.
        variant: Which Croatia counts as land.

    Returns:
        K rows with ``n_train`` and ``<kind>_lat`` / ``<kind>_lon`` for the three kinds.

    Raises:
        DataError: When a cell holds no training location or does not touch Croatia.
    """
    shapes = np.asarray(polygons, dtype=object)
    lat, lon = finite_points(train_lat, train_lon, "training locations")
    which = np.asarray(classes, dtype=np.int64).ravel()
    if which.shape != lat.shape:
        raise DataError(f"{which.size} class indices for {lat.size} training locations")
    counts = np.bincount(which, minlength=shapes.size)
    if counts.size != shapes.size or (counts == 0).any():
        raise DataError("every cell must hold at least one training location to get class points")

    land_xy = borders.projected_land(variant, crs)
    centres_xy = shapely.centroid(shapely.intersection(_project_geometries(shapes, crs), land_xy))
    if shapely.is_empty(centres_xy).any():
        empty = np.flatnonzero(shapely.is_empty(centres_xy))
        raise DataError(f"cells at positions {empty[:10].tolist()} do not touch Croatia ({variant})")
    centres = shapely.get_coordinates(centres_xy)
    g_lat, g_lon = projection.to_latlon(centres[:, 0], centres[:, 1], crs)
    c_lat, c_lon = borders.nearest_land_point(g_lat, g_lon, variant)

    x, y = projection.to_projected(lat, lon, crs)
    mean_x = np.bincount(which, weights=x, minlength=shapes.size) / counts
    mean_y = np.bincount(which, weights=y, minlength=shapes.size) / counts
    w_lat, w_lon = projection.to_latlon(mean_x, mean_y, crs)
    return pd.DataFrame(
        {
            "n_train": counts.astype(np.int64),
            "geometric_lat": g_lat,
            "geometric_lon": g_lon,
            "clipped_lat": c_lat,
            "clipped_lon": c_lon,
            "weighted_lat": w_lat,
            "weighted_lon": w_lon,
        }
    )


def _to_lists(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_to_lists(v) for v in value]
    return float(value)


def geometry_to_plain(geometry: shapely.Geometry) -> dict[str, Any]:
    """A polygon as a GeoJSON-like dict of lists of floats (exact, ``weights_only``-safe).

    Raises:
        DataError: When the geometry is not a non-empty Polygon or MultiPolygon.
    """
    if not isinstance(geometry, (shapely.Polygon, shapely.MultiPolygon)) or geometry.is_empty:
        raise DataError(f"a cell must be a non-empty Polygon or MultiPolygon, got {shapely.to_wkt(geometry)[:80]!r}")
    mapping = shapely.geometry.mapping(geometry)
    return {"type": str(mapping["type"]), "coordinates": _to_lists(mapping["coordinates"])}


def geometry_from_plain(data: dict[str, Any]) -> shapely.Geometry:
    """Inverse of :func:`geometry_to_plain`.

    Raises:
        ConfigError: When the dict is not a Polygon or MultiPolygon.
    """
    if not isinstance(data, dict) or data.get("type") not in ("Polygon", "MultiPolygon"):
        raise ConfigError(f"a stored cell must be a Polygon or MultiPolygon dict, got {str(data)[:80]!r}")
    try:
        return shapely.geometry.shape(data)
    except (KeyError, TypeError, ValueError, shapely.errors.GEOSException) as exc:
        raise ConfigError(f"a stored {data['type']} cell is malformed: {exc}") from exc


class CellScheme:
    """Base class of the cell schemes; subclass it and register it with :func:`register_scheme`.

    A subclass implements :meth:`build_cells`, takes its parameters as keyword
    arguments of ``__init__`` (plain str / int / float values) and returns them from
    :meth:`params`. After :meth:`fit` (or :meth:`from_dict`) the scheme holds its K
    kept cells in class order.

    Attributes:
        name: The registered name (set by :func:`register_scheme`).
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        """Start unfitted: no cells yet."""
        self._polygons: np.ndarray | None = None
        self._cell_ids: np.ndarray | None = None

    # ------------------------------------------------------------------ to implement

    def params(self) -> dict[str, Any]:
        """The scheme's parameters as plain values; ``type(self)(**params())`` rebuilds it unfitted."""
        return {}

    def build_cells(
        self, train_lat: np.ndarray, train_lon: np.ndarray, variant: borders.Variant
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate cells over Croatia, before empty ones are dropped.

        Args:
            train_lat: Training latitudes, degrees, shape (N,), finite.
            train_lon: Training longitudes, degrees, shape (N,), finite.
            variant: The Croatia the cells cover (:func:`geoguess_utils.geo.borders.croatia`).

        Returns:
            ``(polygons, cell_ids)``: M shapely polygons in EPSG:4326 and M distinct
            int ids naming the cells (stable for equal parameters).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement build_cells()")

    def locate(self, polygons: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Position among ``polygons`` of the cell holding each point, nearest when none does.

        The default is :func:`locate_in_polygons`; a scheme with a faster or stricter
        rule (the square grid's half-open boxes) overrides it.

        Args:
            polygons: K cells of this scheme, shapely polygons in EPSG:4326.
            lat: Latitudes, degrees, shape (N,), finite.
            lon: Longitudes, degrees, shape (N,), finite.

        Returns:
            int64 array of shape (N,) with values in ``[0, K)``.
        """
        return locate_in_polygons(polygons, lat, lon)

    def cell_columns(self, polygons: np.ndarray) -> dict[str, np.ndarray]:
        """Extra per-class columns the class table carries after ``cell_id`` (none by default).

        Args:
            polygons: The K kept cells in class order.

        Returns:
            Column name -> array of shape (K,).
        """
        return {}

    # ------------------------------------------------------------------ provided

    @classmethod
    def from_options(cls, **options: Any) -> CellScheme:
        """Build the scheme from shared settings, passing only the options ``__init__`` accepts.

        ``GeoContext.fit(spacing_deg=...)`` goes through here, so a scheme without a
        ``spacing_deg`` parameter simply does not receive it.
        """
        signature = inspect.signature(cls.__init__)
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        accepted = {k: v for k, v in options.items() if takes_all or k in signature.parameters}
        return cls(**accepted)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None, **options: Any) -> CellScheme:
        """Build the scheme from its own ``params`` (strict) and shared ``options`` (lenient).

        ``params`` are parameters of this scheme, e.g. ``{"max_per_cell": 40}`` for
        ``balanced`` (``data.cells.params`` in a config): a name ``__init__`` does not take
        is refused. Shared ``options`` such as ``spacing_deg`` reach only the schemes that
        take them, as in :meth:`from_options`; a name in both comes from ``params``.

        Raises:
            ConfigError: When ``params`` is not a mapping of names, names a parameter the
                scheme does not take, or the scheme refuses a value.
        """
        own = dict(params or {})
        if not all(isinstance(k, str) for k in own):
            raise ConfigError(f"cell scheme {cls.name or cls.__name__!r}: parameter names must be strings, got {own!r}")
        signature = inspect.signature(cls.__init__)
        takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        known = [n for n, p in signature.parameters.items() if n != "self" and p.kind is not p.VAR_KEYWORD]
        unknown = sorted(k for k in own if k not in known and not takes_all)
        if unknown:
            takes = ", ".join(known) if known else "no parameters"
            raise ConfigError(
                f"cell scheme {cls.name or cls.__name__!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"it takes {takes}"
            )
        if not own:
            return cls.from_options(**options)
        accepted = {k: v for k, v in options.items() if k not in own and (takes_all or k in signature.parameters)}
        try:
            return cls(**accepted, **own)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"cell scheme {cls.name or cls.__name__!r}: bad parameters {own!r} ({exc})") from None

    @property
    def is_fitted(self) -> bool:
        """Whether the scheme holds its cells."""
        return self._polygons is not None

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._polygons is None or self._cell_ids is None:
            raise ConfigError(f"the {self.name or type(self).__name__} cell scheme is not fitted yet")
        return self._polygons, self._cell_ids

    @property
    def num_cells(self) -> int:
        """Number of kept cells K (the number of classes)."""
        return len(self._fitted()[0])

    @property
    def polygons(self) -> np.ndarray:
        """The K kept cells in class order, an object array of shapely polygons (EPSG:4326)."""
        return self._fitted()[0].copy()

    @property
    def cell_ids(self) -> np.ndarray:
        """The scheme's id of each kept cell, int64 array of shape (K,)."""
        return self._fitted()[1].copy()

    def set_cells(self, polygons: ArrayLike, cell_ids: ArrayLike) -> None:
        """Hold these cells as the classes, in this order.

        Raises:
            DataError: When there are no cells, the counts differ, ids repeat, or a
                cell is not a non-empty (Multi)Polygon.
        """
        shapes = np.asarray(list(polygons), dtype=object)
        ids = np.asarray(cell_ids, dtype=np.int64).ravel()
        if shapes.size == 0:
            raise DataError(f"the {self.name} cell scheme has no cells")
        if shapes.size != ids.size:
            raise DataError(f"{shapes.size} cells but {ids.size} cell ids")
        if np.unique(ids).size != ids.size:
            raise DataError("cell ids repeat")
        for i, shape in enumerate(shapes):
            if not isinstance(shape, (shapely.Polygon, shapely.MultiPolygon)) or shape.is_empty:
                raise DataError(f"cell {i} (id {ids[i]}) is not a non-empty Polygon or MultiPolygon")
        self._polygons, self._cell_ids = shapes, ids

    def fit(self, train_lat: ArrayLike, train_lon: ArrayLike, variant: borders.Variant = "mainland") -> CellScheme:
        """Build the candidate cells and keep those holding a training location.

        Args:
            train_lat: Training latitudes, degrees, shape (N,), N >= 1.
            train_lon: Training longitudes, degrees, shape (N,).
            variant: Croatia variant the cells cover.

        Returns:
            ``self``, fitted.
        """
        lat, lon = finite_points(train_lat, train_lon, "training locations")
        if lat.size == 0:
            raise DataError("cannot build classes from an empty training split")
        polygons, cell_ids = self.build_cells(lat, lon, variant)
        polygons = np.asarray(list(polygons), dtype=object)
        cell_ids = np.asarray(cell_ids, dtype=np.int64).ravel()
        if polygons.size == 0:
            raise DataError(f"the {self.name} cell scheme built no cells over Croatia ({variant})")
        counts = np.bincount(self.locate(polygons, lat, lon), minlength=polygons.size)
        kept = np.flatnonzero(counts)
        self.set_cells(polygons[kept], cell_ids[kept])
        return self

    def assign(self, lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
        """Class index of each point: its cell, or the nearest cell.

        Args:
            lat: Latitudes, degrees, shape (N,), finite.
            lon: Longitudes, degrees, shape (N,), finite.

        Returns:
            int64 array of shape (N,) with values in ``[0, K)``.
        """
        lat_a, lon_a = finite_points(lat, lon, "locations to classify")
        return np.asarray(self.locate(self._fitted()[0], lat_a, lon_a), dtype=np.int64)

    def class_table(
        self,
        train_lat: ArrayLike,
        train_lon: ArrayLike,
        crs: str = projection.DEFAULT_CRS,
        variant: borders.Variant = "mainland",
    ) -> pd.DataFrame:
        """One row per class: :data:`CLASS_COLUMNS` plus the scheme's :meth:`cell_columns`.

        Args:
            train_lat: The training latitudes the scheme was fitted on, degrees, shape (N,).
            train_lon: The training longitudes, degrees, shape (N,).
            crs: Projected CRS in which centroids and means are computed.
            variant: Which Croatia counts as land for the class points.
        """
        polygons, cell_ids = self._fitted()
        points = class_points(polygons, self.assign(train_lat, train_lon), train_lat, train_lon, crs, variant)
        return self.table_with_cell_columns(
            pd.concat(
                [pd.DataFrame({"class_index": np.arange(len(polygons), dtype=np.int64), "cell_id": cell_ids}), points],
                axis=1,
            )
        )

    def table_with_cell_columns(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` (:data:`CLASS_COLUMNS`, class order) with the scheme's columns inserted after ``cell_id``."""
        out = table[list(CLASS_COLUMNS)].reset_index(drop=True).copy()
        for offset, (column, values) in enumerate(self.cell_columns(self._fitted()[0]).items()):
            out.insert(2 + offset, column, np.asarray(values))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Name, parameters and kept cells as plain str / int / float / lists.

        Returns:
            ``{"name": str, "params": dict, "cell_ids": [int], "cells": [GeoJSON-like dict]}``.
        """
        polygons, cell_ids = self._fitted()
        return {
            "name": self.name,
            "params": dict(self.params()),
            "cell_ids": [int(v) for v in cell_ids],
            "cells": [geometry_to_plain(p) for p in polygons],
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> CellScheme:
        """Rebuild a fitted scheme from :meth:`to_dict` output (whichever registered scheme it names).

        Raises:
            ConfigError: On an unknown scheme name, bad parameters or malformed cells.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a stored cell scheme must be a dict, got {type(data).__name__}")
        missing = [k for k in ("name", "params", "cell_ids", "cells") if k not in data]
        if missing:
            raise ConfigError(f"the stored cell scheme lacks {', '.join(missing)}")
        cls = get_scheme(data["name"])
        try:
            scheme = cls(**dict(data["params"]))
        except TypeError as exc:
            raise ConfigError(f"cell scheme {data['name']!r}: bad parameters {data['params']!r}: {exc}") from exc
        try:
            scheme.set_cells([geometry_from_plain(c) for c in data["cells"]], data["cell_ids"])
        except (DataError, TypeError, ValueError) as exc:
            raise ConfigError(f"cell scheme {data['name']!r}: stored cells are malformed: {exc}") from exc
        return scheme

    def __repr__(self) -> str:
        """Name, parameters and cell count."""
        cells = f", {len(self._polygons)} cells" if self._polygons is not None else ", unfitted"
        return f"{type(self).__name__}({self.params()!r}{cells})"
