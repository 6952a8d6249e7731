"""Training: the ``geoguess fit`` command line, callbacks, safe checkpoints, resumption and runs.

Names below are importable from the package itself (``from geoguess_utils.training import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "BOOKKEEPING": "cleanup",
    "COMMON_OVERRIDES": "fit_guidance",
    "EpochLine": "callbacks",
    "GeoguessCLI": "lightning_cli",
    "HELP_SHORT_FLAG": "fit_guidance",
    "INTERRUPTED_EXIT_CODE": "lightning_cli",
    "MONITOR": "lightning_cli",
    "PlateauCatchUp": "resume",
    "QUICK_CONFIG": "fit_guidance",
    "RENAMED_METRICS": "moved_keys",
    "RunCheckpoint": "callbacks",
    "RunFiles": "run_files",
    "SHORT_USAGE": "fit_guidance",
    "SaveSplitCallback": "callbacks",
    "StepCheckpoint": "resume",
    "StepSeed": "resume",
    "bad_option_message": "fit_guidance",
    "best_checkpoint": "lightning_cli",
    "check_moved_keys": "moved_keys",
    "check_resume_checkpoint": "lightning_cli",
    "closest_options": "fit_guidance",
    "describe_checkpoint": "lightning_cli",
    "fit": "lightning_cli",
    "help_summary": "fit_guidance",
    "is_no_gpu_error": "fit_guidance",
    "missing_config_files": "fit_guidance",
    "moved_key_problems": "moved_keys",
    "new_log_dirs": "cleanup",
    "no_gpu_message": "fit_guidance",
    "quiet_dependencies": "lightning_cli",
    "remove_unused_log_dirs": "cleanup",
    "run": "lightning_cli",
    "run_files_of_checkpoint": "run_files",
    "shorten_dataset_error": "fit_guidance",
    "test_best": "lightning_cli",
    "unknown_options": "fit_guidance",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
