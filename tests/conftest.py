"""Shared test settings: headless matplotlib, no network, seeded randomness."""

from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed random generator, fresh for each test."""
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def croatia_points() -> tuple[np.ndarray, np.ndarray]:
    """1,000 points drawn uniformly on Croatia's mainland (lat, lon degrees)."""
    from geoguess_utils.geo import borders

    return borders.sample_points(1000, np.random.default_rng(7), "mainland")
