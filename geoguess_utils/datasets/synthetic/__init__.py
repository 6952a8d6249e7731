"""Procedural Croatia: a deterministic, clearly labelled synthetic dataset (scene, render, write).

Names below are importable from the package itself (``from geoguess_utils.datasets.synthetic import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "COAST_KM": "density",
    "COAST_WEIGHT": "density",
    "CSV_COLUMNS": "write",
    "DEFAULT_SIZE": "render",
    "DENSITIES": "density",
    "Density": "density",
    "EXAMPLE_PLACES": "scene",
    "MAX_SIZE": "render",
    "MIN_SIZE": "render",
    "PEAKS": "scene",
    "ROAD_JITTER_KM": "density",
    "ROAD_NEIGHBOURS": "density",
    "ROAD_SHARE": "density",
    "SOURCE_LABEL": "scene",
    "SPREAD_KM": "density",
    "Scenes": "scene",
    "ZONES": "styles",
    "ZONE_STYLES": "styles",
    "ZoneStyle": "styles",
    "check_density": "density",
    "describe_locations": "scene",
    "describe_zones": "scene",
    "encode_jpeg": "render",
    "generate_dataset": "write",
    "mainland_places": "density",
    "panorama_width": "panorama",
    "render_examples": "render",
    "render_location": "render",
    "render_panorama": "panorama",
    "render_scene": "render",
    "sample_locations": "density",
    "sea_geometry": "scene",
    "settlement_points": "density",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
