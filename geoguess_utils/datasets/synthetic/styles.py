"""How each landscape zone of procedural Croatia looks: colours and densities."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# --------------------------------------------------------------------------------------
# Geography tables (plain constants; nothing is read at import time)
# --------------------------------------------------------------------------------------

ZONES: tuple[str, ...] = ("coast", "istria", "gorski_kotar", "karst", "central", "zagorje", "slavonia")
"""Landscape zones, in the column order of the zone weights."""


@dataclass(frozen=True)
class ZoneStyle:
    """How a landscape zone looks. Colours are RGB in [0, 1]; sizes are fractions.

    Attributes:
        ground: Main ground colour.
        ground_alt: Colour of patches and of every second field.
        rock: Share of the ground speckled with pale limestone, 0..1.
        fields: Share of the ground laid out in striped fields, 0..1.
        forest: Density of the treeline on the horizon, 0..1.
        conifer: Share of pointed (conifer) trees, 0..1.
        tree: Foliage colour.
        tall_tree: Share of tall narrow trees (cypress on the coast, poplar inland), 0..1.
        hill_amp: Height of the nearby hills, as a fraction of the upper half image.
        hill_freq: Number of hill undulations across one view.
        wall: House wall colour.
        roof: House roof colour.
    """

    ground: tuple[float, float, float]
    ground_alt: tuple[float, float, float]
    rock: float
    fields: float
    forest: float
    conifer: float
    tree: tuple[float, float, float]
    tall_tree: float
    hill_amp: float
    hill_freq: float
    wall: tuple[float, float, float]
    roof: tuple[float, float, float]


ZONE_STYLES: dict[str, ZoneStyle] = {
    "coast": ZoneStyle(
        (0.66, 0.62, 0.53),
        (0.42, 0.45, 0.30),
        0.55,
        0.0,
        0.25,
        0.35,
        (0.24, 0.32, 0.17),
        0.35,
        0.16,
        1.5,
        (0.88, 0.85, 0.77),
        (0.74, 0.34, 0.20),
    ),
    "istria": ZoneStyle(
        (0.62, 0.32, 0.20),
        (0.42, 0.50, 0.25),
        0.12,
        0.35,
        0.40,
        0.10,
        (0.22, 0.36, 0.16),
        0.15,
        0.12,
        2.0,
        (0.86, 0.80, 0.68),
        (0.70, 0.36, 0.22),
    ),
    "gorski_kotar": ZoneStyle(
        (0.24, 0.38, 0.17),
        (0.18, 0.28, 0.13),
        0.04,
        0.0,
        0.95,
        0.85,
        (0.07, 0.19, 0.10),
        0.0,
        0.36,
        2.5,
        (0.84, 0.84, 0.82),
        (0.30, 0.28, 0.30),
    ),
    "karst": ZoneStyle(
        (0.55, 0.54, 0.40),
        (0.46, 0.45, 0.31),
        0.38,
        0.05,
        0.30,
        0.30,
        (0.20, 0.30, 0.15),
        0.0,
        0.24,
        1.2,
        (0.80, 0.78, 0.72),
        (0.46, 0.31, 0.25),
    ),
    "central": ZoneStyle(
        (0.33, 0.50, 0.20),
        (0.45, 0.54, 0.26),
        0.0,
        0.35,
        0.55,
        0.05,
        (0.16, 0.31, 0.12),
        0.05,
        0.07,
        1.5,
        (0.90, 0.87, 0.78),
        (0.62, 0.30, 0.22),
    ),
    "zagorje": ZoneStyle(
        (0.36, 0.56, 0.22),
        (0.50, 0.58, 0.30),
        0.0,
        0.30,
        0.50,
        0.08,
        (0.18, 0.37, 0.13),
        0.05,
        0.22,
        3.0,
        (0.93, 0.89, 0.74),
        (0.60, 0.27, 0.19),
    ),
    "slavonia": ZoneStyle(
        (0.66, 0.60, 0.30),
        (0.36, 0.50, 0.18),
        0.0,
        0.90,
        0.22,
        0.0,
        (0.22, 0.36, 0.15),
        0.45,
        0.015,
        0.7,
        (0.91, 0.85, 0.70),
        (0.58, 0.26, 0.18),
    ),
}
"""Look of each zone in :data:`ZONES`."""

FIELD_EXTRA_COLOURS = np.array([[0.46, 0.35, 0.24], [0.80, 0.70, 0.22], [0.30, 0.46, 0.16]])  # ploughed, ripe, young

SKIES = {  # weather -> (zenith, horizon, cloud cover, contrast)
    "clear": ((0.22, 0.44, 0.80), (0.68, 0.80, 0.93), 0.12, 1.0),
    "hazy": ((0.50, 0.62, 0.80), (0.84, 0.86, 0.90), 0.25, 0.85),
    "overcast": ((0.60, 0.62, 0.66), (0.78, 0.79, 0.81), 0.85, 0.72),
    "evening": ((0.28, 0.38, 0.66), (0.96, 0.74, 0.52), 0.3, 0.92),
}


# --------------------------------------------------------------------------------------
# Rendering one location (four views)
# --------------------------------------------------------------------------------------


def blend_style(weights: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted mean of every :class:`ZoneStyle` field, as float arrays."""
    styles = [ZONE_STYLES[z] for z in ZONES]
    return {
        f.name: np.tensordot(weights, np.array([getattr(s, f.name) for s in styles]), axes=1).astype(np.float32)
        for f in fields(ZoneStyle)
    }
