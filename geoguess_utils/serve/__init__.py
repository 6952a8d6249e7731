"""Serve: the ``geoguess serve`` inference service and its "where is this?" page.

Modules: ``registry`` (the checkpoints of the models folder), ``uploads`` (photos and
zips -> pixels), ``predictor`` (one forward pass through ``predict_step``), ``batcher``
(requests that arrive together share a pass), ``errors`` (JSON errors, upload limit),
``sample`` (random locations for the page), ``app`` (the FastAPI application) and
``loadtest`` (a bounded load generator). Each module is imported on first use.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "Batcher": "batcher",
    "ModelRegistry": "registry",
    "ServeConfig": "app",
    "create_app": "app",
    "predict_locations": "predictor",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
