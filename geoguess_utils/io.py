"""Atomic file writes: a crash never leaves a half-written file behind.

Every writer puts its bytes into a temporary file in the destination folder, flushes
them to disk, then renames the temporary file over the destination (``os.replace``
is atomic on POSIX and Windows). Readers therefore see either the previous complete
file or the new complete file, never a mixture.

Destinations behave as with the coreutils: a symbolic link is followed and its target
is replaced (the link stays), a device or FIFO (``/dev/stdout``, a named pipe) is written
through directly, since it cannot be replaced, and a folder is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from geoguess_utils.errors import GeoguessError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


# /dev/stdout, /dev/fd/1, /proc/self/fd/1: whatever the descriptor is (even a regular file the shell
# redirected to), the caller means "write to it", not "replace the file behind it".
_DESCRIPTOR_PATH = re.compile(r"/dev/(?:(stdout)|(stderr)|fd/(\d+))|/proc/(self|\d+)/fd/(\d+)")


def _own_descriptor(path: Path) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout`` -> 1), else ``None``."""
    match = _DESCRIPTOR_PATH.fullmatch(os.path.abspath(path))
    if match is None:
        return None
    stdout, stderr, dev_fd, pid, proc_fd = match.groups()
    if stdout or stderr:
        return 1 if stdout else 2
    if dev_fd is not None:
        return int(dev_fd)
    return int(proc_fd) if pid in ("self", str(os.getpid())) else None


def _destination(path: Path) -> tuple[Path, bool]:
    """Return the file to write for ``path`` and whether it must be written through (not replaced).

    Raises:
        GeoguessError: When ``path`` is a folder.
    """
    if _DESCRIPTOR_PATH.fullmatch(os.path.abspath(path)):
        return path, True
    try:
        info = os.stat(path)  # follows symbolic links
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _explain(exc, path) from exc
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise GeoguessError(f"could not write {path}: it is a folder; give the name of a file to write")
    if info is not None and not stat.S_ISREG(info.st_mode):
        return path, True  # a device, a FIFO or a socket: write into it, never replace it
    if path.is_symlink():
        return Path(os.path.realpath(path)), False  # replace the link's target, keep the link
    return path, False


def _write_through(source: Path, final: Path) -> None:
    """Copy the finished temporary file into a device or FIFO without creating or truncating anything.

    A path naming one of this process's descriptors (``/dev/stdout``) is written through
    that descriptor, at its current position, as a shell redirection expects.
    """
    number = _own_descriptor(final)
    if number is not None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # what was printed before comes first
        fd = os.dup(number)
    else:
        fd = os.open(final, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
    with open(source, "rb") as data, os.fdopen(fd, "wb", closefd=True) as out:
        shutil.copyfileobj(data, out)


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

    A symbolic link is followed (its target is replaced), a device or FIFO is written
    through once the block has finished (the temporary file then lives in the system's
    temporary folder), and a folder is refused.

    Yields:
        A fresh temporary path in the same folder as ``path``.

    Raises:
        GeoguessError: When ``path`` is a folder or cannot be written (disk full, read-only, ...).
    """
    final, through = _destination(Path(path))
    try:
        if not through:
            final.parent.mkdir(parents=True, exist_ok=True)
        folder = None if through else final.parent
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.close(fd)
    except OSError as exc:
        raise _explain(exc, final) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        if through:
            _write_through(tmp, final)
            tmp.unlink()
            return
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
