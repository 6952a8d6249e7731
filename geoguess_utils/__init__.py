"""geoguess: predict where in Croatia four Street View photos were taken.

The package is a set of small modules, each with one job; importing it does nothing
beyond defining names. Submodules are imported explicitly, e.g.
``from geoguess_utils import geo, grid``.
"""

__version__ = "0.1.0"
