"""Fast image loading: JPEG decode with DCT scaling, and a pre-resized uint8 cache.

Decoding a 640x640 JPEG only to shrink it to 112x112 wastes most of the work. libjpeg
can decode at 1/2, 1/4 or 1/8 of the size directly (Pillow's ``Image.draft``), so
:func:`load_view` asks for the smallest scale that is still at least the target size,
then resizes with an antialiasing bilinear filter. ``use_draft=False`` decodes at full
size for comparison; both give the same pixels to within JPEG tolerance.

:class:`ImageCache` goes further: every view of a split, already resized, in one
``uint8`` memory-mapped file of shape (N, 4, size, size, 3), built once and reused by
later epochs and runs. A JSON sidecar records what it was built from (files, their
sizes and modification times, image size, decode path, code version) and the size and
modification time of the data file it describes; a cache whose key, byte size or data
file differs is rebuilt. The space is reserved before the first pixel is written, so
a full disk is reported as such instead of crashing the process mid-write.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from geoguess_utils.data.layout import IMAGE_FORMATS
from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
from geoguess_utils.errors import DataError
from geoguess_utils.io import atomic_path, atomic_write_text

CACHE_FORMAT = 1
"""Bumped whenever the way cached pixels are computed changes; older caches are rebuilt."""

_BUILD_CHUNK = 256


def load_view(
    path: str | os.PathLike[str],
    size: int,
    *,
    use_draft: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode one image and resize it to a square.

    Args:
        path: Image file (JPEG; PNG, GIF, BMP, TIFF and WebP also work, without DCT scaling).
        size: Output side in pixels.
        use_draft: Let libjpeg decode at a reduced scale when ``size`` is at most half
            the source size (much faster); otherwise decode at full size.
        max_pixels: Refuse images with more pixels than this before decoding them.

    Returns:
        ``uint8`` array of shape (size, size, 3), RGB. The DCT-scaled path differs from
        the full decode by less than JPEG compression itself changes the pixels; the
        largest gap is at an exact 1/8 reduction (e.g. 640 -> 80 px), where libjpeg keeps
        only each 8x8 block's mean (a box filter rather than a bilinear one).

    Raises:
        DataError: When the file is missing, unreadable, truncated, or too large;
            the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    if size < 1:
        raise ValueError(f"image size must be positive, got {size}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DataError(
                        f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels "
                        f"(possible decompression bomb); refusing to decode it"
                    )
                if use_draft and image.format == "JPEG" and 2 * size <= min(width, height):
                    image.draft("RGB", (size, size))
                rgb = image.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file not found") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: refusing a possible decompression bomb ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode the image ({exc})") from exc
    except Exception as exc:  # a decoder failing in any other way on hostile bytes
        raise DataError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from exc


def load_views(
    paths: Sequence[str | os.PathLike[str]],
    size: int,
    *,
    use_draft: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Load the views of one location.

    Args:
        paths: Image files in heading order (normally four: 0, 90, 180, 270); an empty path
            is a view the location does not have, returned as black pixels (the view mask,
            ``paths != ""``, says which views are real).
        size: Output side in pixels.
        use_draft: See :func:`load_view`.
        max_pixels: See :func:`load_view`.

    Returns:
        ``uint8`` array of shape (len(paths), size, size, 3).
    """
    absent = np.zeros((size, size, 3), dtype=np.uint8)
    return np.stack(
        [load_view(p, size, use_draft=use_draft, max_pixels=max_pixels) if str(p) else absent for p in paths]
    )


def cache_key(paths: Sequence[Sequence[str]], size: int, *, use_draft: bool = True) -> dict[str, Any]:
    """What an image cache depends on: every file's path, byte size and mtime, the size and decode path.

    Args:
        paths: One sequence of view paths per location.
        size: Cached image side, pixels.
        use_draft: Whether the cache is decoded with DCT scaling.

    Raises:
        DataError: When a file does not exist.
    """
    files: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    for views in paths:
        for path in views:
            if not str(path):  # a view the location does not have
                files.append("")
                sizes.append(-1)
                mtimes.append(-1)
                continue
            try:
                stat = os.stat(path)
            except OSError as exc:
                raise DataError(f"{path}: cannot read the image file ({exc.strerror})") from exc
            files.append(str(path))
            sizes.append(stat.st_size)
            mtimes.append(stat.st_mtime_ns)
    views_per_location = len(paths[0]) if len(paths) else 4
    return {
        "format": CACHE_FORMAT,
        "image_size": int(size),
        "decode": "draft" if use_draft else "full",
        "shape": [len(paths), views_per_location, int(size), int(size), 3],
        "dtype": "uint8",
        "files": files,
        "bytes": sizes,
        "mtime_ns": mtimes,
    }


def content_digest(key: dict[str, Any]) -> str:
    """SHA-256 hex digest of a JSON-able key (sorted keys): the name of a cache entry."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def data_stamp(path: Path) -> dict[str, int]:
    """Byte size and modification time of a cache data file (what the sidecar vouches for)."""
    stat = path.stat()
    return {"bytes": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}


def reserve_disk_space(path: Path, nbytes: int) -> None:
    """Allocate ``nbytes`` for ``path`` now, so that a full disk raises ``OSError(ENOSPC)`` here.

    Writing through a memory map into a sparse file on a full disk would otherwise kill
    the process with SIGBUS, with no message and no clean-up.
    """
    if nbytes <= 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, 0, nbytes)
            return
        except AttributeError:  # no posix_fallocate on this system (macOS, Windows)
            pass
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
        if shutil.disk_usage(path.parent).free < nbytes:  # the file system cannot reserve: check instead
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        os.ftruncate(fd, nbytes)
    finally:
        os.close(fd)


class MappedArray:
    """A read-only array in one raw file, memory-mapped on first use (or read into RAM).

    The file is opened lazily and reopened after pickling, so an instance can be handed to
    DataLoader worker processes without copying its contents. Subclasses set :attr:`dtype`.

    Args:
        data_path: The raw file.
        shape: The array's shape.
        in_memory: Read the whole file into RAM instead of memory-mapping it.
    """

    dtype: type = np.uint8

    def __init__(self, data_path: str | os.PathLike[str], shape: Sequence[int], *, in_memory: bool = False) -> None:
        self.data_path = Path(data_path)
        self.shape = tuple(int(s) for s in shape)
        self.in_memory = in_memory
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        """The whole array, shape :attr:`shape`, dtype :attr:`dtype`."""
        if self._array is None:
            if self.shape[0] == 0:
                self._array = np.zeros(self.shape, dtype=self.dtype)
            elif self.in_memory:
                self._array = np.fromfile(self.data_path, dtype=self.dtype).reshape(self.shape)
            else:
                self._array = np.memmap(self.data_path, dtype=self.dtype, mode="r", shape=self.shape)
        return self._array

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.array[index]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not self.in_memory:
            state["_array"] = None  # each worker maps the file itself
        return state


def sidecar_matches(data_path: Path, key_path: Path, key: dict[str, Any], nbytes: int) -> bool:
    """Whether a cache's sidecar vouches for ``key`` and for its data file as it is now.

    True when the sidecar holds this key (and its digest), the data file has ``nbytes``
    bytes, and its size and modification time are those the sidecar recorded when the
    file was finished (so a truncated, edited or half-written file never passes).
    """
    try:
        stored = json.loads(key_path.read_text())
    except (OSError, ValueError):
        return False
    if stored.get("digest") != content_digest(key) or stored.get("key") != key:
        return False
    if nbytes == 0:
        return True
    try:
        stamp = data_stamp(data_path)
    except OSError:
        return False
    return stamp["bytes"] == nbytes and stored.get("data") == stamp


class ImageCache(MappedArray):
    """Pre-resized views of a list of locations, memory-mapped from one ``uint8`` file.

    Indexing returns a (views, size, size, 3) ``uint8`` array (see :class:`MappedArray`).

    Args:
        data_path: The ``.u8`` file holding the raw array.
        shape: ``(N, views, size, size, 3)``.
        in_memory: Read the whole file into RAM instead of memory-mapping it.
    """

    @staticmethod
    def paths_for(cache_dir: str | os.PathLike[str], name: str, size: int) -> tuple[Path, Path]:
        """The data file and JSON sidecar of the cache ``name`` at ``size`` pixels."""
        stem = Path(cache_dir) / f"{name}_{size}px"
        return stem.with_suffix(".u8"), stem.with_suffix(".json")

    @classmethod
    def open_or_build(
        cls,
        paths: Sequence[Sequence[str]],
        size: int,
        cache_dir: str | os.PathLike[str],
        name: str,
        *,
        use_draft: bool = True,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        in_memory: bool = False,
        progress: bool = True,
        workers: int | None = None,
    ) -> ImageCache:
        """Open the cache ``name`` for these files, building it first if it is missing or stale.

        Stale means: no sidecar, a sidecar whose key differs (other files, a file changed
        size or modification time, another image size or decode path, older code), a
        data file whose byte size is not N * views * size * size * 3 (e.g. truncated), or
        a data file changed since the sidecar was written (other modification time).

        Args:
            paths: One sequence of view paths per location, in dataset order.
            size: Cached image side, pixels.
            cache_dir: Folder holding the cache files (created if missing).
            name: Cache name, e.g. the split (``"train"``).
            use_draft: Decode with DCT scaling (see :func:`load_view`).
            max_pixels: See :func:`load_view`.
            in_memory: Load the whole cache into RAM.
            progress: Show a progress bar while building.
            workers: Decoding threads while building; defaults to ``min(4, cpu count)``.

        Returns:
            The opened cache.

        Raises:
            DataError: When an image cannot be decoded; GeoguessError when the cache
                folder cannot be written (full disk, read-only), naming the file. A
                failed build leaves the previous cache files as they were.
        """
        key = cache_key(paths, size, use_draft=use_draft)
        data_path, key_path = cls.paths_for(cache_dir, name, size)
        shape = tuple(key["shape"])
        if not cls._is_fresh(data_path, key_path, key):
            cls._build(paths, size, data_path, key_path, key, use_draft, max_pixels, progress, workers)
        return cls(data_path, shape, in_memory=in_memory)

    @staticmethod
    def _is_fresh(data_path: Path, key_path: Path, key: dict[str, Any]) -> bool:
        return sidecar_matches(data_path, key_path, key, int(np.prod(key["shape"])))

    @staticmethod
    def _build(
        paths: Sequence[Sequence[str]],
        size: int,
        data_path: Path,
        key_path: Path,
        key: dict[str, Any],
        use_draft: bool,
        max_pixels: int,
        progress: bool,
        workers: int | None,
    ) -> None:
        from tqdm.auto import tqdm

        shape = tuple(key["shape"])
        stamp = None
        if shape[0] > 0:
            workers = workers if workers is not None else min(4, os.cpu_count() or 1)

            def load(index: int) -> np.ndarray:
                return load_views(paths[index], size, use_draft=use_draft, max_pixels=max_pixels)

            with atomic_path(data_path) as tmp:
                reserve_disk_space(tmp, int(np.prod(shape)))
                array = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
                bar = tqdm(total=shape[0], desc=f"caching {data_path.name}", unit="loc", disable=not progress)
                with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                    for start in range(0, shape[0], _BUILD_CHUNK):  # bounded number of decoded images in flight
                        stop = min(start + _BUILD_CHUNK, shape[0])
                        for index, views in zip(range(start, stop), pool.map(load, range(start, stop)), strict=True):
                            array[index] = views
                            bar.update(1)
                bar.close()
                array.flush()
                del array
                # the old sidecar goes just before the old data: a half-replaced cache never looks fresh
                key_path.unlink(missing_ok=True)
            stamp = data_stamp(data_path)
        else:
            key_path.unlink(missing_ok=True)
            data_path.unlink(missing_ok=True)
        atomic_write_text(key_path, json.dumps({"digest": content_digest(key), "key": key, "data": stamp}))
