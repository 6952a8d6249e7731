"""Task classes by the name stored in checkpoints."""

from __future__ import annotations

from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.hybrid import HybridTask
from geoguess_utils.tasks.knn import KNNTask
from geoguess_utils.tasks.regression import RegressionTask

TASKS: dict[str, type[GeoTask]] = {
    "classification": ClassificationTask,
    "regression": RegressionTask,
    "knn": KNNTask,
    "hybrid": HybridTask,
}
"""Task classes by the name stored in checkpoints."""
