"""Checkpoint files: read without unpickling code, written atomically, weights checked finite.

A geoguess checkpoint is a Lightning checkpoint with one extra entry, ``"geoguess"``
(see :mod:`geoguess_utils.checkpoints.record`), holding everything fitted on the training
split. Every value is a plain type or a tensor, so ``torch.load(..., weights_only=True)``
reads it; a file that needs anything more is refused.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from geoguess_utils.errors import CheckpointError
from geoguess_utils.io import atomic_path


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
