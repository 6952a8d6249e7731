"""Glue that only the course notebooks use: paths, measurements, exploration and the course map.

Names below are importable from the package itself (``from geoguess_utils.course import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "ABLATION_FILES": "ablation",
    "AblationRun": "ablation",
    "DATA_DIR_ENV": "paths",
    "DEFAULT_SPACINGS_DEG": "analysis",
    "DENSITY_MIN_AREA_KM2": "exploration",
    "DISTANCE_METHODS": "analysis",
    "FAULT_KINDS": "exploration",
    "FLOOR_KINDS": "analysis",
    "GridSteps": "analysis",
    "KM_PER_DEGREE": "analysis",
    "SAMPLE_LOCATIONS": "paths",
    "SAMPLE_SEED": "paths",
    "SAMPLE_SIZE_PX": "paths",
    "SAMPLE_SUBDIR": "paths",
    "SYNTHETIC_SOURCE": "paths",
    "cell_counts": "analysis",
    "committed_ablations": "ablation",
    "cell_density": "exploration",
    "centroid_distances": "analysis",
    "data_kind": "paths",
    "data_roots": "paths",
    "dataset_layout": "exploration",
    "density_dispersion": "exploration",
    "distance_table": "analysis",
    "distortion_summary": "analysis",
    "error_floor": "analysis",
    "figures_dir": "paths",
    "grid_steps": "analysis",
    "is_synthetic": "paths",
    "load_ablation": "ablation",
    "location_summary": "exploration",
    "location_views": "exploration",
    "make_sample": "paths",
    "on_islands": "exploration",
    "project_root": "paths",
    "publish_figures": "figures",
    "published_figures_dir": "paths",
    "run_name": "paths",
    "sample_dir": "paths",
    "sample_pairs": "analysis",
    "scale_error_ppm": "analysis",
    "write_faulty_copy": "exploration",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
