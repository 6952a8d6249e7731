"""Draw one synthetic view from its scene description."""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.datasets.synthetic.scene import (
    EXAMPLE_PLACES,
    PEAK_RANGE_KM,
    PEAKS,
    PROBE_ANGLES_DEG,
    VERTICAL_EXAGGERATION,
    Scenes,
    describe_locations,
)
from geoguess_utils.datasets.synthetic.styles import FIELD_EXTRA_COLOURS, SKIES, ZONES, blend_style
from geoguess_utils.errors import ConfigError

DEFAULT_SIZE = 128
MIN_SIZE = 32
MAX_SIZE = 640


def _rgb(*values: float) -> np.ndarray:
    """A colour as a float32 array of shape (3,)."""
    return np.array(values, dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, rows: int, cols: int, size: int) -> np.ndarray:
    """Bilinear-upsampled random grid: smooth noise of shape (size, size) in about [-1, 1]."""
    small = rng.standard_normal((rows, cols)).astype(np.float32)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)


def _wrap_deg(angle: np.ndarray) -> np.ndarray:
    return (angle + 180.0) % 360.0 - 180.0


@dataclass(frozen=True)
class _Conditions:
    """Per-location random nuisance shared by the four views."""

    sky_zenith: np.ndarray
    sky_horizon: np.ndarray
    cloud_cover: float
    contrast: float
    brightness: float
    tint: np.ndarray
    sun_azimuth_deg: float
    noise_sigma: float
    road_bearing_deg: float
    haze: float


def _draw_conditions(scene: Scenes, rng: np.random.Generator) -> _Conditions:
    sunny_bias = 0.15 * float(scene.zone_weights[0, ZONES.index("coast")])
    weather = rng.choice(list(SKIES), p=[0.45 + sunny_bias, 0.2, 0.25 - sunny_bias, 0.1])
    zenith, horizon, cover, contrast = SKIES[str(weather)]
    hour = rng.uniform(8.0, 18.5)
    if scene.sea_km[0] < 3.0 and rng.random() < 0.8:  # coastal roads run along the shore
        road = float(scene.sea_bearing_deg[0]) + 90.0 + rng.normal(0.0, 20.0)
    else:
        road = rng.uniform(0.0, 360.0)
    return _Conditions(
        sky_zenith=np.clip(np.array(zenith) + rng.normal(0, 0.04, 3), 0, 1).astype(np.float32),
        sky_horizon=np.clip(np.array(horizon) + rng.normal(0, 0.03, 3), 0, 1).astype(np.float32),
        cloud_cover=float(np.clip(cover + rng.normal(0, 0.1), 0, 1)),
        contrast=contrast,
        brightness=float(rng.uniform(0.8, 1.12)),
        tint=np.clip(1.0 + rng.normal(0, 0.035, 3), 0.85, 1.15).astype(np.float32),
        sun_azimuth_deg=90.0 + (hour - 6.0) * 15.0,
        noise_sigma=float(rng.uniform(0.01, 0.035)),
        road_bearing_deg=road % 360.0,
        haze=float(rng.uniform(0.15, 0.45)) + (0.2 if weather == "hazy" else 0.0),
    )


@functools.lru_cache(maxsize=8)
def _grids(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row index (S, 1), column index (1, S) and the view angle of each column (S,), degrees."""
    rows = np.arange(size, dtype=np.float32)[:, None]
    cols = np.arange(size, dtype=np.float32)[None, :]
    u = (np.arange(size, dtype=np.float64) + 0.5) / (size / 2.0) - 1.0  # -1 .. 1 over a 90 degree field of view
    return rows, cols, np.degrees(np.arctan(u))


def _mountain_profile(scene: Scenes, heading: float, col_angle: np.ndarray, half: float) -> np.ndarray:
    """Height in pixels of distant peaks above the horizon for every column, shape (S,)."""
    rise = scene.peak_rise_m[0]
    dist = scene.peak_dist_km[0]
    visible = (rise > 0) & (dist < PEAK_RANGE_KM)
    if not visible.any():
        return np.zeros_like(col_angle)
    rise, dist = rise[visible], np.maximum(dist[visible], 1.5)
    radius_km = np.array([p[4] for p in PEAKS])[visible]
    delta = _wrap_deg(heading + col_angle[None, :] - scene.peak_bearing_deg[0][visible][:, None])
    half_width = np.degrees(np.arctan(radius_km / dist))[:, None] * 1.3
    shape = np.clip(1.0 - (delta / half_width) ** 2, 0.0, None) ** 0.7
    height = np.minimum(half * VERTICAL_EXAGGERATION * rise / (dist * 1000.0), half * 0.55)
    return (shape * height[:, None]).max(axis=0)


def _sea_columns(sea_first: np.ndarray, far_land: np.ndarray, col_angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: share of the lower half covered by sea, and the far land's height factor."""
    cover = np.where(np.isfinite(sea_first), 0.5 * np.exp(-sea_first / 3.0), 0.0)
    far = np.where(np.isfinite(far_land), 1.0 / np.maximum(far_land, 1.0), 0.0)
    return np.interp(col_angle, PROBE_ANGLES_DEG, cover), np.interp(col_angle, PROBE_ANGLES_DEG, far)


def _fill(img: np.ndarray, mask: np.ndarray, colour: np.ndarray, texture: np.ndarray | None = None) -> None:
    """Paint ``colour`` into ``img`` (H, W, 3) where ``mask`` (H, W) is true.

    ``colour`` is one RGB triple (3,) or anything broadcastable to ``img``; ``texture``
    (H, W), when given, scales the brightness by ``1 + texture``.
    """
    mask = np.broadcast_to(mask, img.shape[:2])
    if colour.ndim == 1:
        values = colour if texture is None else colour * (1.0 + texture[mask])[:, None]
    else:
        values = np.broadcast_to(colour, img.shape)[mask]
        if texture is not None:
            values = values * (1.0 + texture[mask])[:, None]
    img[mask] = values


def _trees(
    rng: np.random.Generator, size: int, count: int, height: float, conifer: float, tall: float
) -> tuple[np.ndarray, np.ndarray]:
    """Top profile of a row of trees standing on one line: heights (S,) in pixels, and a tall-tree mask."""
    cols = np.arange(size, dtype=np.float64)
    if count <= 0:
        return np.zeros(size), np.zeros(size, dtype=bool)
    centre = rng.uniform(0, size, count)
    h = height * rng.uniform(0.6, 1.3, count)
    kind = rng.random(count)
    is_conifer = kind < conifer
    is_tall = (~is_conifer) & (kind < conifer + tall)
    width = np.where(is_conifer, 0.45, np.where(is_tall, 0.22, 0.8)) * h
    d = np.abs(cols[None, :] - centre[:, None]) / np.maximum(width[:, None], 0.5)
    round_top = np.sqrt(np.clip(1.0 - d**2, 0.0, None))
    pointed = np.clip(1.0 - d, 0.0, None)
    profile = np.where(is_conifer[:, None], pointed, round_top) * h[:, None]
    top = profile.max(axis=0)
    tall_mask = (profile * is_tall[:, None]).max(axis=0) >= top - 1e-9
    return top, tall_mask & (top > 0)


@dataclass
class _Frame:
    """One picture being drawn, with its row/column grids split at the horizon.

    ``sky`` and ``ground`` are views into ``img`` (rows above / below the horizon);
    ``r_sky`` and ``r_ground`` their row indices (n, 1); ``depth`` (n_ground, 1) goes
    from 0 at the horizon to 1 at the bottom edge.
    """

    size: int
    horizon: float
    split: int
    img: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    col_angle: np.ndarray

    @property
    def sky(self) -> np.ndarray:
        return self.img[: self.split]

    @property
    def ground(self) -> np.ndarray:
        return self.img[self.split :]

    @property
    def r_sky(self) -> np.ndarray:
        return self.rows[: self.split]

    @property
    def r_ground(self) -> np.ndarray:
        return self.rows[self.split :]

    @property
    def depth(self) -> np.ndarray:
        return np.clip((self.r_ground - self.horizon) / (self.size - self.horizon), 1e-3, 1.0)

    def noise(self, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
        """Smooth noise over the whole picture, (S, S)."""
        return _smooth_noise(rng, rows, cols, self.size)


def _draw_sky(f: _Frame, cond: _Conditions, heading: int, rng: np.random.Generator) -> None:
    """Sky gradient, glow towards the sun, clouds."""
    t = np.clip((f.horizon - f.r_sky) / f.horizon, 0.0, 1.0)[..., None]
    sun_delta = np.abs(_wrap_deg(heading + f.col_angle - cond.sun_azimuth_deg))
    glow = np.exp(-((sun_delta / 35.0) ** 2)).astype(np.float32)[None, :, None] * (0.25 * (1.0 - cond.cloud_cover))
    sky = cond.sky_horizon * (1 - t) + cond.sky_zenith * t + glow * (1 - t)
    clouds = f.noise(rng, 8, 4)[: f.split] + 1.6 * (cond.cloud_cover - 0.5)
    cloud_alpha = np.clip(clouds, 0.0, 0.85)[..., None]
    cloud_colour = _rgb(0.93, 0.93, 0.94) * (1.0 - 0.25 * cond.cloud_cover)
    f.sky[:] = sky + (cloud_colour - sky) * cloud_alpha


def _draw_horizon(
    f: _Frame,
    scene: Scenes,
    style: dict[str, np.ndarray],
    cond: _Conditions,
    heading: int,
    view: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Distant mountains and islands, then the nearby hills and their treeline.

    Returns:
        Per column (S,), the share of the lower half that the sea covers.
    """
    half = f.size / 2.0
    sea_cover, far_land = _sea_columns(scene.sea_first_km[0, view], scene.far_land_km[0, view], f.col_angle)
    mountains = _mountain_profile(scene, heading, f.col_angle, half)
    island_shape = 1.0 + 0.3 * np.sin(f.col_angle / 9.0 + rng.uniform(0, 6))
    islands = half * VERTICAL_EXAGGERATION * 0.35 * far_land * island_shape
    far = np.maximum(mountains, islands) * (1.0 + 0.08 * f.noise(rng, 1, 12)[0])
    haze = cond.sky_horizon
    far_colour = (0.35 + 0.3 * cond.haze) * haze + (0.65 - 0.3 * cond.haze) * _rgb(0.30, 0.36, 0.34)
    _fill(f.sky, f.r_sky >= f.horizon - far[None, :], far_colour)

    sea_ahead = np.clip(sea_cover / 0.03, 0.0, 1.0)  # no nearby hills where the sea lies in front
    phase = rng.uniform(0, 2 * np.pi, 3)
    k = float(style["hill_freq"]) * np.pi / f.size
    c = np.arange(f.size)
    waves = 0.55 + 0.3 * np.sin(k * c + phase[0]) + 0.15 * np.sin(2.7 * k * c + phase[1])
    waves = waves + 0.1 * np.sin(6.1 * k * c + phase[2])
    hills = half * float(style["hill_amp"]) * np.clip(waves, 0.05, None) * rng.uniform(0.6, 1.3) * (1.0 - sea_ahead)
    n_trees = int(rng.poisson(float(style["forest"]) * 0.5 * f.size))
    tree_top, _ = _trees(rng, f.size, n_trees, f.size * 0.035, float(style["conifer"]), 0.0)
    hill_top = (f.horizon - hills)[None, :]
    hill_colour = 0.75 * style["ground_alt"] + 0.25 * style["tree"]
    hill_colour = (1 - cond.haze * 0.6) * hill_colour + cond.haze * 0.6 * haze
    _fill(f.sky, f.r_sky >= hill_top, hill_colour, 0.08 * f.noise(rng, 10, 16)[: f.split])
    canopy = (f.r_sky >= hill_top - (tree_top * (1.0 - sea_ahead))[None, :]) & (f.r_sky < hill_top)
    _fill(f.sky, canopy, (1 - cond.haze * 0.5) * style["tree"] + cond.haze * 0.5 * haze)
    return sea_cover


def _draw_ground(
    f: _Frame, scene: Scenes, style: dict[str, np.ndarray], cond: _Conditions, rng: np.random.Generator
) -> None:
    """Ground patches or striped fields, limestone speckles, texture and aerial haze."""
    patches = f.noise(rng, 5, 7)[f.split :]
    ground = np.where((patches > 0.3)[..., None], style["ground_alt"], style["ground"])
    if rng.random() < float(style["fields"]):
        vanish = rng.uniform(-0.3, 1.3) * f.size
        # ``slope`` is constant along every line through the vanishing point: field edges and furrows.
        slope = (f.cols - vanish) / np.maximum(f.r_ground - f.horizon, 0.5)
        n_fields = int(rng.integers(3, 8))
        edges = np.sort(rng.uniform(-3.0, 3.0, n_fields))
        palette = np.vstack([style["ground"], style["ground_alt"], FIELD_EXTRA_COLOURS]).astype(np.float32)
        picks = rng.integers(0, len(palette), n_fields + 1)
        furrows = 0.06 * np.sin(slope * rng.uniform(25, 60))
        ground = palette[picks][np.searchsorted(edges, slope)] * (1.0 + furrows[..., None])
    arid = float(scene.aridity[0])
    ground = ground * (1 - 0.15 * arid) + 0.15 * arid * _rgb(0.70, 0.66, 0.55)
    rock_p = float(style["rock"]) * (0.7 + 0.6 * arid)
    speckle = rng.random(ground.shape[:2], dtype=np.float32) < rock_p * 0.35
    ground[speckle] = _rgb(0.80, 0.79, 0.74) * rng.uniform(0.85, 1.05)
    texture = 0.10 * f.noise(rng, f.size // 4, f.size // 4)[f.split :]
    texture += 0.05 * f.noise(rng, 6, 6)[f.split :]
    aerial = (cond.haze * 0.7 * (1 - f.depth) ** 4)[..., None]
    f.ground[:] = ground * (1 + texture[..., None]) * (1 - aerial) + cond.sky_horizon * aerial


def _draw_midground(
    f: _Frame, scene: Scenes, style: dict[str, np.ndarray], land_cols: np.ndarray, rng: np.random.Generator
) -> None:
    """A row of trees and some houses in the middle distance, only where there is land in front."""
    n_trees = int(rng.poisson(float(style["forest"]) * f.size * 0.12))
    base = f.horizon + f.size * rng.uniform(0.03, 0.09)
    top, tall = _trees(rng, f.size, n_trees, f.size * 0.09, float(style["conifer"]), float(style["tall_tree"]))
    top = np.where(land_cols, top, 0.0)
    mask = (f.rows >= (base - top)[None, :]) & (f.rows < base) & (top > 0)[None, :]
    tall_colour = style["tree"] * (0.55 + 0.6 * float(scene.zone_weights[0, ZONES.index("slavonia")]))
    leaf = np.where(tall[None, :, None], tall_colour, style["tree"])
    _fill(f.img, mask, leaf, 0.12 * f.noise(rng, f.size // 6, f.size // 3))
    _draw_houses(f.img, scene, style, rng, f.size, f.horizon, land_cols)


def _draw_roadway(f: _Frame, cond: _Conditions, heading: int, rng: np.random.Generator) -> None:
    """The road vanishing to the horizon in views along the driving direction, the roadside otherwise."""
    along = float(_wrap_deg(np.array(cond.road_bearing_deg - heading)))
    if abs(along) > 90:
        along = float(_wrap_deg(np.array(along + 180.0)))
    asphalt = _rgb(0.36, 0.36, 0.37) * rng.uniform(0.85, 1.1)
    if abs(along) <= 45:
        vanish_col = f.size / 2.0 * (1 + math.tan(math.radians(along)))
        _draw_road(f.ground, f.r_ground, f.cols, f.size, f.horizon, vanish_col, asphalt, rng)
    else:
        band = f.size * rng.uniform(0.06, 0.1)
        _fill(f.ground, f.r_ground >= f.size - band - f.size * 0.02, _rgb(0.45, 0.43, 0.38))
        _fill(f.ground, f.r_ground >= f.size - band, asphalt)


def _draw_sea(f: _Frame, cond: _Conditions, sea_cover: np.ndarray, rng: np.random.Generator) -> None:
    """Sea from the horizon down, as far as ``sea_cover`` (S,) says, with a pale shoreline."""
    sea_rows = (f.horizon + sea_cover * (f.size - f.horizon) * 2.0)[None, :]
    mask = (f.r_ground < sea_rows) & (sea_cover > 0.002)[None, :]
    if not mask.any():
        return
    depth = f.depth
    calm = rng.uniform(0.0, 1.0)
    deep = _rgb(0.06, 0.24, 0.44) * (1 - 0.5 * cond.cloud_cover) + _rgb(0.24, 0.30, 0.36) * 0.5 * cond.cloud_cover
    sea = deep + _rgb(0.10, 0.16, 0.14) * depth[..., None] * 0.8
    sea = sea + 0.35 * (cond.sky_horizon - sea) * ((1 - depth) ** 6)[..., None]
    ripple = 0.08 * (1 - calm) * np.sin(f.r_ground * (2.0 + 40.0 * depth) + rng.uniform(0, 6))
    ripple = ripple * (0.5 + 0.5 * f.noise(rng, 8, 3)[f.split :])
    _fill(f.ground, mask, sea, ripple)
    shore_width = max(1.0, f.size * 0.012)
    shore = (f.r_ground >= sea_rows) & (f.r_ground < sea_rows + shore_width) & (sea_cover > 0.01)[None, :]
    _fill(f.ground, shore, _rgb(0.82, 0.80, 0.74))


def _apply_light(f: _Frame, cond: _Conditions, heading: int, rng: np.random.Generator) -> np.ndarray:
    """Contrast, exposure, colour cast and sensor grain; returns the picture clipped to [0, 1]."""
    facing_sun = math.cos(math.radians(heading - cond.sun_azimuth_deg))
    gain = cond.brightness * cond.tint * (1.0 + 0.06 * facing_sun * (1.0 - cond.cloud_cover))
    img = f.img
    img -= 0.5
    img *= cond.contrast * gain
    img += 0.5 * gain
    grain = rng.random((f.size, f.size, 1), dtype=np.float32) - np.float32(0.5)  # uniform luminance grain (cheap)
    img += grain * np.float32(cond.noise_sigma * 3.46)  # 3.46 = sqrt(12): standard deviation noise_sigma
    return np.clip(img, 0.0, 1.0, out=img)


def _render_view(
    scene: Scenes,
    style: dict[str, np.ndarray],
    cond: _Conditions,
    heading: int,
    view: int,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw one view as float32 (S, S, 3) RGB in [0, 1], back to front."""
    rows, cols, col_angle = _grids(size)
    horizon = size / 2.0 * (1.0 + rng.normal(0.0, 0.02))
    img = np.empty((size, size, 3), dtype=np.float32)
    frame = _Frame(size, horizon, math.ceil(horizon), img, rows, cols, col_angle)
    _draw_sky(frame, cond, heading, rng)
    sea_cover = _draw_horizon(frame, scene, style, cond, heading, view, rng)
    _draw_ground(frame, scene, style, cond, rng)
    _draw_midground(frame, scene, style, np.clip(sea_cover / 0.03, 0.0, 1.0) < 0.5, rng)
    _draw_roadway(frame, cond, heading, rng)
    _draw_sea(frame, cond, sea_cover, rng)  # last, so that a road ends at the shore
    return _apply_light(frame, cond, heading, rng)


def _draw_houses(
    img: np.ndarray,
    scene: Scenes,
    style: dict[str, np.ndarray],
    rng: np.random.Generator,
    size: int,
    horizon: float,
    land_cols: np.ndarray,
) -> None:
    """Paint a few houses, more of them near towns (GeoNames density)."""
    density = float(scene.town_density[0])
    count = int(rng.poisson(0.15 + 5.0 * (1.0 - math.exp(-density / 1.5))))
    if count == 0:
        return
    depth = np.sort(rng.uniform(0.02, 0.2, count))[::-1]  # far houses first
    for d in depth:
        base = horizon + d * size
        h = size * d * rng.uniform(0.5, 0.8)
        w = h * rng.uniform(1.0, 1.8)
        centre = rng.uniform(0, size)
        c0, c1 = int(max(centre - w / 2, 0)), int(min(centre + w / 2, size))
        if c1 - c0 < 1 or not land_cols[c0:c1].all():
            continue
        roof_h = h * rng.uniform(0.35, 0.6)
        r_wall, r_base = int(base - h), int(base)
        if r_base <= 0:
            continue
        wall = style["wall"] * rng.uniform(0.85, 1.05)
        img[max(r_wall, 0) : r_base, c0:c1] = wall
        if c1 - c0 >= 6 and r_base - r_wall >= 5:
            win_row = r_wall + (r_base - r_wall) // 3
            win = slice(win_row, win_row + max(1, (r_base - r_wall) // 4))
            for wc in np.linspace(c0 + (c1 - c0) * 0.2, c1 - (c1 - c0) * 0.3, 2).astype(int):
                img[win, wc : wc + max(1, (c1 - c0) // 6)] = (0.18, 0.17, 0.16)
        rows = np.arange(max(int(r_wall - roof_h), 0), max(r_wall, 0))[:, None]
        cols = np.arange(c0, c1)[None, :]
        gable = r_wall - roof_h * (1.0 - np.abs(cols - centre) / max(w / 2, 0.5))
        roof_mask = rows >= gable
        roof = style["roof"] * rng.uniform(0.85, 1.1)
        block = img[rows[:, 0].min() if rows.size else 0 : max(r_wall, 0), c0:c1]
        if block.size:
            np.copyto(block, np.broadcast_to(roof, block.shape).astype(np.float32), where=roof_mask[..., None])


def _draw_road(
    img: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    size: int,
    horizon: float,
    vanish_col: float,
    asphalt: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """A straight road from the bottom of the picture to a vanishing point on the horizon."""
    t = np.clip((rows - horizon) / (size - horizon), 0.0, 1.0)  # 0 at the horizon, 1 at the bottom
    centre = vanish_col + (size * rng.uniform(0.45, 0.6) - vanish_col) * t
    half_width = t * size * rng.uniform(0.55, 0.75)
    offset = np.abs(cols - centre)
    road = (rows >= horizon) & (offset <= half_width)
    verge = (rows >= horizon) & (offset <= half_width * 1.12) & ~road
    _fill(img, verge, _rgb(0.50, 0.47, 0.40))
    _fill(img, road, asphalt, 0.06 * _smooth_noise(rng, size // 4, size // 4, size)[size - rows.shape[0] :])
    depth_phase = 1.0 / np.maximum(t, 1e-3)
    dashes = np.sin(depth_phase * rng.uniform(1.5, 2.5) + rng.uniform(0, 6)) > 0
    paint = _rgb(0.90, 0.90, 0.88)
    _fill(img, road & (offset <= np.maximum(half_width * 0.025, 0.35)) & dashes, paint)
    edge = road & (offset >= half_width * 0.9) & (offset <= half_width * 0.93 + 0.35)
    _fill(img, edge, paint)


def render_scene(scene: Scenes, rng: np.random.Generator, size: int = DEFAULT_SIZE) -> list[np.ndarray]:
    """Draw the four views of one location.

    Args:
        scene: A one-row :class:`Scenes` (from :func:`describe_locations`).
        rng: Randomness for weather, light, vegetation and houses.
        size: Side of the square images in pixels.

    Returns:
        Four uint8 arrays of shape (size, size, 3), in :data:`HEADINGS` order.
    """
    cond = _draw_conditions(scene, rng)
    style = blend_style(scene.zone_weights[0])
    views = []
    for view, heading in enumerate(HEADINGS):
        picture = _render_view(scene, style, cond, heading, view, size, rng)
        views.append((picture * 255.0 + 0.5).astype(np.uint8))
    return views


def render_location(lat: float, lon: float, seed: int = 0, size: int = DEFAULT_SIZE) -> dict[int, np.ndarray]:
    """Draw the four views of one point, keyed by heading.

    Args:
        lat: Latitude in degrees.
        lon: Longitude in degrees.
        seed: Seed of the weather, light and scenery randomness.
        size: Side of the square images in pixels.

    Returns:
        ``{heading: uint8 array (size, size, 3)}`` for headings 0, 90, 180, 270.
    """
    check_size(size)
    scene = describe_locations(np.array([lat]), np.array([lon]))
    views = render_scene(scene, np.random.default_rng(seed), size)
    return dict(zip(HEADINGS, views, strict=True))


def render_examples(size: int = DEFAULT_SIZE, seed: int = 0) -> list[tuple[str, dict[int, np.ndarray]]]:
    """The four views at each of :data:`EXAMPLE_PLACES`, labelled with the place's name.

    Args:
        size: Side of the square images in pixels.
        seed: Seed of weather and scenery (each place gets its own stream).

    Returns:
        ``(label, {heading: uint8 (size, size, 3)})`` per place, in the order of
        :data:`EXAMPLE_PLACES`.
    """
    check_size(size)
    lat, lon = (np.array(v) for v in zip(*EXAMPLE_PLACES.values(), strict=True))
    scenes = describe_locations(lat, lon)
    out = []
    for i, label in enumerate(EXAMPLE_PLACES):
        views = render_scene(scenes.subset(slice(i, i + 1)), location_rng(seed, i), size)
        out.append((label, dict(zip(HEADINGS, views, strict=True))))
    return out


def encode_jpeg(picture: np.ndarray, quality: int) -> bytes:
    """Encode an RGB uint8 array (H, W, 3) as a baseline JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


# --------------------------------------------------------------------------------------
# Writing a dataset
# --------------------------------------------------------------------------------------


def check_size(size: int) -> None:
    """Refuse an image side outside ``MIN_SIZE`` to ``MAX_SIZE`` pixels."""
    if not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise ConfigError(f"image size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def location_rng(seed: int, index: int) -> np.random.Generator:
    """Independent stream for location ``index``: the same whatever the worker split."""
    return np.random.default_rng([int(seed), 1, int(index)])
