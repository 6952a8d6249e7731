"""Producers of datasets in the LUMEN layout: the synthetic generator and the Street View downloader.

Names below are importable from the package itself (``from geoguess_utils.datasets import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "ATTRIBUTION_MD": "mapillary_records",
    "DATA_COLUMNS": "mapillary_records",
    "DEFAULT_API_URL": "mapillary",
    "DEFAULT_BASE_URL": "streetview",
    "DownloadSettings": "streetview",
    "FIELDS": "mapillary",
    "FIELD_OF_VIEW_DEG": "streetview",
    "FINAL_STATUSES": "mapillary_records",
    "IMAGE_SIZE_PX": "streetview",
    "JPEG_QUALITY": "mapillary",
    "LICENCE": "mapillary_records",
    "MapillaryError": "mapillary",
    "MapillarySettings": "mapillary",
    "ORIENTATION": "panorama",
    "Orientation": "panorama",
    "RateLimiter": "http_retry",
    "SOURCE_LABEL": "mapillary_records",
    "STAGING_DIRNAME": "mapillary",
    "STATUS_COLUMNS": "mapillary_records",
    "STATUS_CSV": "mapillary_records",
    "StreetViewError": "streetview",
    "TERMS_NOTICE": "mapillary_records",
    "TEXT_COLUMNS": "mapillary_records",
    "attribution_text": "mapillary_records",
    "bbox_around": "mapillary_records",
    "check_view": "streetview_checks",
    "cut_views": "mapillary",
    "download_mapillary": "mapillary",
    "download_streetview": "streetview",
    "equirect_to_perspective": "panorama",
    "foreign_rows": "mapillary_records",
    "heading_to_column": "panorama",
    "image_dir": "mapillary_records",
    "is_done": "mapillary_records",
    "kept_rows": "streetview_checks",
    "panorama_views": "panorama",
    "parse_candidate": "mapillary_records",
    "perspective_to_equirect": "panorama",
    "plan_points": "mapillary_records",
    "plan_samples": "streetview",
    "read_status": "mapillary_records",
    "redact": "streetview_checks",
    "sample_bilinear": "panorama",
    "view_rays": "panorama",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
