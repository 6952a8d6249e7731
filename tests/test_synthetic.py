"""The synthetic "procedural Croatia" dataset: layout, determinism, and geography in the pictures."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geoguess_utils.datasets.synthetic import render, scene, styles, write
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders
from geoguess_utils.geo.places import croatian_places

SPLIT_COAST = (43.515, 16.50)  # sea about 1.5 km to the south and west, hills to the north
SLAVONIA = (45.31, 18.41)  # 240 km from the sea


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _sea_share(picture: np.ndarray) -> float:
    """Share of "sea blue" pixels in the lower half of an RGB uint8 picture."""
    lower = picture[picture.shape[0] // 2 + 2 :].astype(int)
    r, g, b = lower[..., 0], lower[..., 1], lower[..., 2]
    return float(((b > r + 40) & (b > g + 5)).mean())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "sample"
    write.generate_dataset(root, 6, size=48, seed=11)
    return root


def test_layout_reads_like_a_lumen_dataset(sample: Path) -> None:
    table = pd.read_csv(sample / "data.csv")
    assert list(table.columns) == ["uuid", "latitude", "longitude", "source"]
    assert len(table) == 6 and table["uuid"].is_unique
    assert (table["source"] == "synthetic").all()
    assert all(uuid.UUID(u).version == 4 and str(uuid.UUID(u)) == u for u in table["uuid"])
    assert borders.is_on_land(table["latitude"], table["longitude"], variant="mainland").all()
    folders = sorted(p.name for p in (sample / "images").iterdir())
    assert folders == sorted(table["uuid"])
    for name in folders:
        files = sorted(p.name for p in (sample / "images" / name).iterdir())
        assert files == ["0.jpg", "180.jpg", "270.jpg", "90.jpg"]
        with Image.open(sample / "images" / name / "90.jpg") as picture:
            assert picture.format == "JPEG" and picture.mode == "RGB" and picture.size == (48, 48)
    assert not [p for p in sample.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(sample: Path, tmp_path: Path) -> None:
    again = write.generate_dataset(tmp_path / "again", 6, size=48, seed=11, workers=2)
    assert len(again) == 6
    assert _files(tmp_path / "again") == _files(sample)  # also with two worker processes
    write.generate_dataset(tmp_path / "other", 6, size=48, seed=12)
    other = _files(tmp_path / "other")
    assert other["data.csv"] != _files(sample)["data.csv"]
    assert not set(other.values()) & set(_files(sample).values())


def test_existing_dataset_is_kept_unless_overwrite(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="already holds a dataset"):
        write.generate_dataset(sample, 2, size=48)
    root = tmp_path / "replace"
    write.generate_dataset(root, 3, size=48, seed=1)
    write.generate_dataset(root, 2, size=48, seed=2, overwrite=True)
    table = pd.read_csv(root / "data.csv")
    assert sorted(p.name for p in (root / "images").iterdir()) == sorted(table["uuid"])
    assert len(table) == 2


@pytest.mark.parametrize("size", [16, 641])
def test_image_size_is_checked(size: int, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="between 32 and 640"):
        write.generate_dataset(tmp_path, 1, size=size)


def test_view_facing_the_sea_shows_sea() -> None:
    sea, inland = [], []
    for seed in range(4):
        views = render.render_location(*SPLIT_COAST, seed=seed, size=64)
        sea.append(max(_sea_share(views[180]), _sea_share(views[270])))
        inland.append(_sea_share(views[0]))
    assert np.mean(sea) > 0.1
    assert np.mean(sea) > 5 * np.mean(inland) + 0.02


def test_no_sea_far_inland() -> None:
    views = render.render_location(*SLAVONIA, seed=0, size=64)
    assert max(_sea_share(v) for v in views.values()) < 0.02


def test_zones_follow_the_regions() -> None:
    names = list(scene.EXAMPLE_PLACES)
    lat, lon = zip(*scene.EXAMPLE_PLACES.values(), strict=True)
    zones = scene.describe_zones(lat, lon)
    dominant = dict(zip(names, zones[list(styles.ZONES)].idxmax(axis=1), strict=True))
    assert dominant["Istria (near Pazin)"] == "istria"
    assert dominant["Kvarner coast (near Senj)"] == "coast"
    assert dominant["Gorski kotar (near Delnice)"] == "gorski_kotar"
    assert dominant["Lika (near Gospić)"] == "karst"
    assert dominant["Dalmatian coast (near Split)"] == "coast"
    assert dominant["Zagorje (near Krapina)"] == "zagorje"
    assert dominant["Slavonia (near Đakovo)"] == "slavonia"
    assert np.allclose(zones[list(styles.ZONES)].sum(axis=1), 1.0)


def test_settlements_come_from_the_gazetteer() -> None:
    places = croatian_places()
    assert len(places) > 400
    assert {"Zagreb", "Split", "Osijek"} <= set(places["name"])
    zones = scene.describe_zones([45.815, 44.75], [15.98, 15.60])  # Zagreb, empty Lika plateau
    assert zones.loc[0, "town_density"] > 3 * zones.loc[1, "town_density"]


def test_renderer_never_sees_coordinates() -> None:
    from dataclasses import fields

    names = {f.name for f in fields(scene.Scenes)}
    assert not {n for n in names if "lat" in n or "lon" in n or n in ("x", "y", "x_m", "y_m")}


def test_renderer_output_shape_and_repeatability() -> None:
    first = render.render_location(*SLAVONIA, seed=5, size=40)
    second = render.render_location(*SLAVONIA, seed=5, size=40)
    assert list(first) == [0, 90, 180, 270]
    for heading in first:
        assert first[heading].shape == (40, 40, 3) and first[heading].dtype == np.uint8
        assert np.array_equal(first[heading], second[heading])


def test_make_sample_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from geoguess_utils import cli

    out = tmp_path / "cli"
    assert cli.main(["make-sample", "--out", str(out), "--locations", "2", "--size", "32", "--seed", "4"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert len(pd.read_csv(out / "data.csv")) == 2


def test_figures_of_views(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geoguess_utils.viz import photos

    views = render.render_location(*SPLIT_COAST, seed=1, size=32)
    fig = photos.plot_location_views(views, title="one location")
    assert [ax.get_title() for ax in fig.axes] == ["0° (N)", "90° (E)", "180° (S)", "270° (W)"]
    plt.close(fig)
    fig = photos.plot_quadruplets([("a", views), ("b", views)])
    assert len(fig.axes) == 8 and fig.axes[4].get_ylabel() == "b"
    plt.close(fig)
    path = photos.write_synthetic_samples_figure(tmp_path / "samples.png", size=32)
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.size[1] > picture.size[0]
