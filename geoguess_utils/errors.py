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
