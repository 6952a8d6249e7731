"""Whether a view file may be opened: a regular file inside its dataset, found without opening it.

Opening a FIFO blocks for ever, a symbolic link to itself cannot be resolved, and a link
(of the file, or of its location folder) that leads out of the dataset would read and show
a file from elsewhere, ``/etc/passwd`` included. :func:`view_file_problem` finds each of
these with ``stat`` and ``realpath`` alone; validation reports them, and the server's sample
folder never serves them.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NOT_A_FILE_KINDS: dict[str, str] = {
    "fifo": "a named pipe (FIFO)",
    "socket": "a socket",
    "char": "a character device",
    "block": "a block device",
    "dir": "a folder",
}
"""What a path can be instead of a regular file -> how messages name it."""


def _kind(mode: int) -> str:
    checks = (
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "char"),
        (stat.S_ISBLK, "block"),
        (stat.S_ISDIR, "dir"),
    )
    return next((name for check, name in checks if check(mode)), "other")


def escapes(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path | None:
    """Where ``path`` really leads when that is outside ``root`` (links followed), else ``None``."""
    target = Path(os.path.realpath(path))
    return None if target.is_relative_to(os.path.realpath(root)) else target


def view_file_problem(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> tuple[str, str] | None:
    """Why the view at ``path`` must not be opened, or ``None`` when it is a regular file inside ``root``.

    Nothing is opened: the answer comes from ``realpath`` and ``stat``.

    Args:
        path: The view file (it may be a symbolic link, or lie in a linked folder).
        root: The folder it must stay inside (the dataset's image folder).

    Returns:
        ``(kind, reason)``: kind ``"outside_root"`` (a link leads out of ``root``) or
        ``"not_a_file"`` (a link loop, a FIFO, a socket, a device, a folder), and a reason
        to put after the path in a message; ``None`` when the file may be read.
    """
    outside = escapes(path, root)
    if outside is not None:
        return "outside_root", f"symbolic link resolves to {outside}, outside {root}; refusing to read it"
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "not_a_file", "is a symbolic link loop; refusing to read it"
        if exc.errno == errno.ENOENT:
            return None  # a dangling link or a file that went away: reading it reports it as missing
        return "not_a_file", f"cannot be examined ({exc.strerror}); refusing to read it"
    if stat.S_ISREG(mode):
        return None
    what = NOT_A_FILE_KINDS.get(_kind(mode), "not a regular file")
    return "not_a_file", f"is {what}, not an image file; refusing to read it"
