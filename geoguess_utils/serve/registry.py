"""The models a server may use: the checkpoint files directly inside one folder.

A model's name is its file name without ``.ckpt``. A name is only ever looked up in
the folder's own listing, so ``..``, ``a/b``, a symbolic link that leads out of the
folder, or any file that is not a ``.ckpt`` never reaches the loader. Checkpoints are
read with the project's safe loader (:func:`geoguess_utils.tasks.loading.load_task`),
each at most once per file version, and stay in memory.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoguess_utils.data.reader import is_safe_uuid, printable
from geoguess_utils.errors import CheckpointError, ConfigError, GeoguessError

if TYPE_CHECKING:
    import torch

    from geoguess_utils.tasks.base import GeoTask
    from geoguess_utils.tasks.regions import SearchRegions

CHECKPOINT_SUFFIX = ".ckpt"


class ModelNotFoundError(GeoguessError):
    """No checkpoint of that name inside the models folder (HTTP 404)."""


class ModelUnusableError(GeoguessError):
    """The file exists but is not a usable geoguess checkpoint (HTTP 400)."""


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /models`` says about one checkpoint.

    Attributes:
        name: File name without ``.ckpt``.
        task: ``"classification"`` or ``"regression"``.
        backbone: Backbone name, e.g. ``"efficientnet_lite0"``.
        image_size: Side of the square views the model takes, pixels.
        num_classes: Number of grid cells (classes) in the checkpoint's GeoContext.
        cell_scheme: How the cells were made (:attr:`GeoContext.description`), e.g.
            ``"square 0.3 deg grid, mainland, EPSG:3766"``.
        train_size: Training locations the GeoContext was fitted on.
        digest: SHA-256 of the checkpoint file, hex.
        bytes: File size in bytes.
        calibrated: Whether the checkpoint holds a calibration (``geoguess calibrate``), so that
            its predictions come with a search region.
    """

    name: str
    task: str
    backbone: str
    image_size: int
    num_classes: int
    cell_scheme: str
    train_size: int
    digest: str
    bytes: int
    calibrated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-ready)."""
        return dict(self.__dict__)


@dataclass(eq=False)  # one object per load: compared and hashed by identity, so it can key a weak cache
class LoadedModel:
    """A checkpoint loaded once and kept in memory, with the version of the file it came from.

    Attributes:
        regions: The model's search regions, built once at load time (its cells' areas
            measured then) from its calibration; ``None`` for a checkpoint never calibrated.
    """

    info: ModelInfo
    task: GeoTask
    device: torch.device
    stamp: tuple[int, int]
    regions: SearchRegions | None = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _without_path(exc: Exception, path: Path, name: str) -> str:
    """An error message with the server's file path replaced by the model's name (clients never see paths)."""
    return str(exc).replace(str(path), f"{name}{CHECKPOINT_SUFFIX}")


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return int(stat.st_size), int(stat.st_mtime_ns)


def _search_regions(task: GeoTask, name: str) -> SearchRegions | None:
    """The search regions of a loaded model, its cells' areas measured now (``None`` without a calibration)."""
    from geoguess_utils.tasks.regions import SearchRegions

    if task.calibration is None:
        return None
    regions = SearchRegions.of_task(task, f"model {name!r}")
    if regions.kind == "cells":
        regions.cell_areas_km2()  # once per loaded model, not per request
    return regions


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... as a torch device.

    Raises:
        ConfigError: The name is not a device torch knows, or CUDA was asked for without a GPU.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA GPU")
    return device


class ModelRegistry:
    """The checkpoints directly inside ``models_dir``, loaded on first use.

    Args:
        models_dir: Folder holding ``*.ckpt`` files (not searched recursively).
        device: Where loaded models run (``"auto"``, ``"cpu"``, ``"cuda"``, ...).

    Raises:
        ConfigError: The folder does not exist or the device is unknown.
    """

    def __init__(self, models_dir: str | os.PathLike[str], device: str = "auto") -> None:
        self.models_dir = Path(models_dir)
        if not self.models_dir.is_dir():
            raise ConfigError(f"models folder {self.models_dir} does not exist or is not a folder")
        self.root = self.models_dir.resolve()
        self.device = resolve_device(device)
        self._lock = threading.Lock()
        self._infos: dict[str, tuple[tuple[int, int], ModelInfo]] = {}
        self._loaded: dict[str, LoadedModel] = {}
        self._refused: dict[str, tuple[tuple[int, int], str]] = {}  # name -> (file version, why)

    def _refused_before(self, name: str, stamp: tuple[int, int]) -> None:
        """Raise the remembered refusal of this very version of the file, if there is one."""
        with self._lock:
            known = self._refused.get(name)
        if known is not None and known[0] == stamp:
            raise ModelUnusableError(known[1])

    def _refuse(self, name: str, stamp: tuple[int, int], error: ModelUnusableError) -> ModelUnusableError:
        """Remember that this version of the file is unusable (until it changes) and return the error."""
        with self._lock:
            self._refused[name] = (stamp, str(error))
        return error

    # ------------------------------------------------------------------ files
    def _candidates(self) -> dict[str, Path]:
        """Name -> path of every ``*.ckpt`` entry directly in the folder, whatever it points to."""
        found = {}
        for entry in sorted(self.models_dir.iterdir()):
            if entry.name.endswith(CHECKPOINT_SUFFIX) and not entry.name.startswith("."):
                found[entry.name[: -len(CHECKPOINT_SUFFIX)]] = entry
        return found

    def path_of(self, name: str) -> Path:
        """The checkpoint file of ``name``, resolved and checked to lie inside the folder.

        Raises:
            ModelNotFoundError: ``name`` is not a plain name, or no such checkpoint is in the folder.
            ModelUnusableError: The entry is a link that leads out of the folder, or not a regular file.
        """
        shown = printable(name)
        if not is_safe_uuid(name):
            raise ModelNotFoundError(
                f"no model named {shown!r}: a model name is a checkpoint's file name without .ckpt"
            )
        entry = self._candidates().get(name)
        if entry is None:
            raise ModelNotFoundError(f"no model named {shown!r} in the models folder")
        target = entry.resolve()
        if not target.is_relative_to(self.root):
            raise ModelUnusableError(f"model {shown!r} is a link that leads out of the models folder; refusing it")
        if not target.is_file():
            raise ModelUnusableError(f"model {shown!r} is not a regular file")
        return target

    # ------------------------------------------------------------------ descriptions
    def names(self) -> list[str]:
        """Names of the ``*.ckpt`` entries in the folder (usable or not), sorted."""
        return list(self._candidates())

    def describe(self, name: str) -> ModelInfo:
        """What the checkpoint ``name`` holds, read without building the network.

        Raises:
            ModelNotFoundError: See :meth:`path_of`.
            ModelUnusableError: The file is not a usable geoguess checkpoint (the message says why).
        """
        from geoguess_utils.cells.context import GeoContext
        from geoguess_utils.checkpoints.files import load_checkpoint
        from geoguess_utils.checkpoints.record import CALIBRATION_FIELD, read_record

        path = self.path_of(name)
        stamp = _stamp(path)
        with self._lock:
            cached = self._infos.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        self._refused_before(name, stamp)
        try:
            try:
                data = load_checkpoint(path, mmap=True)  # cheap: tensors stay in the file
            except CheckpointError:
                data = load_checkpoint(path)  # not a zip-format file: read it plainly for the true reason
            record = read_record(data, name)
            context = GeoContext.from_dict(record["context"])
        except (CheckpointError, ConfigError) as exc:
            detail = _without_path(exc, path, name)
            error = ModelUnusableError(f"model {name!r} is not a usable geoguess checkpoint: {detail}")
            raise self._refuse(name, stamp, error) from exc
        except Exception as exc:  # torch's unpickler failing in other ways on hostile bytes
            error = ModelUnusableError(
                f"model {name!r} is not a readable checkpoint ({type(exc).__name__} while unpickling)"
            )
            raise self._refuse(name, stamp, error) from exc
        info = ModelInfo(
            name=name,
            task=str(record["task"]),
            backbone=str(record["backbone"]),
            image_size=int(record["image_size"] or 0),
            num_classes=int(context.num_classes),
            cell_scheme=context.description,
            train_size=int(context.class_table["n_train"].sum()),
            digest=_sha256(path),
            bytes=stamp[0],
            calibrated=record.get(CALIBRATION_FIELD) is not None,
        )
        with self._lock:
            self._infos[name] = (stamp, info)
        return info

    def catalogue(self) -> tuple[list[ModelInfo], list[tuple[str, str]]]:
        """Every usable checkpoint, and ``(name, reason)`` for every ``*.ckpt`` entry that is not."""
        usable, skipped = [], []
        for name in self.names():
            try:
                usable.append(self.describe(name))
            except (ModelNotFoundError, ModelUnusableError) as exc:
                skipped.append((printable(name), str(exc)))
        return usable, skipped

    # ------------------------------------------------------------------ loading
    def get(self, name: str) -> LoadedModel:
        """The model ``name``, loaded through the safe loader on first use and kept in memory.

        A checkpoint file replaced on disk (other size or modification time) is loaded again. A
        refused file is remembered with its version: asking again answers at once, without
        reading it, until the file changes.

        Raises:
            ModelNotFoundError: See :meth:`path_of`.
            ModelUnusableError: The file is not a usable geoguess checkpoint.
        """
        from geoguess_utils.tasks.loading import load_task

        path = self.path_of(name)
        stamp = _stamp(path)
        with self._lock:
            loaded = self._loaded.get(name)
            if loaded is not None and loaded.stamp == stamp:
                return loaded
        self._refused_before(name, stamp)  # a refused version is not read again until the file changes
        info = self.describe(name)
        try:
            task = load_task(path)
        except CheckpointError as exc:
            detail = _without_path(exc, path, name)
            raise self._refuse(name, stamp, ModelUnusableError(f"model {name!r} cannot be loaded: {detail}")) from exc
        except Exception as exc:  # see describe()
            error = ModelUnusableError(f"model {name!r} cannot be loaded ({type(exc).__name__})")
            raise self._refuse(name, stamp, error) from exc
        if task.image_size is None:
            error = ModelUnusableError(f"model {name!r} does not record the image size it was trained at")
            raise self._refuse(name, stamp, error)
        task.to(self.device)
        loaded = LoadedModel(info=info, task=task, device=self.device, stamp=stamp, regions=_search_regions(task, name))
        with self._lock:
            self._loaded[name] = loaded
        return loaded

    def preload(self) -> list[str]:
        """Load every usable checkpoint now; return the names loaded."""
        names = []
        for info in self.catalogue()[0]:
            self.get(info.name)
            names.append(info.name)
        return names
