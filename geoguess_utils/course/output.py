"""What the notebooks print: the same quiet output as the ``geoguess`` commands, for a whole session.

Every ``geoguess`` command runs inside :func:`geoguess_utils.quiet.quiet_dependencies`, which
hides Lightning's service adverts, its note on modules in eval mode and the dependencies'
deprecation warnings. A notebook trains across several cells, so :func:`quiet_notebook`
keeps that same block open for the rest of the session instead. It also hides the lines
Lightning logs each time a ``Trainer`` is built or a checkpoint restored (which
accelerators it found, which checkpoint it loaded): the notebooks say these things
themselves. Every other warning still shows.
"""

from __future__ import annotations

import contextlib
import logging

from geoguess_utils.quiet import quiet_dependencies

LIGHTNING_INFO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")
"""Loggers of Lightning's start-up lines; :func:`quiet_notebook` lets only their warnings through."""

_SESSION = contextlib.ExitStack()
_ENTERED: list[bool] = []


def quiet_notebook() -> None:
    """Hide, for the rest of this Python session, what the ``geoguess`` commands hide.

    Used in notebooks 04 and 05, section 'Setup'.

    Enters :func:`geoguess_utils.quiet.quiet_dependencies` and never leaves it, and raises the
    level of :data:`LIGHTNING_INFO_LOGGERS` to warnings. Calling it again does nothing.
    """
    if _ENTERED:
        return
    _SESSION.enter_context(quiet_dependencies())
    for name in LIGHTNING_INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _ENTERED.append(True)
