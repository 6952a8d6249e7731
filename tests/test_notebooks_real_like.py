"""The seven notebooks on a small dataset that looks real, not like the synthetic default.

The roots built here have what the synthetic sample lacks and the real subsets have:
about 200 locations in two roots (about 160 of them training locations after the split),
bunched tightly around five towns and along two short roads. Most grid cells hold no
location, and the quick config's county cells are few and far apart: for most locations
the quick config's label smoothing (25 km) reaches no cell that 10 km does not already
reach. Their photos are of another size (120 px, not the sample's 96; one size for all
roots, as the checker requires), one root uses the ``data/`` image folder and the other
``images/``, both carry an extra CSV column and no ``source=synthetic`` label. All seven
notebooks run on them under nbval, exactly as ``make test`` runs them, and afterwards no
tracked file of the project has changed.

This is the notebooks' only run on the real-like data; ``make notebooks`` (part of
``make test``) is their only run on the synthetic sample. The roots are built once, by the
``real_like_roots`` fixture: change their number, size or layout in :data:`REAL_LIKE_ROOTS`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.course import workspace
from geoguess_utils.data import splits
from geoguess_utils.datasets.synthetic.write import generate_dataset
from geoguess_utils.geo import borders
from geoguess_utils.geo.soft_targets import RECOMMENDED_TAU_KM, haversine_soft_targets

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((PROJECT / "notebooks").glob("0*.ipynb"))
HEADINGS = (0, 90, 180, 270)

TOWNS = {  # (lat, lon) of the towns the cars circle around and drive between
    "zagreb": (45.813, 15.977),
    "osijek": (45.555, 18.693),
    "djakovo": (45.309, 18.410),
    "rijeka": (45.327, 14.442),
    "split": (43.520, 16.470),
    "makarska": (43.297, 17.017),
    "dubrovnik": (42.650, 18.094),
}
TOWN_SPREAD_DEG = (0.03, 0.04)
"""Standard deviation of a town's locations around its centre (latitude, longitude): about 3 km."""
ROAD_SPREAD_DEG = 0.015
"""Standard deviation of a road's locations across it: about 1.5 km."""


@dataclass(frozen=True)
class RootPlan:
    """What one real-like root holds.

    Attributes:
        name: Folder name of the root.
        towns: Names in :data:`TOWNS` its locations bunch around.
        roads: Pairs of towns joined by a straight stand-in for the motorway between them;
            half the locations lie along them when there are any.
        image_dir: ``"data"`` or ``"images"``, the two image folder names of the layout.
        seed: Seeds its coordinates, uuids and pictures.
    """

    name: str
    towns: tuple[str, ...]
    roads: tuple[tuple[str, str], ...]
    image_dir: str
    seed: int


REAL_LIKE_ROOTS = (
    RootPlan("lumen-like", ("zagreb", "osijek"), (("osijek", "djakovo"),), "data", 13),
    RootPlan("lumen-like-coast", ("rijeka", "split", "dubrovnik"), (("split", "makarska"),), "images", 14),
)
"""The two roots: two inland towns and a road in Slavonia; three coastal towns and the coast road south of Split."""
REAL_LIKE_LOCATIONS = 100
"""Locations per real-like root."""
REAL_LIKE_SIDE_PX = 120
"""Side of the real-like photos (the synthetic sample's are 96 px)."""


def clustered_points(
    n: int, rng: np.random.Generator, towns: tuple[str, ...], roads: tuple[tuple[str, str], ...] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` mainland points around ``towns`` and, half of them when given, along ``roads``.

    Args:
        n: Number of points.
        rng: Random generator.
        towns: Names in :data:`TOWNS`.
        roads: Pairs of names in :data:`TOWNS`.

    Returns:
        Latitudes and longitudes in degrees, shape (n,) each.
    """
    lat: list[float] = []
    lon: list[float] = []
    for _ in range(100 * n):  # bounded: a rejected point (at sea, abroad) is simply drawn again
        if len(lat) == n:
            break
        if not roads or len(lat) % 2 == 0:
            centre = TOWNS[towns[int(rng.integers(len(towns)))]]
            point = (centre[0] + rng.normal(0, TOWN_SPREAD_DEG[0]), centre[1] + rng.normal(0, TOWN_SPREAD_DEG[1]))
        else:
            start, end = (np.array(TOWNS[name]) for name in roads[int(rng.integers(len(roads)))])
            t = rng.uniform(0, 1)
            point = tuple(start + t * (end - start) + rng.normal(0, ROAD_SPREAD_DEG, 2))
        if borders.is_on_land(np.array([point[0]]), np.array([point[1]]), "mainland")[0]:
            lat.append(float(point[0]))
            lon.append(float(point[1]))
    assert len(lat) == n, "could not place the clustered points on the mainland"
    return np.array(lat), np.array(lon)


def write_real_like_root(
    root: Path, plan: RootPlan, n_locations: int = REAL_LIKE_LOCATIONS, side: int = REAL_LIKE_SIDE_PX
) -> pd.DataFrame:
    """A LUMEN-layout root with clustered locations and ``side`` px photos, not labelled synthetic.

    Args:
        root: The root to create.
        plan: Where its locations are, its image folder and its seed.
        n_locations: Number of locations.
        side: Side of the square photos, pixels.

    Returns:
        The rows of its ``data.csv``.
    """
    source = root.parent / f".{root.name}-views"
    drawn = generate_dataset(source, 16, size=64, seed=plan.seed, workers=1)
    rng = np.random.default_rng(plan.seed)
    lat, lon = clustered_points(n_locations, rng, plan.towns, plan.roads)
    rows = []
    for i in range(n_locations):
        name = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        donor = source / "images" / drawn["uuid"].iloc[i % len(drawn)]
        folder = root / plan.image_dir / name
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
    """The real-like dataset roots that the tests below use; built nowhere else.

    The notebooks only read them (their caches go to the test's own ``XDG_CACHE_HOME``), so
    the module can share them.
    """
    folder = tmp_path_factory.mktemp("real-like")
    roots = []
    for plan in REAL_LIKE_ROOTS:
        write_real_like_root(folder / plan.name, plan)
        roots.append(folder / plan.name)
    return roots


def real_like_locations(roots: list[Path]) -> pd.DataFrame:
    """Every location of ``roots`` with its split, as the notebooks split them (seed 0)."""
    table = pd.concat([pd.read_csv(root / "data.csv", dtype={"uuid": str}) for root in roots], ignore_index=True)
    return table.merge(splits.make_split(table["uuid"], seed=0), on="uuid")


def test_real_like_roots_are_not_the_synthetic_kind(real_like_roots: list[Path]) -> None:
    from geoguess_utils.course import exploration

    assert len(real_like_roots) == len(REAL_LIKE_ROOTS) == 2
    assert not workspace.is_synthetic(real_like_roots)
    assert workspace.run_name(real_like_roots) != "course"
    for root, plan in zip(real_like_roots, REAL_LIKE_ROOTS, strict=True):
        table = pd.read_csv(root / "data.csv", dtype={"uuid": str})
        assert table["uuid"].is_unique and len(table) == REAL_LIKE_LOCATIONS
        assert "source" not in table and "capture_year" in table  # no synthetic label, an extra column
        sides = set()
        for name in table["uuid"].head(4):
            with Image.open(root / plan.image_dir / name / "0.jpg") as view:
                sides.add(view.size)
        assert sides == {(REAL_LIKE_SIDE_PX, REAL_LIKE_SIDE_PX)}
    locations = real_like_locations(real_like_roots)
    assert locations["uuid"].is_unique
    lat, lon = locations["latitude"].to_numpy(), locations["longitude"].to_numpy()
    assert borders.is_on_land(lat, lon, "mainland").all()
    density = exploration.cell_density(lat, lon, spacing_deg=0.3)
    assert (density["n"] == 0).sum() > 0.8 * len(density)  # uneven: almost every cell holds no location


def test_real_like_cells_are_far_apart(real_like_roots: list[Path]) -> None:
    """As on the real subsets, the quick config's cells are few and far apart.

    About 160 training locations fill a handful of county cells, and for most of them a
    label-smoothing scale of 25 km (the quick config's) reaches no cell that 10 km does not
    already reach: the case notebook 04 has to explain rather than hide.
    """
    locations = real_like_locations(real_like_roots)
    train = locations[locations["split"] == "train"]
    assert 150 <= len(train) <= 170
    cells = yaml.safe_load((PROJECT / "configs" / "quick_cpu.yaml").read_text())["data"]["cells"]
    context = GeoContext.fit(train["latitude"], train["longitude"], scheme=cells["scheme"])
    assert context.num_classes <= 21
    truth = torch.tensor(train[["latitude", "longitude"]].to_numpy(), dtype=torch.float64)
    points = torch.as_tensor(context.centroids_latlon(), dtype=torch.float64)
    reached = {
        tau: (haversine_soft_targets(truth, points, tau).numpy() >= 0.01).sum(axis=1)
        for tau in (10.0, RECOMMENDED_TAU_KM)
    }
    no_further = reached[RECOMMENDED_TAU_KM] == reached[10.0]
    assert no_further.mean() > 0.5, f"25 km reaches further than 10 km for {1 - no_further.mean():.0%} of the locations"


@pytest.mark.slow
@pytest.mark.timeout(3000)  # seven notebooks, three of them training, one serving, on two shared cores
def test_all_notebooks_run_on_the_real_like_roots(real_like_roots: list[Path], tmp_path: Path) -> None:
    assert len(NOTEBOOKS) == 7, [p.name for p in NOTEBOOKS]
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
