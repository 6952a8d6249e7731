"""Report the locations whose network outputs were NaN or infinite.

The tasks' decoders turn any output into a finite point on land (a non-finite one
becomes the training set's fallback point), so a broken model would otherwise go
unnoticed: every location at the same place, exit status 0. Every task's
``predict_step`` marks such locations (``"non_finite"``), whatever the task computes
its outputs from; the commands count them with :meth:`OutputCount.of` and report the
count on stderr and in their summary line.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from geoguess_utils.evaluation import Predictions


@dataclass
class OutputCount:
    """How many locations went through the network, and how many gave a non-finite output.

    Attributes:
        total: Locations predicted.
        non_finite: Of those, rows holding at least one NaN or infinite value.
    """

    total: int = 0
    non_finite: int = 0

    @classmethod
    def of(cls, predictions: Predictions) -> OutputCount:
        """The count of a set of predictions (their ``non_finite`` marks)."""
        return cls(total=len(predictions.table), non_finite=predictions.non_finite_count)

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
