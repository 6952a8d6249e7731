"""A 360° equirectangular panorama of a synthetic location.

The synthetic renderer draws four 90° views (true headings 0/90/180/270) of a point;
here they are stitched into one equirectangular panorama, oriented like a Mapillary
360° image (its middle column looks along a given compass angle, see
:data:`geoguess_utils.datasets.panorama.ORIENTATION`). Cutting the four views back out
of the panorama gives pictures close to the directly drawn ones (two bilinear
resamplings apart); the stitch shows seams at the four view borders (±45° from each
heading), since each view draws its own trees and hills, and stretches the top and
bottom rows of the views towards the zenith and nadir, which no view sees.
"""

from __future__ import annotations

import math

import numpy as np

from geoguess_utils.datasets.panorama import perspective_to_equirect
from geoguess_utils.datasets.synthetic.render import DEFAULT_SIZE, render_location


def panorama_width(view_size: int) -> int:
    """Panorama width (even, pixels) whose resolution at the horizon matches 90° views of ``view_size`` px.

    A 90° view of side S has a focal length of S / 2 pixels, i.e. S / 2 pixels per
    radian at its centre; a full turn then needs ``pi * S`` columns.
    """
    return 2 * math.ceil(math.pi * int(view_size) / 2.0)


def render_panorama(
    lat: float,
    lon: float,
    compass_deg: float,
    seed: int = 0,
    view_size: int = DEFAULT_SIZE,
    width: int | None = None,
) -> np.ndarray:
    """Draw the synthetic scene at a point as an equirectangular panorama.

    Args:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        compass_deg: True heading (degrees clockwise from north) of the panorama's
            middle column.
        seed: Seed of weather, light and scenery (the same as :func:`render_location`).
        view_size: Side of the perspective views the panorama is stitched from, pixels.
        width: Panorama width W in pixels (default :func:`panorama_width` of
            ``view_size``); the height is W // 2.

    Returns:
        uint8 array of shape (W // 2, W, 3).
    """
    views = render_location(lat, lon, seed=seed, size=view_size)
    return perspective_to_equirect(views, width or panorama_width(view_size), compass_deg)
