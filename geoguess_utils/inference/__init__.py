"""Inference: the one loop (``Trainer.predict`` over ``predict_step``) and predictions over dataset roots.

Names below are importable from the package itself (``from geoguess_utils.inference import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "Predictions": "roots",
    "predict": "roots",
    "run_predict": "loop",
    "submission": "roots",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
