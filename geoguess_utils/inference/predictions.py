"""Predictions of a trained task over dataset roots, through the one inference loop."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geoguess_utils.data import layout
from geoguess_utils.data.settings import SplitSettings
from geoguess_utils.errors import CheckpointError, ConfigError, DataError
from geoguess_utils.evaluation import Predictions
from geoguess_utils.geo import distance
from geoguess_utils.inference.loop import run_predict

if TYPE_CHECKING:
    from geoguess_utils.tasks.base import GeoTask

# ----------------------------------------------------------------------------- predictions


def _as_task(task_or_checkpoint: GeoTask | str | os.PathLike[str]) -> GeoTask:
    from geoguess_utils.tasks.loading import load_task

    if isinstance(task_or_checkpoint, (str, os.PathLike)):
        return load_task(task_or_checkpoint)
    return task_or_checkpoint


def predict(
    task_or_checkpoint: GeoTask | str | os.PathLike[str],
    roots: Sequence[str | os.PathLike[str]],
    split: str | None = None,
    split_csv: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    device: str = "auto",
    num_workers: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    lenient: bool = False,
    progress: bool = False,
    progress_label: str | None = None,
) -> Predictions:
    """Predict locations with a trained task: one split of its training data, or whole roots.

    Args:
        task_or_checkpoint: A trained task (its GeoContext and image size set) or a
            checkpoint file written by ``geoguess fit``.
        roots: Dataset roots. With ``split``: the roots the model was trained on.
            Without: every location in them (``data.csv`` optional; without it there
            is no truth and ``error_km`` is NaN).
        split: ``"train"``, ``"val"`` or ``"test"``, or ``None`` for every location.
        split_csv: The training run's ``split.csv``; required with ``split``.
        batch_size: Locations per batch.
        device: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        num_workers: DataLoader worker processes.
        cache_dir: Folder of the dataset's enriched-table cache (default under ``~/.cache/geoguess``).
        lenient: Skip broken locations (reported in a warning) instead of stopping.
        progress: Show Lightning's progress bar (for a terminal).
        progress_label: Print plain progress lines on stderr instead, starting with this
            label (e.g. ``"geoguess predict"``): the count of locations done at every tenth
            and the seconds since the start (see :class:`~geoguess_utils.inference.progress.ProgressLines`).

    Returns:
        The predictions, in the dataset's order.

    Raises:
        ConfigError: For an unknown split, or a split without ``split_csv``.
        CheckpointError: When the task has no context or image size.
        DataError: When the dataset is invalid (every problem is listed).
    """
    from torch.utils.data import DataLoader

    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings, ReadSettings
    from geoguess_utils.data.splits import SPLITS

    task = _as_task(task_or_checkpoint)
    if task.context is None or task.image_size is None:
        raise CheckpointError("the task has no GeoContext or image size: train it first or load a checkpoint")
    common = {
        "image_size": task.image_size,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "augment": False,
        "context": task.context.to_dict(),
        "cache": CacheSettings(dir=None if cache_dir is None else str(cache_dir)),
        "reading": ReadSettings(lenient=lenient),
    }
    root_list = [str(r) for r in roots]
    if split is not None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        if split_csv is None or not Path(split_csv).is_file():
            raise ConfigError(f"predicting the {split} split needs the training run's split.csv (got {split_csv})")
        module = GeoDataModule(roots=root_list, **common, split=SplitSettings(csv=str(split_csv)))
        module.set_normalization(*task.normalization)
        module.setup("test")
        assert module.locations is not None
        locations = module.locations[module.locations["split"] == split].reset_index(drop=True)
        loader: Any = DataLoader(module.dataset(split), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    else:
        module = GeoDataModule(predict_roots=root_list, **common)
        module.set_normalization(*task.normalization)
        module.setup("predict")
        assert module.predict_locations is not None
        locations = module.predict_locations.reset_index(drop=True)
        loader = module
    callbacks = None
    if progress_label is not None:
        from geoguess_utils.inference.progress import ProgressLines

        callbacks = [ProgressLines(progress_label)]
    result = run_predict(task, loader, device=device, progress=progress, callbacks=callbacks)
    uuids = result["uuid"]
    if uuids != locations["uuid"].tolist():
        raise DataError(f"predicted {len(uuids)} locations but the dataset lists {len(locations)}")
    pred = result["latlon"]
    true_lat = locations["latitude"].to_numpy(dtype=np.float64)
    true_lon = locations["longitude"].to_numpy(dtype=np.float64)
    table = pd.DataFrame(
        {
            "uuid": uuids,
            "true_lat": true_lat,
            "true_lon": true_lon,
            "pred_lat": pred[:, 0],
            "pred_lon": pred[:, 1],
            "error_km": distance.haversine_km(true_lat, true_lon, pred[:, 0], pred[:, 1]),
        }
    )
    for column in layout.PATH_COLUMNS:
        table[column] = locations[column].to_numpy()
    non_finite = result.get("non_finite")
    return Predictions(
        table,
        result.get("probabilities"),
        task.task_name,
        task.context.cells_frame(),
        None if non_finite is None else np.asarray(non_finite, dtype=bool),
    )


def submission(predictions: Predictions) -> pd.DataFrame:
    """The competition's submission table: ``uuid, latitude, longitude`` (degrees), one row per location."""
    table = predictions.table
    return pd.DataFrame({"uuid": table["uuid"], "latitude": table["pred_lat"], "longitude": table["pred_lon"]})


def fewer_views_note(predictions: Predictions) -> str:
    """``"; N with fewer than four views"`` when some predicted locations lacked views, else ``""``.

    Counts the locations whose view paths (``path_0`` .. ``path_270``) are partly empty.
    """
    table = predictions.table
    if not set(layout.PATH_COLUMNS) <= set(table.columns):
        return ""
    fewer = int(((table[list(layout.PATH_COLUMNS)] != "").sum(axis=1) < len(layout.PATH_COLUMNS)).sum())
    return f"; {fewer} with fewer than four views" if fewer else ""
