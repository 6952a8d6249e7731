"""The embedding cache: each view's backbone features, computed once and memory-mapped.

While the backbone is frozen, every epoch would decode the same JPEGs and run the same
forward pass again. The cache stores the features of every view of every location,
``(N, 4, F)`` float16, in one file next to a JSON sidecar that names what they depend on:
the backbone's name and a digest of its weights, the image size, the input normalisation,
and every image file's path, size and modification time (the image cache's key). A cache
whose sidecar disagrees, whose data file was truncated or edited since, or that was
never finished, is rebuilt.

The features are computed through the one inference path, ``Trainer.predict``, with a
prediction writer that puts each batch's rows in place: on a GPU, under bf16 or across
several devices (each rank writes its rows into the shared file), the result is the same
file a single process writes.

Trade-off: augmentation cannot apply to cached features (they are of the un-augmented
views). The frozen phase trains on them; the fine-tuning phase reads images again and
augments them. Augmented copies are the middle way
(``--data.embeddings.augmented_copies K``): the training split's cache then holds the
features of K augmented versions of every view (the training augmentation, each copy
seeded per location, see :class:`~geoguess_utils.data.augment.AugmentedCopies`), K x N
rows in a file of its own (``<split>_<backbone>_<size>px_copies.f16``) whose key adds K,
the augmentation's settings and its seed; each epoch trains on one copy per location.
It costs K forward passes over the training split to build and K times its memory and
disk; validation and test keep the plain views' cache.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from geoguess_utils.data.augment import AugmentedCopies
from geoguess_utils.data.images import (
    MappedArray,
    cache_key,
    content_digest,
    data_stamp,
    reserve_disk_space,
    sidecar_matches,
)
from geoguess_utils.errors import DataError
from geoguess_utils.io import atomic_write_text

EMBED_FORMAT = 1
"""Version of the cache layout; a change makes every older cache stale."""


def weights_digest(module: Any) -> str:
    """Short hex digest of a module's parameters and buffers (names, shapes, dtypes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def embedding_key(
    paths: Sequence[Sequence[str]],
    backbone: str,
    digest: str,
    image_size: int,
    normalization: tuple[Sequence[float], Sequence[float]],
    num_features: int,
    *,
    use_draft: bool = True,
    copies: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a cache of features depends on (stored in its sidecar).

    Args:
        paths: One sequence of view paths per location, in dataset order.
        backbone: Backbone name.
        digest: :func:`weights_digest` of the backbone.
        image_size: Side of the views fed to the backbone, pixels.
        normalization: ``(mean, std)`` RGB statistics of the backbone's inputs.
        num_features: Feature size F of one view.
        use_draft: Whether views are decoded with DCT scaling.
        copies: For a cache of augmented copies, their key
            (:meth:`~geoguess_utils.data.augment.AugmentedCopies.key`: ``count`` K, the
            augmentation's settings, the seed); the key then holds it under ``"copies"``
            and its shape is (K x N, views, F). ``None``: the plain views' key, unchanged.
    """
    images = cache_key(paths, image_size, use_draft=use_draft)
    views = images["shape"][1]
    key = {
        "format": EMBED_FORMAT,
        "backbone": str(backbone),
        "weights": str(digest),
        "image_size": int(image_size),
        "normalization": {"mean": [float(v) for v in normalization[0]], "std": [float(v) for v in normalization[1]]},
        "shape": [len(paths), int(views), int(num_features)],
        "dtype": "float16",
        "images": {k: images[k] for k in ("decode", "files", "bytes", "mtime_ns")},
    }
    if copies is not None:
        count = int(copies["count"])
        if count < 1:
            raise DataError(f"a cache of augmented copies needs a count of at least 1, got {count}")
        key["copies"] = json.loads(json.dumps(copies))  # plain JSON values, as the sidecar stores them
        key["shape"] = [count * len(paths), int(views), int(num_features)]
    return key


class EmbeddingCache(MappedArray):
    """Per-view features of a list of locations, memory-mapped from one float16 file.

    ``cache[i]`` is a (views, F) float16 array; like the image cache (see
    :class:`~geoguess_utils.data.images.MappedArray`) DataLoader workers share the file.

    Args:
        data_path: The ``.f16`` file holding the raw array.
        shape: ``(N, views, F)``.
    """

    dtype = np.float16

    def __init__(self, data_path: str | os.PathLike[str], shape: Sequence[int]) -> None:
        super().__init__(data_path, shape)

    @staticmethod
    def paths_for(cache_dir: str | os.PathLike[str], name: str, key: dict[str, Any]) -> tuple[Path, Path]:
        """The data file and sidecar of cache ``name`` for ``key`` (the backbone and size are in the name).

        A cache of augmented copies (a key with ``"copies"``) has names of its own, ending
        in ``_copies``: it never replaces the plain views' cache, and one of another K,
        augmentation or seed replaces it.
        """
        stem = Path(cache_dir) / "embeddings" / f"{name}_{key['backbone'].replace('/', '_')}_{key['image_size']}px"
        if "copies" in key:
            stem = stem.with_name(f"{stem.name}_copies")
        return stem.with_suffix(".f16"), stem.with_suffix(".json")

    @classmethod
    def open_if_fresh(cls, cache_dir: str | os.PathLike[str], name: str, key: dict[str, Any]) -> EmbeddingCache | None:
        """The cache for ``key`` when it exists and is complete and unchanged; ``None`` otherwise."""
        data_path, key_path = cls.paths_for(cache_dir, name, key)
        if not sidecar_matches(data_path, key_path, key, int(np.prod(key["shape"])) * 2):
            return None
        return cls(data_path, key["shape"])


class Embedder(pl.LightningModule):
    """A backbone as a LightningModule whose ``predict_step`` gives each view's features.

    Args:
        backbone: A :class:`~geoguess_utils.models.backbones.Backbone` (shared, not copied).
        name: Its registry name.
        normalization: ``(mean, std)`` its inputs are normalised with.
    """

    def __init__(self, backbone: Any, name: str, normalization: tuple[Sequence[float], Sequence[float]]) -> None:
        super().__init__()
        self.backbone = backbone
        self.name = str(name)
        self.normalization = normalization

    @classmethod
    def of_task(cls, task: Any) -> Embedder:
        """The embedder of a task's backbone (the same module: no copy of the weights)."""
        if task.net is None:
            raise DataError("the task's network is not built yet: call configure_context() first")
        return cls(task.net.backbone, str(task.hparams.backbone), task.normalization)

    @classmethod
    def by_name(cls, name: str, pretrained: bool = True) -> Embedder:
        """A fresh backbone from the registry (``pretrained``: its ImageNet weights)."""
        from geoguess_utils.models.backbones import backbone_normalization, build_backbone

        return cls(build_backbone(name, pretrained), name, backbone_normalization(name))

    def view_features(self, images: torch.Tensor) -> torch.Tensor:
        """Features (B, V, F) of images (B, V, 3, H, W)."""
        batch, views = images.shape[:2]
        return self.backbone(images.reshape(batch * views, *images.shape[2:])).reshape(batch, views, -1)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """``{"index": (B,), "view_features": (B, V, F)}`` of a batch of the dataset."""
        return {"index": torch.as_tensor(batch["index"]), "view_features": self.view_features(batch["images"])}


class TaskFeatures:
    """A task's backbone as the data module's :class:`~geoguess_utils.data.feature_source.FeatureSource`.

    Features are served while the task's backbone is frozen (and its network built); they
    are keyed by the backbone's name and a digest of its weights, so a backbone that has
    learnt gives new features.

    Args:
        task: A :class:`~geoguess_utils.tasks.base.GeoTask` (its network may be built later).
    """

    def __init__(self, task: Any) -> None:
        self.task = task

    def serving(self) -> bool:
        """Whether the task's backbone is frozen now and its network exists."""
        return bool(getattr(self.task, "backbone_frozen", False)) and getattr(self.task, "net", None) is not None

    def key(self) -> tuple[str, str]:
        """``(backbone name, weights digest)``."""
        if self.task.net is None:
            raise DataError("the task's network is not built yet: call configure_context() first")
        return str(self.task.hparams.backbone), weights_digest(self.task.net.backbone)

    def build(self, split: str, dataset: Any, cache_dir: Path, batch_size: int, num_workers: int) -> EmbeddingCache:
        """Open (computing it first when needed) the cache of ``dataset`` for the task's backbone."""
        return build_embeddings(
            Embedder.of_task(self.task),
            dataset,
            cache_dir,
            split,
            batch_size=batch_size,
            num_workers=num_workers,
            in_place=True,
        )


def build_embeddings(
    embedder: Embedder,
    dataset: Any,
    cache_dir: str | os.PathLike[str],
    name: str,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    device: str = "auto",
    progress: bool = False,
    in_place: bool = False,
) -> EmbeddingCache:
    """Open the embedding cache of ``dataset`` for the embedder's backbone, computing it first when needed.

    Args:
        embedder: The backbone (:meth:`Embedder.of_task` or :meth:`Embedder.by_name`).
        dataset: A :class:`~geoguess_utils.data.geodataset.GeoDataset` without augmentation,
            normalised for that backbone; or an
            :class:`~geoguess_utils.data.augment.AugmentedCopies` of one (K augmented copies
            of each location): the cache then holds K x N rows, row ``c * N + i`` copy ``c``
            of location ``i``, takes K times the plain cache's disk (printed when it is
            built) and its key adds the copies' key; building it prints progress lines
            (``embedding cache: train copy 2/4, 1,200/1,600 locations, 31.2 s``) on standard error.
        cache_dir: Folder of the dataset's caches (the features go in ``embeddings/``).
        name: Cache name, e.g. the split.
        batch_size: Locations per forward pass.
        num_workers: DataLoader worker processes.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress: Show a progress bar.
        in_place: Run the embedder's ``predict_step`` in a plain loop on the backbone's own
            device instead of through ``Trainer.predict``: for a backbone that a running
            ``trainer.fit`` owns (the datamodule's frozen phase).

    Returns:
        The opened cache; row ``i`` holds the features of ``dataset[i]``.

    Raises:
        DataError: When the dataset is augmented (cached features must be of the plain views,
            or of seeded augmented copies of them), or normalised with other statistics than
            the backbone's.
    """
    copies = dataset if isinstance(dataset, AugmentedCopies) else None
    views = copies.dataset if copies is not None else dataset
    if getattr(views, "augment", None) is not None:
        raise DataError("embeddings are computed from un-augmented views: pass a dataset without augmentation")
    mean, std = (tuple(round(float(v), 6) for v in values) for values in embedder.normalization)
    if hasattr(views, "_mean") and (
        tuple(round(float(v), 6) for v in views._mean.flatten()) != mean
        or tuple(round(float(v), 6) for v in views._std.flatten()) != std
    ):
        raise DataError(f"the dataset's views are not normalised as backbone {embedder.name!r} expects ({mean}, {std})")
    key = embedding_key(
        views.paths.tolist(),
        embedder.name,
        weights_digest(embedder.backbone),
        views.image_size,
        embedder.normalization,
        embedder.backbone.num_features,
        use_draft=views.use_draft,
        copies=copies.key() if copies is not None else None,
    )
    cache = EmbeddingCache.open_if_fresh(cache_dir, name, key)
    if cache is not None:
        return cache
    lines = _CopyLines(name, copies.copies, copies.locations) if copies is not None else None
    if lines is not None:
        lines.begin(key)
    _compute(embedder, dataset, cache_dir, name, key, batch_size, num_workers, device, progress, in_place, lines)
    cache = EmbeddingCache.open_if_fresh(cache_dir, name, key)
    if cache is None:
        raise DataError(f"the embedding cache {name!r} in {cache_dir} could not be written completely")
    return cache


def _compute(
    embedder: Embedder,
    dataset: Any,
    cache_dir: str | os.PathLike[str],
    name: str,
    key: dict[str, Any],
    batch_size: int,
    num_workers: int,
    device: str,
    progress: bool,
    in_place: bool,
    lines: _CopyLines | None = None,
) -> None:
    from torch.utils.data import DataLoader

    from geoguess_utils.inference.loop import run_predict

    data_path, key_path = EmbeddingCache.paths_for(cache_dir, name, key)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    shape = tuple(key["shape"])
    partial = partial_path(data_path)
    key_path.unlink(missing_ok=True)  # the old sidecar goes first: a half-written cache never looks fresh
    remove_stale_partials(data_path)
    if shape[0]:
        partial.touch()
        reserve_disk_space(partial, int(np.prod(shape)) * 2)
        writer = _RowWriter(partial, shape, lines)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        was_training = embedder.backbone.training
        try:
            if in_place:
                _compute_in_place(embedder, loader, writer)
            else:
                run_predict(
                    embedder,
                    loader,
                    device=device,
                    progress=progress and lines is None,
                    callbacks=[writer],
                    return_predictions=False,
                )
        except BaseException:  # an error or Ctrl+C: the unfinished file is of no use to anyone
            writer.flush()
            partial.unlink(missing_ok=True)
            raise
        finally:
            embedder.backbone.train(was_training)
        if writer.rows_written < shape[0]:
            partial.unlink(missing_ok=True)
            raise DataError(f"computed features for {writer.rows_written} of {shape[0]} locations of {name!r}")
        os.replace(partial, data_path)
        stamp = data_stamp(data_path)
    else:
        data_path.unlink(missing_ok=True)
        stamp = None
    atomic_write_text(key_path, json.dumps({"digest": content_digest(key), "key": key, "data": stamp}))


def _host_tag() -> str:
    """This machine's name as it appears in a partial file's name (letters, digits, ``-`` and ``_`` only)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "localhost"


def partial_path(data_path: Path) -> Path:
    """The file this process fills before it becomes ``data_path``: ``.<data name>.<host>.<pid>.partial``.

    The machine's name and the process id in the name tell a file another process is
    still writing from one left behind by a process that was killed.
    """
    return data_path.with_name(f".{data_path.name}.{_host_tag()}.{os.getpid()}.partial")


def _writer_of(partial: Path, data_path: Path) -> tuple[str, int] | None:
    """``(host, pid)`` of the process that wrote ``partial`` for ``data_path``; ``None`` for another file.

    A name with a process id only (``.<data name>.<pid>.partial``, written by earlier
    versions) is taken as written on this machine.
    """
    prefix, suffix = f".{data_path.name}.", ".partial"
    name = partial.name
    if not (name.startswith(prefix) and name.endswith(suffix)):
        return None
    parts = name[len(prefix) : -len(suffix)].split(".")
    if len(parts) == 1 and parts[0].isdigit():
        return _host_tag(), int(parts[0])
    if len(parts) == 2 and parts[0] and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None


def process_is_running(pid: int) -> bool:
    """Whether a process with id ``pid`` exists on this machine (when in doubt: ``True``).

    Args:
        pid: A process id.

    Returns:
        ``False`` only when the system says there is no such process; a process owned by
        another user, or a system that cannot tell (Windows), counts as running.
    """
    if pid <= 0 or os.name == "nt":  # on Windows os.kill(pid, 0) would end the process, not probe it
        return pid > 0
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists but belongs to someone else
        return True
    return True


def remove_stale_partials(data_path: Path) -> list[Path]:
    """Delete the unfinished files of cache ``data_path`` left by processes that no longer run.

    A process killed while it computed the cache (``kill -9``, a lost machine) leaves its
    ``.partial`` file behind. Only files of this cache entry written on this machine are
    considered; one whose process still runs (another process computing the same cache)
    is left alone, and so is this process's own file, which is about to be rewritten.

    Args:
        data_path: The cache's ``.f16`` data file.

    Returns:
        The files deleted.
    """
    removed: list[Path] = []
    if not data_path.parent.is_dir():
        return removed
    host, own = _host_tag(), os.getpid()
    for candidate in data_path.parent.glob(f".{glob.escape(data_path.name)}.*.partial"):
        writer = _writer_of(candidate, data_path)
        if writer is None or writer[0] != host or writer[1] == own or process_is_running(writer[1]):
            continue
        try:
            candidate.unlink()
        except OSError:  # tidied by another process first, or not ours to delete: it does no harm
            continue
        removed.append(candidate)
    return removed


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (CPU for a module without parameters)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _compute_in_place(embedder: Embedder, loader: Any, writer: _RowWriter) -> None:
    """The embedder's ``predict_step`` in a plain loop, on the backbone's own device.

    Used when the backbone already sits on a device inside a running fit (the frozen phase
    asks for its features there): a second Trainer would move it and take it over.
    A progress bar shows unless the writer prints progress lines.
    """
    from tqdm.auto import tqdm

    device = device_of(embedder.backbone)
    embedder.backbone.eval()
    desc = f"embedding {writer.path.name.split('_')[0].lstrip('.')}"
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=writer.lines is not None)
    with torch.inference_mode():
        for batch_idx, batch in enumerate(bar):
            writer.write_rows(embedder.predict_step({**batch, "images": batch["images"].to(device)}, batch_idx))
    writer.flush()


class _RowWriter(BasePredictionWriter):
    """Prediction writer: each batch's features go to their rows of the shared file (on any rank)."""

    def __init__(self, path: Path, shape: tuple[int, ...], lines: _CopyLines | None = None) -> None:
        super().__init__(write_interval="batch")
        self.path = path
        self.shape = shape
        self.lines = lines
        self.rows_written = 0
        self._array: np.ndarray | None = None

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        """Write the batch's ``view_features`` at its ``index`` rows."""
        if not trainer.is_global_zero:
            self.lines = None  # one process prints
        self.write_rows(prediction)

    def write_rows(self, prediction: dict[str, Any]) -> None:
        """Put ``prediction["view_features"]`` (B, V, F) at rows ``prediction["index"]`` (B,)."""
        if self._array is None:
            self._array = np.memmap(self.path, dtype=np.float16, mode="r+", shape=self.shape)
        rows = torch.as_tensor(prediction["index"]).cpu().numpy()
        self._array[rows] = prediction["view_features"].float().cpu().numpy().astype(np.float16)
        self.rows_written += len(rows)
        if self.lines is not None:
            self.lines.update(self.rows_written)

    def flush(self) -> None:
        """Write the mapped rows to the file and close it."""
        if self._array is not None:
            self._array.flush()
            self._array = None

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        """Flush, wait for every rank, and count the rows all ranks wrote."""
        self.flush()
        trainer.strategy.barrier()
        total = trainer.strategy.reduce(torch.tensor(float(self.rows_written)), reduce_op="sum")
        self.rows_written = int(total)


class _CopyLines:
    """Progress lines while augmented copies are computed, on standard error.

    First the size of what is built, then a line each time another tenth of the rows is
    done, e.g. ``embedding cache: train copy 2/4, 1,200/1,600 locations, 31.2 s``. Rows are
    counted in the order they are computed: copy by copy.

    Args:
        name: The cache's name (the split).
        copies: K.
        locations: N, locations per copy.
        steps: Lines after the first (at most one per batch).
    """

    def __init__(self, name: str, copies: int, locations: int, steps: int = 10) -> None:
        self.name = str(name)
        self.copies = int(copies)
        self.locations = int(locations)
        self.steps = max(1, int(steps))
        self._next = 1
        self._started = time.perf_counter()

    def begin(self, key: dict[str, Any]) -> None:
        """Print what is built and its size (``key``: the cache's :func:`embedding_key`)."""
        rows, views, width = (int(v) for v in key["shape"])
        size = rows * views * width * 2
        self._next = 1
        self._started = time.perf_counter()
        self._print(
            f"embedding cache: computing {self.copies} augmented copies of {self.locations:,} {self.name} "
            f"locations: {rows:,} x {views} x {width:,} float16, {_size_text(size)} ({self.copies} x the plain cache)"
        )

    def line(self, done: int, seconds: float) -> str:
        """The line after ``done`` rows, ``seconds`` s in."""
        which = min(max(done - 1, 0) // max(self.locations, 1), self.copies - 1)
        within = done - which * self.locations
        return (
            f"embedding cache: {self.name} copy {which + 1}/{self.copies}, "
            f"{within:,}/{self.locations:,} locations, {seconds:.1f} s"
        )

    def update(self, done: int) -> None:
        """Count ``done`` rows in all; print a line when another tenth of them is done."""
        total = self.copies * self.locations
        if total <= 0 or done * self.steps < self._next * total:
            return
        self._print(self.line(done, time.perf_counter() - self._started))
        self._next = done * self.steps // total + 1

    @staticmethod
    def _print(text: str) -> None:
        print(text, file=sys.stderr, flush=True)


def _size_text(nbytes: int) -> str:
    """``nbytes`` as ``12.3 MB`` or ``1.2 GB`` (decimal units)."""
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:.1f} MB"
