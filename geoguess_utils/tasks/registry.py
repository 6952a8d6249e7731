"""The one list of tasks: the name stored in checkpoints -> the task class."""

from __future__ import annotations

from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.experimental.hybrid import HybridTask
from geoguess_utils.tasks.experimental.knn import KNNTask
from geoguess_utils.tasks.experimental.retrieval import RetrievalTask
from geoguess_utils.tasks.regression import RegressionTask

TASKS: dict[str, type[GeoTask]] = {
    task.task_name: task for task in (ClassificationTask, RegressionTask, RetrievalTask, HybridTask, KNNTask)
}
"""Task classes by the name stored in checkpoints (``geoguess fit --model`` takes their class paths)."""


def class_path(task: str) -> str:
    """The import path LightningCLI takes for a task name, e.g. ``"classification"``.

    Raises:
        KeyError: ``task`` names no task; the message lists the names.
    """
    if task not in TASKS:
        raise KeyError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    cls = TASKS[task]
    return f"{cls.__module__}.{cls.__qualname__}"
