"""Procedural Croatia: a deterministic, clearly labelled synthetic dataset (scene, render, write).

Names below are importable from the package itself (``from geoguess_utils.datasets.synthetic import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "CSV_COLUMNS": "write",
    "CSV_NAME": "write",
    "DENSITIES": "density",
    "DEFAULT_SIZE": "render",
    "EXAMPLE_PLACES": "scene",
    "IMAGES_DIRNAME": "write",
    "MAX_SIZE": "render",
    "MIN_SIZE": "render",
    "PEAKS": "scene",
    "SOURCE_LABEL": "scene",
    "Scenes": "scene",
    "ZONES": "styles",
    "ZONE_STYLES": "styles",
    "ZoneStyle": "styles",
    "croatian_places": "scene",
    "describe_locations": "scene",
    "describe_zones": "scene",
    "encode_jpeg": "render",
    "generate_dataset": "write",
    "render_examples": "render",
    "render_location": "render",
    "render_scene": "render",
    "sample_locations": "density",
    "sea_geometry": "scene",
    "settlement_points": "density",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
