"""Self-contained checkpoints: written atomically, read without unpickling code.

A geoguess checkpoint is a Lightning checkpoint with one extra entry, ``"geoguess"``,
holding everything fitted on the training split (the GeoContext as a plain dict), the
task, the backbone name, the image size and the normalisation. Every value is a plain
type or a tensor, so ``torch.load(..., weights_only=True)`` reads it; a file that needs
anything more is refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from geoguess_utils.cells.context import GeoContext, dict_fingerprint
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.io import atomic_path

if TYPE_CHECKING:
    from geoguess_utils.tasks.base import GeoTask

from geoguess_utils.training.record import (  # noqa: F401 - also read from here
    DATA_KINDS,
    IMAGE_SIZE_RANGE,
    RECORD_FORMAT,
    RECORD_KEY,
    TRAINING_DATA_FIELD,
    describe_context_difference,
    describe_training_data,
    read_record,
    synthetic_model_warning,
    training_data_record,
)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict[str, Any]:
    """Read a checkpoint file safely (``weights_only=True``).

    Args:
        path: Checkpoint file (``.ckpt``).
        map_location: Where tensors are loaded.
        mmap: Map the tensors from the file instead of reading them (cheap, for
            inspecting a large checkpoint).

    Returns:
        The checkpoint dict.

    Raises:
        CheckpointError: The file is missing, unreadable, not a checkpoint, or holds
            pickled Python objects (which could run code when loaded).
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} does not exist")
    if file.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {file} is empty (0 bytes): it was never written completely")
    try:
        data = torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        globals_named = [line for line in lines if "GLOBAL" in line]
        if globals_named:
            raise CheckpointError(
                f"refusing to load {file}: it holds pickled Python objects beyond tensors and plain containers, "
                f"which could run arbitrary code when loaded ({globals_named[0]}). geoguess checkpoints never need "
                "that; only open such a file with plain torch.load(weights_only=False) if you fully trust its source"
            ) from exc
        detail = next((line for line in lines if "Unsupported" in line), lines[-1] if lines else type(exc).__name__)
        raise CheckpointError(
            f"{file} is not a readable PyTorch checkpoint, or holds data that cannot be loaded safely ({detail})"
        ) from exc
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        reason = str(exc).strip() or f"{type(exc).__name__} while reading {file.stat().st_size} bytes"
        raise CheckpointError(f"{file} is not a readable PyTorch checkpoint: {reason}") from exc
    if not isinstance(data, dict) or "state_dict" not in data:
        raise CheckpointError(f"{file} is not a Lightning checkpoint (no 'state_dict' entry)")
    return data


def first_non_finite(state_dict: dict[str, Any]) -> str | None:
    """Describe the first floating-point tensor holding NaN or infinity, or return ``None``.

    Args:
        state_dict: Parameter and buffer name -> tensor (a checkpoint's ``state_dict``).

    Returns:
        ``"<name> (<n> of <size> values are NaN or infinite)"`` for the first bad tensor
        in the dict's order, ``None`` when every value is finite.
    """
    for name, value in state_dict.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                return f"{name} ({int((~finite).sum())} of {value.numel()} values are NaN or infinite)"
    return None


def check_finite_weights(state_dict: dict[str, Any], source: str) -> None:
    """Refuse weights that hold NaN or infinity: the model would put every location at one point.

    Raises:
        CheckpointError: Naming the first non-finite parameter or buffer.
    """
    bad = first_non_finite(state_dict)
    if bad is not None:
        raise CheckpointError(
            f"{source} holds non-finite weights, first in {bad}; training diverged before this checkpoint was "
            "written. Use an earlier checkpoint or train again (e.g. with a lower learning rate)"
        )


def _check_normalization(record: dict[str, Any], source: str) -> None:
    from geoguess_utils.data.layout import HEADINGS
    from geoguess_utils.models.backbones import backbone_normalization

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
    from geoguess_utils.tasks.registry import TASKS

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
    _check_normalization(record, str(path))
    task_cls = TASKS.get(record["task"])
    if task_cls is None:
        raise CheckpointError(f"{path} holds an unknown task {record['task']!r}; known: {', '.join(TASKS)}")
    accepted = task_cls.accepted_arguments()
    hparams = {k: v for k, v in dict(data.get("hyper_parameters", {})).items() if k in accepted}
    hparams["pretrained"] = False
    hparams["backbone"] = record["backbone"]
    try:
        task = task_cls(**hparams)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: stored hyper-parameters are invalid: {exc}") from exc
    check_finite_weights(data["state_dict"], str(path))
    task.configure_context(saved, record["image_size"])
    task.training_data = record.get(TRAINING_DATA_FIELD)
    try:
        task.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: the weights do not fit a {record['backbone']} {record['task']} model: {exc}"
        ) from exc
    return task.eval()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint writer that never leaves a half-written file (temp file + rename)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
