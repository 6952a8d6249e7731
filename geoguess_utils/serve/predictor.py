"""One forward pass for a batch of locations, through the task's own ``predict_step``.

The views are normalised by :class:`geoguess_utils.data.geodataset.GeoDataset` (handed the
decoded pixels as its image cache) and collated as the DataLoader does, so the server
feeds the model exactly what ``geoguess predict`` feeds it, and reads what ``geoguess
predict`` reads: the points, the cell probabilities of tasks with cells and the
non-finite marks, all from the one ``predict_step``.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geoguess_utils.data.layout import HEADINGS, PATH_COLUMNS

if TYPE_CHECKING:
    import torch

    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.tasks.base import GeoTask
    from geoguess_utils.tasks.regions import SearchRegions

TOP_K = 5


def make_batch(
    pixels: np.ndarray,
    uuids: list[str],
    image_size: int,
    view_mask: np.ndarray | None = None,
    heading_known: np.ndarray | None = None,
) -> dict[str, Any]:
    """Normalise decoded views as the training pipeline does and collate them into a batch.

    Args:
        pixels: ``uint8`` views, shape (B, 4, H, W, 3) with H = W = ``image_size``.
        uuids: One name per location, length B.
        image_size: Side of the views, pixels.
        view_mask: (B, 4) bool, the views present (default: all four); an absent view's
            pixels may be anything.
        heading_known: (B, 4) bool, False where a photo's heading is unknown (default: all known).

    Returns:
        A batch dict as the DataLoader yields: ``images`` float32 (B, 4, 3, H, W), ``view_mask``
        (B, 4) bool, ``uuid`` list, ... and ``heading_known`` (B, 4) bool when given.
    """
    import torch
    from torch.utils.data import default_collate

    from geoguess_utils.data.geodataset import GeoDataset

    if pixels.ndim != 5 or pixels.shape[0] != len(uuids):
        raise ValueError(f"expected views shaped (B, 4, H, W, 3) for {len(uuids)} locations, got {pixels.shape}")
    table = pd.DataFrame({"uuid": uuids, **{column: [""] * len(uuids) for column in PATH_COLUMNS}})
    dataset = GeoDataset(table, image_size, image_cache=pixels)  # an array indexes like an ImageCache
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    shape = pixels.shape[:2]
    batch["view_mask"] = torch.ones(shape, dtype=torch.bool) if view_mask is None else _flags(view_mask, shape)
    if heading_known is not None:
        batch["heading_known"] = _flags(heading_known, shape)
    return batch


def _flags(values: np.ndarray, shape: tuple[int, ...]) -> Any:
    """(B, V) bool tensor of ``values``, checked against the views' shape."""
    import torch

    flags = torch.as_tensor(np.asarray(values, dtype=bool))
    if tuple(flags.shape) != tuple(shape):
        raise ValueError(f"view flags of shape {tuple(flags.shape)} for views of shape {tuple(shape)}")
    return flags


BOX_COLUMNS = ("lon_min", "lat_min", "lon_max", "lat_max")
SIMPLIFY_DEG = 0.002
"""Tolerance (degrees, about 200 m) to which cells that are not boxes are simplified for the answers."""

_ARRAYS: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def cell_geometries(context: GeoContext) -> list[dict[str, Any]]:
    """Each class cell as a GeoJSON geometry (lon, lat order), in class order.

    Square cells are their exact boxes; other schemes' cells (counties, density cells:
    polygons clipped to the coast) are simplified to :data:`SIMPLIFY_DEG` and rounded to
    1e-5 degrees, so that an answer naming five cells stays small.
    """
    import shapely

    table = context.class_table
    if all(c in table.columns for c in BOX_COLUMNS):
        return [_box_polygon(*(float(v) for v in box)) for box in table[list(BOX_COLUMNS)].to_numpy(np.float64)]
    shapes = shapely.simplify(np.asarray(context.cell_polygons(), dtype=object), SIMPLIFY_DEG, preserve_topology=True)
    shapes = shapely.set_precision(shapes, 1e-5)
    return [json.loads(text) for text in shapely.to_geojson(shapes)]


def _cell_arrays(context: GeoContext) -> dict[str, Any]:
    """The class table as plain arrays and geometries, computed once per context object."""
    known = _ARRAYS.get(id(context))
    if known is not None and known[0]() is context:
        return known[1]
    table = context.class_table
    arrays = {
        "cell_id": table["cell_id"].to_numpy(dtype=np.int64),
        "geometry": cell_geometries(context),
        "point": context.centroids_latlon(),
    }
    key = id(context)

    def forget(_ref: weakref.ref) -> None:  # the context is gone: its id may be reused
        _ARRAYS.pop(key, None)

    _ARRAYS[key] = (weakref.ref(context, forget), arrays)
    return arrays


def _box_polygon(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


def top_cells(probabilities: torch.Tensor, context: GeoContext, k: int = TOP_K) -> list[list[dict[str, Any]]]:
    """The ``k`` most probable cells of each location.

    Args:
        probabilities: Class probabilities, (B, K).
        context: The model's GeoContext (class table and class points).
        k: Cells per location (fewer when the model has fewer classes).

    Returns:
        Per location, a list of ``{"cell_id", "class_index", "probability", "latitude",
        "longitude", "polygon"}``, most probable first; the point is the class point
        predictions use (degrees) and the polygon the cell as GeoJSON (see :func:`cell_geometries`).
    """
    arrays = _cell_arrays(context)
    top = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
    out = []
    for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        cells = []
        for probability, index in zip(values, indices, strict=True):
            cells.append(
                {
                    "cell_id": int(arrays["cell_id"][index]),
                    "class_index": int(index),
                    "probability": float(probability),
                    "latitude": float(arrays["point"][index, 0]),
                    "longitude": float(arrays["point"][index, 1]),
                    "polygon": arrays["geometry"][index],
                }
            )
        out.append(cells)
    return out


def view_names(view_mask: np.ndarray, heading_known: np.ndarray) -> list[str]:
    """The photos one location was predicted from: known headings (``"0"`` .. ``"270"``) in order, then ``"unknown"``.

    Args:
        view_mask: (4,) bool, the slots that hold a photo.
        heading_known: (4,) bool, ``False`` where a photo of unknown heading sits.
    """
    present = np.asarray(view_mask, dtype=bool)
    known = np.asarray(heading_known, dtype=bool)
    names = [str(h) for h, here in zip(HEADINGS, present & known, strict=True) if here]
    return names + ["unknown"] * int((present & ~known).sum())


def predict_locations(
    task: GeoTask,
    device: torch.device,
    pixels: np.ndarray,
    uuids: list[str],
    with_probabilities: bool = False,
    view_mask: np.ndarray | None = None,
    heading_known: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Locate a batch of locations in one forward pass.

    Args:
        task: A loaded task in eval mode (see :func:`geoguess_utils.tasks.loading.load_task`).
        device: The device the task is on.
        pixels: ``uint8`` views, shape (B, 4, H, W, 3), H = W = ``task.image_size``.
        uuids: One name per location, length B.
        with_probabilities: Also return every class's probability (classifiers only), as a
            float64 array of length K (``None`` for regression).
        view_mask: (B, 4) bool, the views present (default: all four); an absent view's pixels
            may be anything. Only a task whose
            :attr:`~geoguess_utils.tasks.base.GeoTask.takes_any_views` accepts views missing.
        heading_known: (B, 4) bool, ``False`` for a photo of unknown heading (default: all known).

    Returns:
        One dict per location, in order: ``uuid``, ``latitude``, ``longitude`` (degrees),
        ``top_cells`` (tasks with cell probabilities; ``None`` for the others),
        ``non_finite`` (whether the network's outputs held NaN or infinity), ``views_used``
        (the photos the prediction is from, 1 to 4), ``headings`` (theirs, see
        :func:`view_names`) and, when asked, ``probabilities`` (length K, class-index order,
        a numpy array).

    Raises:
        ConfigError: Views missing or headings unknown for a model that concatenates the views.
    """
    import torch

    assert task.image_size is not None and task.context is not None
    batch = make_batch(pixels, uuids, task.image_size, view_mask, heading_known)
    batch["images"] = batch["images"].to(device)
    present = batch["view_mask"].numpy()
    known = batch["heading_known"].numpy() if "heading_known" in batch else np.ones_like(present)
    for key in ("view_mask", "heading_known"):
        if key in batch:
            batch[key] = batch[key].to(device)
    with torch.inference_mode():
        result = task.predict_step(batch, 0)
    latlon = result["latlon"].detach().cpu().numpy()
    non_finite = result["non_finite"].detach().cpu().numpy()
    used = result["views"].detach().cpu().numpy() if "views" in result else present.sum(axis=1)
    probabilities = result.get("probabilities")
    cells: list[Any] = [None] * len(uuids)
    if probabilities is not None:
        probabilities = probabilities.detach().cpu().to(torch.float64)
        cells = top_cells(probabilities, task.context)
    out = []
    for i, uuid in enumerate(result["uuid"]):
        item = {
            "uuid": uuid,
            "latitude": float(latlon[i, 0]),
            "longitude": float(latlon[i, 1]),
            "top_cells": cells[i],
            "non_finite": bool(non_finite[i]),
            "views_used": int(used[i]),
            "headings": view_names(present[i], known[i]),
        }
        if with_probabilities:
            item["probabilities"] = None if probabilities is None else probabilities[i].numpy()
        out.append(item)
    return out


def search_region(
    regions: SearchRegions,
    coverage: float,
    probabilities: np.ndarray | None,
    latitude: float,
    longitude: float,
) -> dict[str, Any]:
    """The search region of one answered location, ready for JSON.

    Computed after the forward pass, from what it returned: the reported (calibrated)
    probabilities for a classifier's cells, the predicted point for a disc.

    Args:
        regions: The model's :class:`~geoguess_utils.tasks.regions.SearchRegions` (built once per loaded model).
        coverage: Nominal coverage in ``(0, 1)``.
        probabilities: The location's class probabilities (K,), as ``predict_step`` reported them.
        latitude: The predicted latitude, degrees.
        longitude: The predicted longitude, degrees.

    Returns:
        ``{"coverage", "area_km2", "geojson"}``: the area is ``None`` when the region is unbounded
        (a validation split too small for the coverage; JSON has no infinity), the feature's
        geometry then ``None`` too. Other geometries are simplified to :data:`SIMPLIFY_DEG` and
        rounded to 1e-5 degrees, as the cells of :func:`cell_geometries`, and slivers between
        cells are filled (:func:`~geoguess_utils.viz.webmap_regions.simplified_region`; the area is the exact one).
    """
    import math

    from geoguess_utils.viz.webmap_regions import simplified_region

    region = regions.region(
        coverage,
        probabilities=probabilities if regions.kind == "cells" else None,
        latlon=(latitude, longitude),
    )
    feature = region["geojson"]
    if feature["geometry"] is not None:
        feature = {**feature, "geometry": simplified_region(feature["geometry"], SIMPLIFY_DEG, 1e-5)}
    area = float(region["area_km2"])
    return {
        "coverage": float(region["coverage"]),
        "area_km2": area if math.isfinite(area) else None,
        "geojson": feature,
    }


def cells_geojson(context: GeoContext) -> dict[str, Any]:
    """Every class cell of a context as a GeoJSON FeatureCollection (``class_index``, ``cell_id``, ``n_train``)."""
    features = []
    geometries = _cell_arrays(context)["geometry"]
    for (index, row), geometry in zip(context.class_table.iterrows(), geometries, strict=True):
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "class_index": int(row["class_index"]) if "class_index" in row else int(index),
                    "cell_id": int(row["cell_id"]),
                    "n_train": int(row["n_train"]),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}
