"""Lightning tasks: the shared base, classification and regression, decodings, losses and metrics.

Names below are importable from the package itself (``from geoguess_utils.tasks import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "ClassificationTask": "classification",
    "KNNTask": "knn",
    "HybridTask": "hybrid",
    "RetrievalSettings": "retrieval",
    "DECODINGS": "decoding",
    "Decoding": "decoding",
    "GeoTask": "base",
    "HaversineMetrics": "metrics",
    "OPTIMIZERS": "base",
    "RECOMMENDED_TAU_KM": "losses",
    "RegressionTask": "regression",
    "SCHEDULERS": "base",
    "TASKS": "registry",
    "clip_to_land": "decoding",
    "haversine_soft_targets": "losses",
    "weighted_geometric_median": "decoding",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
