"""Equirectangular 360° panoramas and the square perspective views cut from them.

An equirectangular panorama of shape (H, W) maps columns to azimuth and rows to
elevation linearly: pixel ``(row, col)`` has its centre at elevation
``90 - (row + 0.5) * 180 / H`` degrees (up is positive) and at azimuth
``centre + ((col + 0.5) / W - 0.5) * 360`` degrees, where ``centre`` is the true
heading that the middle of the image looks along (:data:`ORIENTATION`).

A perspective (pinhole) view with a horizontal field of view ``fov`` and side ``S``
pixels has the focal length ``f = (S / 2) / tan(fov / 2)`` pixels. Its pixel centre
``(i, j)`` sees the ray ``(u, v, f)`` in camera coordinates (right, down, forward)
with ``u = j + 0.5 - S / 2`` and ``v = i + 0.5 - S / 2``. Straight lines of the scene
therefore stay straight in the view, and the horizon of a level camera is its middle
row.

Both directions are here: :func:`equirect_to_perspective` (cut a view from a
panorama, used by the Mapillary downloader) and :func:`perspective_to_equirect`
(stitch views into a panorama, used by the synthetic generator). They are vectorised
numpy code with bilinear sampling; the panorama wraps around at its left/right seam.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from geoguess_utils.errors import ConfigError, DataError


@dataclass(frozen=True)
class Orientation:
    """How a panorama's columns relate to true headings.

    Attributes:
        centre_offset_deg: The middle column (x = W / 2) looks along the image's compass
            angle plus this many degrees (clockwise from true north); 0 when the compass
            angle is the centre's heading.
        x_grows_clockwise: Moving right in the image turns the view clockwise (east of
            a north-looking centre is to its right), as when standing inside the sphere.
    """

    centre_offset_deg: float = 0.0
    x_grows_clockwise: bool = True

    @property
    def sign(self) -> float:
        """+1 when x grows clockwise, -1 when it grows counter-clockwise."""
        return 1.0 if self.x_grows_clockwise else -1.0


# The orientation contract of Mapillary's 360° images, in one place.
# Where it comes from: the image's (computed_)compass_angle refers to the middle of the
# full equirectangular image, per the MapillaryJS maintainers in
# https://github.com/mapillary/mapillary-js/issues/229 ("the compass angle ... [reflects]
# the middle of the full panorama image"), and bearings in MapillaryJS are "measured in
# degrees clockwise with respect to north" and tied to computed_compass_angle
# (ViewerBearingEvent in mapillary-js). That x grows clockwise is the usual
# equirectangular (GPano / photo sphere) convention; it was NOT checked against a real
# Mapillary image here (no network). If real views come out mirrored, set
# x_grows_clockwise=False; if they come out turned by a fixed angle, set centre_offset_deg.
ORIENTATION = Orientation(centre_offset_deg=0.0, x_grows_clockwise=True)


def _check_panorama(panorama: np.ndarray) -> None:
    if panorama.ndim not in (2, 3) or panorama.shape[0] < 2 or panorama.shape[1] < 2:
        raise DataError(f"a panorama must be an (H, W) or (H, W, C) array with H, W >= 2, got {panorama.shape}")


def _check_view(size: int, fov_deg: float) -> float:
    if int(size) < 1:
        raise ConfigError(f"view size must be at least 1 pixel, got {size}")
    if not 0.0 < float(fov_deg) < 180.0:
        raise ConfigError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    return (int(size) / 2.0) / math.tan(math.radians(float(fov_deg)) / 2.0)


def view_rays(size: int, fov_deg: float = 90.0) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation of the ray through every pixel centre of a level view.

    Args:
        size: Side of the square view in pixels.
        fov_deg: Horizontal (and vertical) field of view in degrees.

    Returns:
        ``(azimuth, elevation)``, each float64 of shape (size, size), degrees;
        azimuth relative to the view's heading (positive to the right, i.e.
        clockwise), elevation positive up.
    """
    focal = _check_view(size, fov_deg)
    centres = np.arange(int(size), dtype=np.float64) + 0.5 - int(size) / 2.0
    u = centres[None, :]
    v = centres[:, None]
    azimuth = np.degrees(np.arctan2(u, focal))
    elevation = np.degrees(np.arctan2(-v, np.hypot(u, focal)))
    return np.broadcast_to(azimuth, (int(size), int(size))), elevation * np.ones_like(azimuth)


def heading_to_column(heading_deg: np.ndarray | float, compass_deg: float, width: int) -> np.ndarray:
    """Fractional column (pixel-centre coordinates) that looks along a true heading.

    Args:
        heading_deg: True heading(s), degrees clockwise from north.
        compass_deg: Heading of the panorama's middle column (:data:`ORIENTATION`).
        width: Panorama width W in pixels.

    Returns:
        Column coordinate(s) in ``[-0.5, W - 0.5)``: an integer value hits that
        pixel's centre exactly.
    """
    centre = float(compass_deg) + ORIENTATION.centre_offset_deg
    offset = ORIENTATION.sign * (np.asarray(heading_deg, dtype=np.float64) - centre)
    turns = np.mod(offset / 360.0 + 0.5, 1.0)
    return turns * int(width) - 0.5


def _elevation_to_row(elevation_deg: np.ndarray, height: int) -> np.ndarray:
    return (90.0 - elevation_deg) / 180.0 * int(height) - 0.5


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, wrap_cols: bool) -> np.ndarray:
    """Bilinear samples of ``image`` at fractional pixel-centre coordinates.

    Args:
        image: (H, W) or (H, W, C) array.
        rows: Row coordinates, any shape; clamped to the image.
        cols: Column coordinates, the same shape; wrapped modulo W when ``wrap_cols``
            (a panorama's seam), clamped otherwise.
        wrap_cols: Whether columns wrap around.

    Returns:
        float32 array of shape ``rows.shape`` (+ (C,) for a colour image).
    """
    height, width = image.shape[:2]
    rows = np.clip(np.asarray(rows, dtype=np.float64), 0.0, height - 1.0)
    cols = np.asarray(cols, dtype=np.float64)
    if not wrap_cols:
        cols = np.clip(cols, 0.0, width - 1.0)
    r0 = np.floor(rows)
    c0 = np.floor(cols)
    fr = (rows - r0).astype(np.float32).reshape(-1, 1)
    fc = (cols - c0).astype(np.float32).reshape(-1, 1)
    r0 = r0.astype(np.intp).reshape(-1)
    c0 = c0.astype(np.intp).reshape(-1)
    r1 = np.minimum(r0 + 1, height - 1)
    if wrap_cols:
        c0 = np.mod(c0, width)
        c1 = np.mod(c0 + 1, width)
    else:
        c1 = np.minimum(c0 + 1, width - 1)
    flat = image.reshape(height * width, -1)  # gather from the original dtype: no full-size float copy

    def pick(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.take(flat, r * width + c, axis=0).astype(np.float32)

    top = pick(r0, c0)
    top += (pick(r0, c1) - top) * fc
    bottom = pick(r1, c0)
    bottom += (pick(r1, c1) - bottom) * fc
    top += (bottom - top) * fr
    return top.reshape(rows.shape + image.shape[2:])


def _as_input_dtype(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype == np.uint8:
        return np.clip(values + 0.5, 0.0, 255.0).astype(np.uint8)
    return values.astype(np.float32, copy=False)


def equirect_to_perspective(
    panorama: np.ndarray,
    heading_deg: float,
    compass_deg: float,
    size: int,
    fov_deg: float = 90.0,
) -> np.ndarray:
    """Cut a level, square perspective view out of an equirectangular panorama.

    Args:
        panorama: (H, W) or (H, W, C) equirectangular image, uint8 or float.
        heading_deg: True heading the view looks along, degrees clockwise from north.
        compass_deg: True heading of the panorama's middle column (:data:`ORIENTATION`).
        size: Side S of the view in pixels.
        fov_deg: Horizontal field of view, degrees (90 for the LUMEN views).

    Returns:
        The view, shape (S, S) or (S, S, C); uint8 for a uint8 panorama, float32
        otherwise. Sampling is bilinear and wraps around the panorama's seam.

    Raises:
        DataError: When ``panorama`` is not an image array.
        ConfigError: For a size below 1 or a field of view outside (0, 180).
    """
    _check_panorama(panorama)
    azimuth, elevation = view_rays(size, fov_deg)
    height, width = panorama.shape[:2]
    cols = heading_to_column(float(heading_deg) + azimuth, compass_deg, width)
    rows = _elevation_to_row(elevation, height)
    return _as_input_dtype(sample_bilinear(panorama, rows, cols, wrap_cols=True), panorama)


def panorama_views(
    panorama: np.ndarray, compass_deg: float, size: int, headings: tuple[int, ...] = (0, 90, 180, 270)
) -> dict[int, np.ndarray]:
    """The 90° views at the given true headings, keyed by heading.

    Args:
        panorama: (H, W, 3) equirectangular image.
        compass_deg: True heading of the panorama's middle column.
        size: Side of each square view, pixels.
        headings: True headings, degrees clockwise from north.

    Returns:
        ``{heading: array (size, size, 3)}`` with the panorama's dtype rules.
    """
    return {int(h): equirect_to_perspective(panorama, float(h), compass_deg, size, 90.0) for h in headings}


def perspective_to_equirect(
    views: Mapping[int, np.ndarray], width: int, compass_deg: float, fov_deg: float = 90.0
) -> np.ndarray:
    """Stitch level perspective views into one equirectangular panorama.

    Each panorama pixel takes its colour from the view whose heading is nearest in
    azimuth. Directions that view does not see (near the zenith and nadir, beyond its
    top and bottom rows) repeat its edge rows. With four 90° views at 0/90/180/270
    every azimuth is covered.

    Args:
        views: ``{true heading in degrees: (S, S, C) array}``, all the same shape.
        width: Panorama width W in pixels; the height is W // 2.
        compass_deg: True heading that the panorama's middle column will look along.
        fov_deg: Horizontal field of view of every view, degrees.

    Returns:
        (W // 2, W, C) panorama; uint8 when the views are uint8, float32 otherwise.

    Raises:
        ConfigError: For no views, views of different shapes, or a width below 2.
    """
    if not views:
        raise ConfigError("at least one view is needed to stitch a panorama")
    shapes = {np.asarray(v).shape for v in views.values()}
    if len(shapes) != 1:
        raise ConfigError(f"all views must have the same shape, got {sorted(shapes)}")
    if int(width) < 2:
        raise ConfigError(f"panorama width must be at least 2 pixels, got {width}")
    first = np.asarray(next(iter(views.values())))
    size = first.shape[0]
    focal = _check_view(size, fov_deg)
    height = int(width) // 2
    cols = np.arange(int(width), dtype=np.float64)
    centre = float(compass_deg) + ORIENTATION.centre_offset_deg
    azimuth = centre + ORIENTATION.sign * ((cols + 0.5) / int(width) - 0.5) * 360.0
    elevation = 90.0 - (np.arange(height, dtype=np.float64) + 0.5) * 180.0 / height
    headings = np.array(sorted(views), dtype=np.float64)
    delta = (azimuth[:, None] - headings[None, :] + 180.0) % 360.0 - 180.0  # (W, n_views)
    nearest = np.argmin(np.abs(delta), axis=1)
    local = np.radians(delta[np.arange(int(width)), nearest])  # azimuth within the chosen view, (W,)
    u = focal * np.tan(local)
    v = -focal * np.tan(np.radians(elevation))[:, None] / np.cos(local)[None, :]  # (H, W)
    view_cols = np.broadcast_to(u[None, :] + size / 2.0 - 0.5, (height, int(width)))
    view_rows = v + size / 2.0 - 0.5
    channels = first.shape[2:] if first.ndim == 3 else ()
    out = np.empty((height, int(width), *channels), dtype=np.float32)
    for index, heading in enumerate(sorted(views)):
        picked = nearest == index
        if not picked.any():
            continue
        image = np.asarray(views[heading])
        out[:, picked] = sample_bilinear(image, view_rows[:, picked], view_cols[:, picked], wrap_cols=False)
    return _as_input_dtype(out, first)
