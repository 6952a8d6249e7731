"""geoguess: predict where in Croatia four Street View photos were taken.

The package is a set of small modules, each with one job; importing it does nothing
beyond defining names. Modules are imported explicitly, from the package that holds
them, e.g. ``from geoguess_utils.geo import distance`` or
``from geoguess_utils.cells.context import GeoContext``. ARCHITECTURE.md lists the
packages and what each is for.
"""

__version__ = "0.1.0"
