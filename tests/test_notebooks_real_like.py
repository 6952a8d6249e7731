"""The five notebooks on a small dataset that looks real, not like the synthetic default.

The root built here has what the synthetic sample lacks and real Street View data has:
about 100 locations bunched along a few roads and around towns (most grid cells hold
none), photos of another size (120 px, not the sample's 96; one size per root, as the
checker requires), the ``data/`` image folder, an extra CSV column and no
``source=synthetic`` label. All five notebooks run on it under nbval, exactly as
``make test`` runs them, and afterwards no tracked file of the project has changed.

This is the notebooks' only run on the real-like data; ``make notebooks`` (part of
``make test``) is their only run on the synthetic sample. The roots are built once, by the
``real_like_roots`` fixture: change their number, size or layout there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geoguess_utils.course import workspace
from geoguess_utils.datasets.synthetic.write import generate_dataset
from geoguess_utils.geo import borders

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((PROJECT / "notebooks").glob("0*.ipynb"))
HEADINGS = (0, 90, 180, 270)

TOWNS = {  # (lat, lon) of a few towns the cars circle around
    "zagreb": (45.813, 15.977),
    "rijeka": (45.327, 14.442),
    "osijek": (45.555, 18.693),
    "split": (43.520, 16.470),
}
ROADS = (("zagreb", "rijeka"), ("zagreb", "osijek"))
"""Straight stand-ins for the motorways the cars drive along."""


def clustered_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` mainland points: half around towns, half along two roads (degrees, shape (n,) each)."""
    lat: list[float] = []
    lon: list[float] = []
    names = list(TOWNS)
    for _ in range(100 * n):  # bounded: a rejected point (at sea, abroad) is simply drawn again
        if len(lat) == n:
            break
        if len(lat) % 2 == 0:
            centre = TOWNS[names[int(rng.integers(len(names)))]]
            point = (centre[0] + rng.normal(0, 0.06), centre[1] + rng.normal(0, 0.08))
        else:
            start, end = (np.array(TOWNS[name]) for name in ROADS[int(rng.integers(len(ROADS)))])
            t = rng.uniform(0, 1)
            point = tuple(start + t * (end - start) + rng.normal(0, 0.02, 2))
        if borders.is_on_land(np.array([point[0]]), np.array([point[1]]), "mainland")[0]:
            lat.append(float(point[0]))
            lon.append(float(point[1]))
    assert len(lat) == n, "could not place the clustered points on the mainland"
    return np.array(lat), np.array(lon)


REAL_LIKE_LOCATIONS = 100
"""Locations per real-like root."""
REAL_LIKE_SIDE_PX = 120
"""Side of the real-like photos (the synthetic sample's are 96 px)."""
REAL_LIKE_SEED = 13


def write_real_like_root(
    root: Path, n_locations: int = REAL_LIKE_LOCATIONS, seed: int = REAL_LIKE_SEED, side: int = REAL_LIKE_SIDE_PX
) -> pd.DataFrame:
    """A LUMEN-layout root with clustered locations and ``side`` px photos, not labelled synthetic."""
    source = root.parent / f".{root.name}-views"
    drawn = generate_dataset(source, 16, size=64, seed=seed, workers=1)
    rng = np.random.default_rng(seed)
    lat, lon = clustered_points(n_locations, rng)
    rows = []
    for i in range(n_locations):
        name = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        donor = source / "images" / drawn["uuid"].iloc[i % len(drawn)]
        folder = root / "data" / name
        folder.mkdir(parents=True)
        for heading in HEADINGS:
            with Image.open(donor / f"{heading}.jpg") as view:
                view.convert("RGB").resize((side, side)).save(folder / f"{heading}.jpg", quality=90)
        rows.append({"uuid": name, "latitude": lat[i], "longitude": lon[i], "capture_year": 2019 + i % 4})
    table = pd.DataFrame(rows)
    table.to_csv(root / "data.csv", index=False)
    shutil.rmtree(source)
    return table


def tracked_state() -> dict[str, str]:
    """``git status`` of the project's tracked files and the digest of every tracked figure."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = subprocess.run(
        ["git", "ls-files", "figures"], cwd=PROJECT, capture_output=True, text=True, check=True
    ).stdout.split()
    state = {"git status": status}
    for name in listed:
        path = PROJECT / name
        if path.is_file():
            state[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


@pytest.fixture(scope="module")
def real_like_roots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The real-like dataset roots that both tests below use (one root for now); built nowhere else.

    The notebooks only read them (their caches go to the test's own ``XDG_CACHE_HOME``), so
    the module can share them.
    """
    root = tmp_path_factory.mktemp("real-like") / "lumen-like"
    write_real_like_root(root)
    return [root]


def test_real_like_root_is_not_the_synthetic_kind(real_like_roots: list[Path]) -> None:
    from geoguess_utils.course import exploration

    assert not workspace.is_synthetic(real_like_roots)
    assert workspace.run_name(real_like_roots) != "course"
    for root in real_like_roots:
        table = pd.read_csv(root / "data.csv", dtype={"uuid": str})
        assert table["uuid"].is_unique and len(table) == REAL_LIKE_LOCATIONS
        assert "source" not in table and "capture_year" in table  # no synthetic label, an extra column
        sides = set()
        for name in table["uuid"].head(4):
            with Image.open(root / "data" / name / "0.jpg") as view:
                sides.add(view.size)
        assert sides == {(REAL_LIKE_SIDE_PX, REAL_LIKE_SIDE_PX)}
        lat, lon = table["latitude"].to_numpy(), table["longitude"].to_numpy()
        assert borders.is_on_land(lat, lon, "mainland").all()
        density = exploration.cell_density(lat, lon, spacing_deg=0.3)
        assert (density["n"] == 0).sum() > len(density) / 2  # uneven: most cells hold no location


@pytest.mark.slow
@pytest.mark.timeout(2400)  # five notebooks, two of them training, on two shared cores
def test_all_notebooks_run_on_a_real_like_root(real_like_roots: list[Path], tmp_path: Path) -> None:
    assert len(NOTEBOOKS) == 5, [p.name for p in NOTEBOOKS]
    run_dir = PROJECT / "runs" / workspace.run_name(real_like_roots)
    before = tracked_state()
    env = dict(os.environ)
    env.update(
        {
            workspace.DATA_DIR_ENV: os.pathsep.join(str(root) for root in real_like_roots),
            "MPLBACKEND": "Agg",
            "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the image caches of this root go away with it
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH", "")])),
        }
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        *(str(p.relative_to(PROJECT)) for p in NOTEBOOKS),
        "--sanitize-with",
        "notebooks/sanitize.cfg",
        "-o",
        "testpaths=notebooks",
    ]
    try:
        done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=2100, check=False)
        after = tracked_state()
    finally:
        if run_dir.is_dir() and run_dir.parent == PROJECT / "runs":
            shutil.rmtree(run_dir)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert after == before, "running the notebooks changed tracked files"
    assert (workspace.figures_dir(PROJECT) / "locations.png").is_file()  # the figures went to figures/generated/
