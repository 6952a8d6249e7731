"""Geocells: the cell schemes a classifier predicts over, and the fitted GeoContext.

Names below are importable from the package itself (``from geoguess_utils.cells import X``);
each module is imported on first use, so importing the package costs nothing.
"""

from geoguess_utils._lazy import lazy_namespace

_EXPORTS = {
    "CENTROID_KINDS": "context",
    "CLASS_TABLE_COLUMNS": "square",
    "CONTEXT_FORMAT": "context",
    "CentroidKind": "context",
    "GeoContext": "context",
    "assign_classes": "square",
    "box_cells": "square",
    "build_grid": "square",
    "fit_class_table": "square",
}

__getattr__, __dir__ = lazy_namespace(__name__, _EXPORTS)
