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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's in-process training on one torch thread, and restore the count afterwards.

    Modules that train take it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    Their models are tiny, so a second intra-op thread buys nothing on an idle machine; on two
    cores shared with other work, the two threads wait on each other at every small op, and the
    same tests took two to five times longer (a load average of 2 to 3 turned the 13 s learning
    test of ``test_training.py`` into 64 s; on one thread it took 14 s). Processes a test
    starts get the same setting through ``_training_helpers.ONE_THREAD_ENV``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
