"""Hide what a learner cannot act on: Lightning's service adverts and banners, dependencies' deprecations.

Every ``geoguess`` command runs inside :func:`quiet_dependencies`, and the notebooks' set-up
applies it too. Only those messages go: every other warning and log line still shows.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

EVAL_MODE_NOTE = r"Found \d+ module\(s\) in eval mode"
"""Lightning's note on modules in eval mode when training starts: the frozen backbone's batch norms, on purpose."""


@contextlib.contextmanager
def quiet_dependencies() -> Iterator[None]:
    """Hide Lightning's service adverts and banners and the dependencies' deprecation warnings in this block.

    Only for the duration of the block, and only these: every other warning and log line still shows.
    """
    advert = _DropAdverts()
    loggers = [logging.getLogger(name) for name in _RANK_ZERO_LOGGERS]
    for logger in loggers:
        logger.addFilter(advert)
    try:
        with warnings.catch_warnings():
            for module in _QUIET_DEPRECATIONS:
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
                warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", message=EVAL_MODE_NOTE)
            try:
                from jsonargparse._deprecated import JsonargparseDeprecationWarning
            except ImportError:  # a jsonargparse without it: nothing to hide
                pass
            else:
                warnings.filterwarnings("ignore", category=JsonargparseDeprecationWarning)
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(advert)


_RANK_ZERO_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "lightning_fabric.utilities.seed",
)
_QUIET_DEPRECATIONS = (r"pytorch_lightning\..*", r"lightning_fabric\..*", r"jsonargparse\..*", r"torch\..*")


class _DropAdverts(logging.Filter):
    """Drop Lightning's "Tip: try installing ..." lines (a cloud service's advert) and its "Seed set to" banner.

    The seed is in the run's saved config.yaml; the banner would come before any error message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        advert = text.lstrip("💡 ").startswith("Tip:") and "install" in text
        return not (advert or text.startswith("Seed set to"))
