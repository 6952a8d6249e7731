"""Inference: the one loop (``Trainer.predict`` over ``predict_step``) and predictions over dataset roots.

The package names its three entry points itself (``inference.predict``, ``inference.submission``,
``inference.run_predict``); importing it loads no torch.

Modules:

- ``calibrate``: Fit a checkpoint's calibration on its run's validation split and write it into the
  checkpoint.
- ``loop``: The one inference loop: ``Trainer.predict`` over a module's ``predict_step``.
- ``non_finite``: Report the locations whose network outputs were NaN or infinite.
- ``predictions``: Predictions of a trained task over dataset roots, through the one inference loop.
- ``progress``: Plain progress lines for prediction where no progress bar can draw (logs, pipes, CI).
"""

from geoguess_utils.inference.loop import run_predict
from geoguess_utils.inference.predictions import predict, submission

__all__ = ["predict", "run_predict", "submission"]
