"""Geocells: the cell schemes a classifier predicts over, and the fitted GeoContext.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.cells.context import ...``; importing the package itself does nothing.

Modules:

- ``context``: GeoContext: everything fitted on the training split, in one serialisable object.
- ``data_driven``: Cell schemes that follow the data: ``balanced`` (density cells) and ``county``
  (Croatia's counties).
- ``frame``: The cells frame: classes as polygons, which is all that code outside ``cells`` reads.
- ``scheme``: Cell schemes: how Croatia is cut into the cells a classifier predicts over.
- ``square``: Square grid over Croatia and the class table a classifier predicts over.
"""
