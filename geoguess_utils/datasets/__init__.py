"""Producers of datasets in the LUMEN layout: the synthetic generator and the Street View downloader.

Names below are importable from the package itself (``from geoguess_utils.datasets import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "DATA_COLUMNS": "streetview",
    "DATA_CSV": "streetview",
    "DEFAULT_BASE_URL": "streetview",
    "DownloadSettings": "streetview",
    "FIELD_OF_VIEW_DEG": "streetview",
    "FINAL_STATUSES": "streetview",
    "HEADINGS": "streetview",
    "IMAGES_DIRNAME": "streetview",
    "IMAGE_SIZE_PX": "streetview",
    "RateLimiter": "streetview",
    "SOURCE_LABEL": "streetview",
    "STAGING_DIRNAME": "streetview",
    "STATUS_COLUMNS": "streetview",
    "STATUS_CSV": "streetview",
    "StreetViewError": "streetview",
    "TERMS_NOTICE": "streetview",
    "download_streetview": "streetview",
    "plan_samples": "streetview",
    "read_status": "streetview",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
