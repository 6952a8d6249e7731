"""Error types raised by geoguess for problems a user can fix.

Catching :class:`GeoguessError` catches every one of them; the command line prints
its message without a traceback.
"""


class GeoguessError(Exception):
    """Base class of all errors the project raises on purpose."""


class DataError(GeoguessError):
    """A dataset, CSV row, image or cache is missing, malformed or inconsistent."""


class CheckpointError(GeoguessError):
    """A checkpoint is unsafe, corrupt, or does not match what was asked for."""


class ConfigError(GeoguessError):
    """A configuration value or command-line argument is invalid."""


# ----------------------------------------------------------------------------- exit status of every command

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_REFUSED = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_PROBLEMS: "done, but problems were found (validate lists them)",
    EXIT_REFUSED: "refused: a bad argument, invalid data, an unsafe or mismatching checkpoint, an output path that "
    "would overwrite an input, or a file that could not be read or written (the message says which)",
    EXIT_INTERNAL: "internal error: a bug in geoguess (the traceback is printed; please report it)",
    EXIT_INTERRUPTED: "interrupted with Ctrl+C (fit keeps its checkpoints and can resume)",
}
"""Exit status of every ``geoguess`` command -> what it means."""

EXIT_CODES_HELP = "exit status: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items())
