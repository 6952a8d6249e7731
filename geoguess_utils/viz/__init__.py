"""Figures, by what they show: maps of cells and locations, photos, errors, curves and the web map.

Names below are importable from the package itself (``from geoguess_utils.viz import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "BORDER_COLOUR": "basemap",
    "CELL_COLUMNS": "webmap",
    "ERROR_BINS_KM": "webmap_html",
    "ERROR_COLOURS": "webmap_html",
    "HEADING_NAMES": "photos",
    "KIND_COLOURS": "cell_maps",
    "LAND_COLOUR": "basemap",
    "METHOD_COLOURS": "projection_maps",
    "NEIGHBOUR_COLOUR": "webmap",
    "PREDICTION_COLUMNS": "webmap",
    "PROBABILITY_COLOURS": "webmap_html",
    "SEA_COLOUR": "basemap",
    "SYNTHETIC_CAPTION": "photos",
    "THUMBNAIL_COLUMNS": "webmap_html",
    "build_map": "webmap",
    "cell_errors": "webmap",
    "cell_shapes": "location_maps",
    "check_predictions": "webmap",
    "draw_croatia": "basemap",
    "error_bin": "webmap_html",
    "error_bin_labels": "webmap_html",
    "error_colours": "webmap_html",
    "escape": "webmap_html",
    "map_html": "webmap",
    "nice_ceiling": "webmap_html",
    "plot_ablation": "ablation_plots",
    "plot_cell_errors": "error_plots",
    "plot_centroid_kinds": "cell_maps",
    "plot_distance_errors": "projection_maps",
    "plot_error_distribution": "error_plots",
    "plot_error_floor": "cell_maps",
    "plot_grid": "cell_maps",
    "plot_grid_progression": "cell_maps",
    "plot_grid_spacings": "cell_maps",
    "plot_label_smoothing": "label_smoothing",
    "plot_location_views": "photos",
    "plot_locations": "cell_maps",
    "plot_locations_and_density": "location_maps",
    "plot_quadruplets": "photos",
    "plot_scale_error": "projection_maps",
    "plot_training_curves": "training_curves",
    "polygon_patches": "location_maps",
    "save_figure": "basemap",
    "save_map": "webmap",
    "smoothing_targets": "label_smoothing",
    "surrounding_land": "webmap",
    "synthetic_samples_figure": "photos",
    "thumbnail_data_uri": "webmap_html",
    "write_synthetic_samples_figure": "photos",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
