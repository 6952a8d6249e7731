"""Geography: great-circle distance, Croatian projections, and Croatia's borders.

Names below are importable from the package itself (``from geoguess_utils.geo import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "DEFAULT_CRS": "projection",
    "RECOMMENDED_TAU_KM": "soft_targets",
    "croatian_places": "places",
    "haversine_soft_targets": "soft_targets",
    "EARTH_RADIUS_KM": "distance",
    "MinMaxScaler": "projection",
    "SUPPORTED_CRS": "projection",
    "VARIANTS": "borders",
    "Variant": "borders",
    "countries": "borders",
    "croatia": "borders",
    "croatia_bounds": "borders",
    "distance_to_land_km": "borders",
    "haversine_km": "distance",
    "is_on_land": "borders",
    "natural_earth_zip": "borders",
    "nearest_land_point": "borders",
    "neighbours_land": "borders",
    "sample_points": "borders",
    "to_latlon": "projection",
    "to_projected": "projection",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
