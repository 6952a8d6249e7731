"""Training: the ``geoguess fit`` command line, callbacks, safe checkpoints, resumption and runs.

Names below are importable from the package itself (``from geoguess_utils.training import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "AtomicCheckpointIO": "checkpoint",
    "BOOKKEEPING": "cleanup",
    "CPU_CONFIG": "runs",
    "GPU_CONFIG": "runs",
    "GeoguessCLI": "lightning_cli",
    "IMAGE_SIZE_RANGE": "checkpoint",
    "INTERRUPTED_EXIT_CODE": "lightning_cli",
    "MONITOR": "lightning_cli",
    "PlateauCatchUp": "resume",
    "QUICK_OVERRIDES": "runs",
    "RECORD_FORMAT": "checkpoint",
    "RECORD_KEY": "checkpoint",
    "REGRESSION_LR": "runs",
    "RENAMED_METRICS": "moved_keys",
    "RunCheckpoint": "callbacks",
    "RunFiles": "runs",
    "SaveSplitCallback": "callbacks",
    "StepCheckpoint": "resume",
    "StepSeed": "resume",
    "TASK_CLASSES": "runs",
    "best_checkpoint": "lightning_cli",
    "check_finite_weights": "checkpoint",
    "check_moved_keys": "moved_keys",
    "check_resume_checkpoint": "lightning_cli",
    "clear_run_dir": "runs",
    "default_config": "runs",
    "describe_checkpoint": "lightning_cli",
    "describe_context_difference": "checkpoint",
    "find_or_train": "runs",
    "first_non_finite": "checkpoint",
    "fit": "lightning_cli",
    "fit_arguments": "runs",
    "load_checkpoint": "checkpoint",
    "load_task": "checkpoint",
    "logged_test_results": "runs",
    "moved_key_problems": "moved_keys",
    "new_log_dirs": "cleanup",
    "read_metrics": "runs",
    "read_record": "checkpoint",
    "remove_unused_log_dirs": "cleanup",
    "resolve_config": "runs",
    "run": "lightning_cli",
    "run_files_of_checkpoint": "runs",
    "test_best": "lightning_cli",
    "train": "runs",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
