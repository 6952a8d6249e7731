"""Geocells: the cell schemes a classifier predicts over, and the fitted GeoContext.

Names below are importable from the package itself (``from geoguess_utils.cells import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "BOX_COLUMNS": "square",
    "BalancedScheme": "data_driven",
    "CELLS_CRS": "frame",
    "CELL_FRAME_COLUMNS": "frame",
    "CENTROID_KINDS": "context",
    "CLASS_COLUMNS": "scheme",
    "CLASS_TABLE_COLUMNS": "square",
    "CONTEXT_FORMAT": "context",
    "COUNTY_COLUMN": "data_driven",
    "CellScheme": "scheme",
    "CentroidKind": "context",
    "CountyScheme": "data_driven",
    "GeoContext": "context",
    "READABLE_FORMATS": "context",
    "SCHEME_ATTR": "frame",
    "SchemeType": "scheme",
    "SplitCountyScheme": "data_driven",
    "SquareScheme": "square",
    "as_cells_frame": "frame",
    "assign_classes": "square",
    "assign_to_cells": "frame",
    "box_cells": "square",
    "box_polygons": "square",
    "build_grid": "square",
    "class_points": "scheme",
    "county_names": "data_driven",
    "dict_fingerprint": "context",
    "finite_points": "scheme",
    "fit_class_table": "square",
    "geometry_from_plain": "scheme",
    "geometry_to_plain": "scheme",
    "get_scheme": "scheme",
    "list_schemes": "scheme",
    "locate_in_polygons": "scheme",
    "register_scheme": "scheme",
    "upgrade_format_1": "context",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
