"""Rebuild a trained task from its checkpoint file alone, ready for prediction."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from geoguess_utils.cells.context import GeoContext, dict_fingerprint
from geoguess_utils.checkpoints.files import check_finite_weights, load_checkpoint
from geoguess_utils.checkpoints.record import (
    CALIBRATION_FIELD,
    TRAINING_DATA_FIELD,
    describe_context_difference,
    read_record,
)
from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.models.backbones import backbone_normalization
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.calibration import Calibration
from geoguess_utils.tasks.registry import TASKS


def _check_normalization(record: dict[str, Any], source: str) -> None:
    """Refuse a record whose input normalisation or view headings differ from today's pipeline."""
    norm = record["normalization"]
    saved = ([float(v) for v in norm["mean"]], [float(v) for v in norm["std"]])
    try:
        mean, std = backbone_normalization(str(record["backbone"]))
    except ConfigError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc
    current = (list(mean), list(std))
    if saved != current:
        raise CheckpointError(
            f"{source} was trained on images normalised with mean/std {saved}, but backbone "
            f"{record['backbone']!r} is registered with {current}"
        )
    headings = record.get("headings")
    if headings is not None and [int(h) for h in headings] != [int(h) for h in HEADINGS]:
        raise CheckpointError(
            f"{source} expects views at headings {headings}, the data pipeline gives {list(HEADINGS)}"
        )


REMOVED_OPTIONS: dict[str, tuple[object, str]] = {
    "heads": (1, "several heads trained side by side on one backbone (measured within noise of one head)"),
}
"""Task options that no longer exist: name -> (the value that meant "off", what it did)."""


def _refuse_removed_options(hyper_parameters: dict[str, Any], source: str) -> None:
    """Refuse a checkpoint trained with an option that no longer exists, saying how to retrain."""
    for name, (off, what) in REMOVED_OPTIONS.items():
        value = hyper_parameters.get(name, off)
        if value != off:
            raise CheckpointError(
                f"{source} was trained with {name}={value!r}, {what}; that option no longer exists. Train the model "
                f"again without it (geoguess fit --config configs/quick_cpu.yaml --data.roots '[...]')"
            )


CLASS_POINT_MARGIN_DEG = 1.0
"""How far outside Croatia's bounding box (degrees) a stored class point may lie before the file is refused."""


def _check_class_points(context: GeoContext, source: str) -> None:
    """Refuse class points that are not finite or lie far outside Croatia (a damaged or crafted file)."""
    from geoguess_utils.geo.borders import croatia_bounds

    lon0, lat0, lon1, lat1 = croatia_bounds("full")
    m = CLASS_POINT_MARGIN_DEG
    for kind in dict.fromkeys((context.centroid, "weighted")):  # the same kind is checked once
        points = np.asarray(context.centroids_latlon(kind), dtype=np.float64)
        bad = ~np.isfinite(points).all(axis=1)
        bad |= ~((points[:, 0] >= lat0 - m) & (points[:, 0] <= lat1 + m))
        bad |= ~((points[:, 1] >= lon0 - m) & (points[:, 1] <= lon1 + m))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise CheckpointError(
                f"{source}: {int(bad.sum())} stored class points ({kind}) are not finite or lie outside Croatia, "
                f"first class {first} at {points[first].tolist()}; the file is damaged or was altered"
            )


def _check_sizes_match_weights(task: GeoTask, context: GeoContext, state: dict[str, Any], source: str) -> None:
    """Refuse sizes in the record or hyper-parameters that the file's own weights do not have.

    The network, its head and any memory bank are sized from the record before the weights
    are loaded; a crafted ``head_hidden`` or class table would otherwise allocate gigabytes
    first. Here every such size is read off the weights that are already in memory.
    """
    hidden = int(task.network_options["head_hidden"])
    last = "net.head.4" if hidden else "net.head.1"
    bias = state.get(f"{last}.bias")
    outputs = task.num_outputs(context)
    if bias is None or tuple(bias.shape) != (outputs,):
        held = "none" if bias is None else f"{tuple(bias.shape)}"
        raise CheckpointError(
            f"{source}: the record asks for an output layer {last} of {outputs} outputs (head_hidden {hidden}); "
            f"the weights hold {held}. The file is damaged or was altered"
        )
    if hidden:
        first = state.get("net.head.1.weight")
        if first is None or first.shape[0] != hidden:
            raise CheckpointError(f"{source}: head_hidden {hidden} does not match the weights of net.head.1")
    members = {key.split(".")[1] for key in state if key.startswith("extra_heads.")}
    if members != {str(i) for i in range(task.ensemble - 1)}:
        raise CheckpointError(
            f"{source}: the record asks for an ensemble of {task.ensemble}, the weights hold "
            f"{len(members) + 1} member(s); the file is damaged or was altered"
        )
    for i in range(task.ensemble - 1):
        extra = state.get(f"extra_heads.{i}.{last.removeprefix('net.')}.bias")
        if extra is None or tuple(extra.shape) != (outputs,):
            raise CheckpointError(f"{source}: ensemble member {i + 2}'s output layer does not hold {outputs} outputs")
    if "bank_filled" in state:
        rows = int(context.class_table["n_train"].sum())
        if tuple(state["bank_filled"].shape) != (rows,):
            raise CheckpointError(
                f"{source}: the class table counts {rows} training locations, the memory bank holds "
                f"{tuple(state['bank_filled'].shape)}; the file is damaged or was altered"
            )


def _upgraded(hyper_parameters: dict[str, Any]) -> dict[str, Any]:
    """An older checkpoint's hyper-parameters in today's terms (``head_only`` -> ``freeze_backbone_epochs: all``)."""
    if hyper_parameters.pop("head_only", False):
        hyper_parameters["freeze_backbone_epochs"] = "all"
    return hyper_parameters


def _task_name(recorded: str, hyper_parameters: dict[str, Any]) -> str:
    """The registry name of a checkpoint's task; a classifier saved with retrieval on is now the retrieval task."""
    if recorded == "classification" and int(hyper_parameters.get("retrieval_cells", 0) or 0) > 0:
        return "retrieval"
    return recorded


def load_task(
    path: str | os.PathLike[str],
    backbone: str | None = None,
    context: GeoContext | None = None,
    map_location: str | torch.device = "cpu",
) -> GeoTask:
    """Rebuild a trained task from a checkpoint alone, ready for prediction.

    The backbone is built without downloading anything (its weights come from the
    checkpoint) and the network is sized from the stored GeoContext.

    Args:
        path: Checkpoint file.
        backbone: If given, the backbone the caller expects; a different one is refused.
        context: If given, the GeoContext the caller expects; a different one is refused.
        map_location: Where tensors are loaded.

    Returns:
        The task in eval mode; its ``context`` and ``image_size`` come from the checkpoint.

    Raises:
        CheckpointError: Unsafe, unreadable or mismatching checkpoint (the message says what differs).
    """
    data = load_checkpoint(path, map_location)
    record = read_record(data, str(path))
    if backbone is not None and backbone != record["backbone"]:
        raise CheckpointError(
            f"{path} was trained with backbone {record['backbone']!r}, but backbone {backbone!r} was requested"
        )
    try:
        saved = GeoContext.from_dict(record["context"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the stored GeoContext is unusable: {exc}") from exc
    if dict_fingerprint(record["context"]) != record["context_fingerprint"]:
        raise CheckpointError(f"{path}: the stored GeoContext does not match its fingerprint (file altered?)")
    if context is not None and context.fingerprint() != saved.fingerprint():
        raise CheckpointError(f"{path}: {describe_context_difference(saved, context)}")
    _check_class_points(saved, str(path))
    _check_normalization(record, str(path))
    stored = _upgraded(dict(data.get("hyper_parameters", {})))
    _refuse_removed_options(stored, str(path))
    task_cls = TASKS.get(_task_name(record["task"], stored))
    if task_cls is None:
        raise CheckpointError(f"{path} holds an unknown task {record['task']!r}; known: {', '.join(TASKS)}")
    accepted = task_cls.accepted_arguments()
    hparams = {k: v for k, v in stored.items() if k in accepted}
    hparams["pretrained"] = False
    hparams["backbone"] = record["backbone"]
    try:
        task = task_cls(**hparams)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored hyper-parameters are invalid: {exc}") from exc
    check_finite_weights(data["state_dict"], str(path))
    _check_sizes_match_weights(task, saved, data["state_dict"], str(path))  # before anything is allocated
    task.configure_context(saved, record["image_size"])
    task.training_data = record.get(TRAINING_DATA_FIELD)
    stored = record.get(CALIBRATION_FIELD)  # absent in checkpoints from before calibration
    task.calibration = None if stored is None else Calibration.from_dict(stored, str(path))
    try:
        task.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: the weights do not fit a {record['backbone']} {record['task']} model: {exc}"
        ) from exc
    return task.eval()
