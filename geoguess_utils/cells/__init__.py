"""Geocells: the cell schemes a classifier predicts over, and the fitted GeoContext.

Names below are importable from the package itself (``from geoguess_utils.cells import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "BOX_COLUMNS": "square",
    "BalancedScheme": "data_driven",
    "COUNTY_COLUMN": "data_driven",
    "CountyScheme": "data_driven",
    "SplitCountyScheme": "data_driven",
    "county_names": "data_driven",
    "CELL_FRAME_COLUMNS": "frame",
    "CENTROID_KINDS": "context",
    "CLASS_COLUMNS": "scheme",
    "CLASS_TABLE_COLUMNS": "square",
    "CONTEXT_FORMAT": "context",
    "CellScheme": "scheme",
    "CentroidKind": "context",
    "GeoContext": "context",
    "SquareScheme": "square",
    "as_cells_frame": "frame",
    "assign_classes": "square",
    "assign_to_cells": "frame",
    "box_cells": "square",
    "build_grid": "square",
    "fit_class_table": "square",
    "get_scheme": "scheme",
    "list_schemes": "scheme",
    "locate_in_polygons": "scheme",
    "register_scheme": "scheme",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
