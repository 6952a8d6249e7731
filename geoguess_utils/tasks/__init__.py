"""Lightning tasks: the shared base, classification and regression, decodings, losses and metrics.

Names below are importable from the package itself (``from geoguess_utils.tasks import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "AGGREGATES": "knn",
    "ClassificationTask": "classification",
    "DECODINGS": "decoding",
    "Decoder": "decoding",
    "GeoTask": "base",
    "HaversineMetrics": "metrics",
    "HybridTask": "hybrid",
    "KNNTask": "knn",
    "OPTIMIZERS": "base",
    "RegressionTask": "regression",
    "RetrievalSettings": "retrieval",
    "SCHEDULERS": "base",
    "TASKS": "registry",
    "clip_to_land": "decoding",
    "geometric_median": "decoding",
    "get_decoding": "decoding",
    "register_decoding": "decoding",
    "weighted_geometric_median": "decoding",
    "weighted_mean": "decoding",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
