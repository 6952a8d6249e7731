"""Where points fall in the web map's window once Leaflet fits it to Croatia, computed without a browser."""

from __future__ import annotations

import numpy as np

from geoguess_utils.geo import borders


def mercator(lat, lon, zoom):
    """Web Mercator pixel coordinates (x to the east, y to the south) of points at ``zoom``."""
    scale = 256 * 2.0**zoom
    x = (np.asarray(lon, dtype=np.float64) + 180.0) / 360.0 * scale
    y = (1 - np.log(np.tan(np.pi / 4 + np.radians(np.asarray(lat, dtype=np.float64)) / 2)) / np.pi) / 2 * scale
    return x, y


def fitted_zoom(width, height):
    """The zoom Leaflet's ``fitBounds`` picks for Croatia's bounds in a ``width`` x ``height`` map (zoomSnap 1)."""
    lon0, lat0, lon1, lat1 = borders.croatia_bounds("full")
    x0, y0 = mercator(lat1, lon0, 0)
    x1, y1 = mercator(lat0, lon1, 0)
    zoom = np.log2(min(width / (x1 - x0), height / (y1 - y0)))
    return int(np.floor(round(zoom * 100) / 100))  # Leaflet rounds to 1/100, then floors to the snap


def fitted_pixels(width, height, lat, lon):
    """Container pixels ``(x, y)`` of points once Leaflet fits a ``width`` x ``height`` map to Croatia.

    Leaflet's ``fitBounds`` picks the largest whole zoom at which the bounds fit and centres
    them; a point's pixel is its Web Mercator position at that zoom, relative to the centre.
    """
    lon0, lat0, lon1, lat1 = borders.croatia_bounds("full")
    zoom = fitted_zoom(width, height)
    cx, cy = (np.array(mercator(lat0, lon0, zoom)) + np.array(mercator(lat1, lon1, zoom))) / 2
    x, y = mercator(lat, lon, zoom)
    return x - cx + width / 2, y - cy + height / 2
