"""Count the locations whose network outputs were NaN or infinite while a command ran.

The tasks' decoders turn any output into a finite point on land (a non-finite one
becomes the training set's fallback point), so a broken model would otherwise go
unnoticed: every location at the same place, exit status 0. The commands wrap their
prediction in :func:`watch_network_outputs` and report the count on stderr and in their
summary line.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class OutputCount:
    """How many locations went through the network, and how many gave a non-finite output.

    Attributes:
        total: Locations (rows of the network's ``(B, num_outputs)`` outputs) seen.
        non_finite: Of those, rows holding at least one NaN or infinite value.
    """

    total: int = 0
    non_finite: int = 0

    def summary(self) -> str:
        """A clause for a command's summary line, e.g. ``"0 non-finite network outputs"``."""
        return f"{self.non_finite} of {self.total} locations with non-finite network outputs"

    def warn(self, command: str, stream: TextIO | None = None) -> bool:
        """Print a warning on ``stream`` (stderr by default) when any output was non-finite.

        Returns:
            Whether a warning was printed.
        """
        if not self.non_finite:
            return False
        print(
            f"geoguess {command}: warning: the network gave NaN or infinite outputs for {self.non_finite} of "
            f"{self.total} locations; those were placed at the model's fallback point (the training set's mean "
            "position), so their predictions mean nothing. The checkpoint or the images are probably broken",
            file=sys.stderr if stream is None else stream,
        )
        return True


@contextlib.contextmanager
def watch_network_outputs() -> Iterator[OutputCount]:
    """Count, while the block runs, the rows of every multi-view network output that are not finite.

    A global forward hook sees every :class:`~geoguess_utils.models.multiview.MultiViewNet`
    call, however the prediction loop is written; it is removed when the block ends.

    Yields:
        The :class:`OutputCount`, updated as batches go through.
    """
    import torch
    from torch.nn.modules.module import register_module_forward_hook

    from geoguess_utils.models.multiview import MultiViewNet

    count = OutputCount()

    def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(module, MultiViewNet) and isinstance(output, torch.Tensor) and output.ndim == 2:
            finite_rows = torch.isfinite(output.detach()).all(dim=1)
            count.total += int(finite_rows.numel())
            count.non_finite += int((~finite_rows).sum())

    handle = register_module_forward_hook(hook)
    try:
        yield count
    finally:
        handle.remove()
