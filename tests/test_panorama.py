"""Equirectangular panorama <-> perspective views, and the synthetic 360° panorama."""

from __future__ import annotations

import numpy as np
import pytest

from geoguess_utils.datasets import panorama
from geoguess_utils.datasets.synthetic.panorama import panorama_width, render_panorama
from geoguess_utils.datasets.synthetic.render import render_location
from geoguess_utils.errors import ConfigError, DataError

# One colour per compass direction: N, E, S, W.
COLOURS = np.array([[230, 20, 20], [20, 200, 30], [30, 40, 220], [240, 220, 30]], dtype=np.uint8)


def _azimuths(width: int, compass: float) -> np.ndarray:
    """True heading of every panorama column, written out from the documented contract."""
    return compass + ((np.arange(width) + 0.5) / width - 0.5) * 360.0


def _directions(height: int, width: int, compass: float) -> np.ndarray:
    """Unit vectors (east, north, up) of every panorama pixel centre, shape (H, W, 3)."""
    az = np.radians(_azimuths(width, compass))[None, :]
    el = np.radians(90.0 - (np.arange(height) + 0.5) * 180.0 / height)[:, None]
    return np.stack(np.broadcast_arrays(np.cos(el) * np.sin(az), np.cos(el) * np.cos(az), np.sin(el)), axis=-1)


def _quadrant_panorama(compass: float, height: int = 180, width: int = 360) -> np.ndarray:
    sector = np.round(np.mod(_azimuths(width, compass), 360.0) / 90.0).astype(int) % 4
    return np.broadcast_to(COLOURS[sector][None, :, :], (height, width, 3)).copy()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("compass", [0.0, 37.0, 90.0, 180.0, 301.0])
def test_each_compass_colour_lands_in_its_view(compass: float) -> None:
    pano = _quadrant_panorama(compass)
    views = panorama.panorama_views(pano, compass, size=33)
    for k, heading in enumerate((0, 90, 180, 270)):
        view = views[heading]
        match = np.all(view == COLOURS[k], axis=-1)
        assert match[:, 2:-2].all(), f"compass {compass}: view {heading} is not all {COLOURS[k]} inside"
        assert match.mean() > 0.9


def test_horizon_stays_level() -> None:
    pano = np.zeros((360, 720, 3), dtype=np.uint8)
    pano[:180] = 255  # sky above the horizon, black ground below
    for compass in (0.0, 123.0):
        for heading in (0, 90, 180, 270):
            view = panorama.equirect_to_perspective(pano, heading, compass, size=32)
            assert (view[:16] == 255).all() and (view[16:] == 0).all()


def test_straight_lines_stay_straight() -> None:
    height, width = 1024, 2048
    compass = 20.0
    # A plane through the camera, tilted: it shows as a great circle in the panorama.
    a = np.array([np.sin(np.radians(-30)), np.cos(np.radians(-30)), np.tan(np.radians(12))])
    b = np.array([np.sin(np.radians(35)), np.cos(np.radians(35)), -np.tan(np.radians(20))])
    normal = np.cross(a, b) / np.linalg.norm(np.cross(a, b))
    line = np.abs(_directions(height, width, compass) @ normal) < np.sin(np.radians(0.4))
    pano = np.where(line, 255.0, 0.0).astype(np.float32)
    view = panorama.equirect_to_perspective(pano, 0.0, compass, size=101)

    def residual(image: np.ndarray) -> float:
        cols = np.arange(image.shape[1])
        weight = image.sum(axis=0)
        keep = weight > 0.5 * weight.max()
        rows = (image * np.arange(image.shape[0])[:, None]).sum(axis=0)[keep] / weight[keep]
        fit = np.polyfit(cols[keep], rows, 1)
        return float(np.abs(np.polyval(fit, cols[keep]) - rows).max())

    assert residual(view) < 0.5  # pixels
    # The same line is curved in the panorama itself, so the check above can tell.
    crop = pano[:, (width * 5) // 16 : (width * 11) // 16]
    assert residual(crop) > 10.0


def test_view_centre_samples_the_exact_pixel() -> None:
    rng = np.random.default_rng(0)
    pano = rng.random((361, 720, 3), dtype=np.float32)
    compass, heading = 37.25, 90.0  # column (52.75 / 360 + 0.5) * 720 - 0.5 = 465, a pixel centre
    assert float(panorama.heading_to_column(heading, compass, 720)) == pytest.approx(465.0, abs=1e-9)
    view = panorama.equirect_to_perspective(pano, heading, compass, size=31)
    np.testing.assert_array_equal(view[15, 15], pano[180, 465])


def test_wraps_around_the_seam() -> None:
    rng = np.random.default_rng(1)
    pano = rng.random((90, 180, 3), dtype=np.float32)
    rolled = np.roll(pano, 90, axis=1)  # the same sphere, its middle column now looking the other way
    for heading in (0.0, 45.0, 180.0, 200.0):
        a = panorama.equirect_to_perspective(pano, heading, 10.0, size=24)
        b = panorama.equirect_to_perspective(rolled, heading, 190.0, size=24)
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Looking straight at the seam gives a smooth picture: no column jumps more than the panorama does.
    smooth = np.broadcast_to(np.sin(np.radians(_azimuths(180, 0.0)))[None, :, None], (90, 180, 1)).astype(np.float32)
    view = panorama.equirect_to_perspective(smooth, 180.0, 0.0, size=40)
    assert np.abs(np.diff(view[20, :, 0])).max() < 0.06


def test_stitch_then_cut_gives_the_views_back() -> None:
    rng = np.random.default_rng(2)
    size = 48
    coarse = rng.random((4, 6, 6, 3)).astype(np.float32)
    views = {h: np.kron(coarse[k], np.ones((8, 8, 1), dtype=np.float32)) for k, h in enumerate((0, 90, 180, 270))}
    pano = panorama.perspective_to_equirect(views, 4 * size, compass_deg=301.0)
    assert pano.shape == (2 * size, 4 * size, 3) and pano.dtype == np.float32
    back = panorama.panorama_views(pano, 301.0, size)
    for heading, view in views.items():
        inner = (slice(4, -4), slice(4, -4))
        assert np.abs(back[heading][inner] - view[inner]).mean() < 0.05


def test_bad_arguments_are_refused() -> None:
    pano = np.zeros((10, 20, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match="view size"):
        panorama.equirect_to_perspective(pano, 0.0, 0.0, size=0)
    with pytest.raises(ConfigError, match="field of view"):
        panorama.equirect_to_perspective(pano, 0.0, 0.0, size=8, fov_deg=180.0)
    with pytest.raises(DataError, match="panorama"):
        panorama.equirect_to_perspective(np.zeros(5), 0.0, 0.0, size=8)
    with pytest.raises(ConfigError, match="same shape"):
        panorama.perspective_to_equirect({0: np.zeros((4, 4, 3)), 90: np.zeros((5, 5, 3))}, 16, 0.0)


@pytest.mark.parametrize("compass", [0.0, 37.0, 301.0])
def test_views_cut_from_a_synthetic_panorama_resemble_the_drawn_views(compass: float) -> None:
    lat, lon, seed, size = 43.515, 16.50, 4, 64
    pano = render_panorama(lat, lon, compass, seed=seed, view_size=size)
    assert pano.shape == (panorama_width(size) // 2, panorama_width(size), 3) and pano.dtype == np.uint8
    drawn = render_location(lat, lon, seed=seed, size=size)
    cut = panorama.panorama_views(pano, compass, size)
    for heading in (0, 90, 180, 270):
        same = _psnr(cut[heading], drawn[heading])
        opposite = _psnr(cut[heading], drawn[(heading + 180) % 360])
        assert same > 22.0, f"heading {heading}: {same:.1f} dB"
        assert same > opposite + 5.0
