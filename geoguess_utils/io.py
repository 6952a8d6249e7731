"""Atomic file writes: a crash never leaves a half-written file behind.

Every writer puts its bytes into a temporary file in the destination folder, flushes
them to disk, then renames the temporary file over the destination (``os.replace``
is atomic on POSIX and Windows). Readers therefore see either the previous complete
file or the new complete file, never a mixture.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from geoguess_utils.errors import GeoguessError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _explain(exc: OSError, path: Path) -> GeoguessError:
    if exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = "permission denied (read-only location?)"
    else:
        reason = exc.strerror or str(exc)
    return GeoguessError(f"could not write {path}: {reason}; the previous file, if any, is unchanged")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it onto ``path`` on success.

    The caller writes the complete file to the yielded path. If the block raises, the
    temporary file is removed and ``path`` keeps its previous content.

    Args:
        path: Final destination. Its parent folder is created when missing.

    Yields:
        A fresh temporary path in the same folder as ``path``.

    Raises:
        GeoguessError: When the folder cannot be written (disk full, read-only, ...).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.close(fd)
    except OSError as exc:
        raise _explain(exc, final) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _explain(exc, final) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_csv(df: pd.DataFrame, path: str | os.PathLike[str], **to_csv_kwargs: object) -> Path:
    """Write a DataFrame as CSV atomically (``index=False`` unless given) and return the path."""
    to_csv_kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **to_csv_kwargs)
    return Path(path)
