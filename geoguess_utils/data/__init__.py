"""Data: the LUMEN layout, reading and validation, images and caches, splits, Dataset and DataModule.

Names below are importable from the package itself (``from geoguess_utils.data import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "CACHE_FORMAT": "images",
    "CSV_NAME": "layout",
    "DEFAULT_COAST_TOLERANCE_KM": "validation",
    "DEFAULT_MAX_PIXELS": "reader",
    "ENRICHED_COLUMNS": "enrich",
    "ENRICH_FORMAT": "enrich",
    "EpochSampler": "sampling",
    "GeoDataModule": "datamodule",
    "GeoDataset": "geodataset",
    "HEADINGS": "layout",
    "IMAGE_CACHE_MODES": "datamodule",
    "IMAGE_DIR_NAMES": "layout",
    "IMAGE_FORMATS": "layout",
    "ImageCache": "images",
    "LOCATION_COLUMNS": "layout",
    "PATH_COLUMNS": "layout",
    "PROBLEM_KINDS": "validation",
    "Problem": "validation",
    "REPORT_COLUMNS": "validation",
    "REQUIRED_COLUMNS": "layout",
    "ResumableLoader": "sampling",
    "SPLITS": "splits",
    "SPLIT_FILE": "splits",
    "TrainAugmentation": "augment",
    "VIEW_FILES": "layout",
    "ValidationReport": "validation",
    "base_seed": "sampling",
    "cache_key": "images",
    "default_cache_dir": "enrich",
    "enrich_locations": "enrich",
    "enriched_cache_key": "enrich",
    "find_image_dir": "reader",
    "format_problem": "validation",
    "is_safe_uuid": "reader",
    "load_locations": "loading",
    "load_split": "splits",
    "load_view": "images",
    "load_views": "images",
    "make_split": "splits",
    "printable": "reader",
    "read_data_csv": "reader",
    "save_split": "splits",
    "validate_roots": "validation",
    "view_paths": "reader",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
