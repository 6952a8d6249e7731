"""The checkpoint format, below everything that loads models.

``record`` is the geoguess entry inside a checkpoint (its fields, checks and the training
data it names); ``files`` reads checkpoint files safely and writes them atomically.
Rebuilding a task from a file is :func:`geoguess_utils.tasks.loading.load_task`.
"""
