"""Notebook 06's plumbing: cached features, heads trained from them, the tables and the attention figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.course import beyond, workspace
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import distance

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARGS = {"backbone": "efficientnet_lite0", "pretrained": False, "freeze_backbone_epochs": "all", "lr": 1e-2}
FEATURES = 1280


@pytest.fixture(scope="module")
def context(croatia_points) -> GeoContext:
    lat, lon = croatia_points
    return GeoContext.fit(lat[:600], lon[:600], spacing_deg=1.0)


def _learnable_split(context: GeoContext, lat: np.ndarray, lon: np.ndarray, seed: int = 0) -> beyond.SplitFeatures:
    """Features that say which class a location is in (its class's own direction plus noise)."""
    rng = np.random.default_rng(seed)
    classes = context.assign(lat, lon)
    directions = np.random.default_rng(99).normal(size=(context.num_classes, FEATURES))
    features = directions[classes][:, None, :] + 0.5 * rng.normal(size=(len(lat), 4, FEATURES))
    return beyond.SplitFeatures(
        torch.as_tensor(features, dtype=torch.float32),
        np.column_stack([lat, lon]).astype(np.float64),
        [f"u{i}" for i in range(len(lat))],
        np.full((len(lat), 4), "", dtype=object),
    )


def test_a_batch_carries_the_features_and_the_classes_of_any_context(context, croatia_points):
    lat, lon = croatia_points
    part = _learnable_split(context, lat[:50], lon[:50])
    batch = beyond.feature_batch(part, context, np.array([3, 1, 4]))
    assert batch["view_features"].shape == (3, 4, FEATURES) and batch["view_features"].dtype == torch.float32
    assert torch.equal(batch["view_features"][1], part.features[1])
    assert batch["class_index"].tolist() == context.assign(lat[[3, 1, 4]], lon[[3, 1, 4]]).tolist()
    assert batch["latlon"].dtype == torch.float64 and torch.equal(batch["latlon"][0], torch.from_numpy(part.latlon[3]))
    coarse = GeoContext.fit(lat[:600], lon[:600], spacing_deg=2.0)
    assert beyond.feature_batch(part, coarse)["class_index"].tolist() == coarse.assign(lat[:50], lon[:50]).tolist()


def test_a_head_learns_from_features_and_leaves_the_backbone_alone(context, croatia_points):
    lat, lon = croatia_points
    train = _learnable_split(context, lat[:300], lon[:300])
    test = _learnable_split(context, lat[600:700], lon[600:700], seed=1)
    task = beyond.new_task(ARGS, context, 32, seed=0)
    before_km = beyond.errors_km(task, test)  # the untrained head answers with the prior everywhere
    backbone = {name: value.clone() for name, value in task.net.backbone.state_dict().items()}
    losses = beyond.train_head(task, train, epochs=4, batch_size=32, seed=0)
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0]
    assert not task.training
    after_km = beyond.errors_km(task, test)
    assert after_km.shape == (100,) and after_km.mean() < 0.7 * before_km.mean()
    assert all(torch.equal(value, backbone[name]) for name, value in task.net.backbone.state_dict().items())
    again = beyond.new_task(ARGS, context, 32, seed=0)
    beyond.train_head(again, train, epochs=4, batch_size=32, seed=0)
    assert torch.equal(again.net.head[-1].weight, task.net.head[-1].weight), "same seed, same head"
    other = beyond.new_task(ARGS, context, 32, seed=0)
    beyond.train_head(other, train, epochs=4, batch_size=32, seed=1)
    assert not torch.equal(other.net.head[-1].weight, task.net.head[-1].weight), "another batch order"
    assert torch.get_num_threads() == 1  # restored to the module's setting


def test_train_head_refuses_what_it_cannot_train(context, croatia_points):
    lat, lon = croatia_points
    train = _learnable_split(context, lat[:20], lon[:20])
    with pytest.raises(ConfigError, match="at least 1"):
        beyond.train_head(beyond.new_task(ARGS, context, 32, 0), train, epochs=0)
    from geoguess_utils.tasks.classification import ClassificationTask

    with pytest.raises(ConfigError, match="no network"):
        beyond.train_head(ClassificationTask(**ARGS), train, epochs=1)


def test_errors_are_the_great_circle_distances_to_the_decoded_points(context, croatia_points):
    lat, lon = croatia_points
    part = _learnable_split(context, lat[:7], lon[:7])
    task = beyond.new_task(ARGS, context, 32, seed=3)
    with torch.no_grad():
        points = task.decode(task.batch_outputs({"view_features": part.features})).numpy()
    expected = distance.haversine_km(lat[:7], lon[:7], points[:, 0], points[:, 1])
    assert np.allclose(beyond.errors_km(task, part, batch_size=3), expected)


def test_torch_threads_restores_the_count_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), beyond.torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_the_results_table_reads_every_variant_against_the_recipe():
    results = {
        "recipe": {"km": np.array([10.0, 30.0]), "classes": 9, "seconds": 1.0},
        "attention": {"km": np.array([5.0, 15.0]), "classes": 9, "seconds": 4.0},
    }
    table = beyond.results_table(results)
    assert list(table.index) == ["recipe", "attention"]
    assert table.loc["attention", "vs_recipe"] == pytest.approx(0.5) and table.loc["recipe", "vs_recipe"] == 1.0
    assert table.loc["recipe", "within_25_km"] == 0.5 and table.loc["attention", "within_25_km"] == 1.0
    with pytest.raises(DataError, match="no 'recipe'"):
        beyond.results_table({"attention": results["attention"]})
    with pytest.raises(DataError, match="different numbers"):
        beyond.results_table({**results, "short": {"km": np.array([1.0]), "classes": 2}})


def test_a_gap_counts_only_beyond_the_larger_spread():
    assert beyond.noise_verdict(60.5, 1.0, 60.0, 1.0) == "within noise"
    assert beyond.noise_verdict(58.0, 1.0, 60.0, 1.0) == "better"
    assert beyond.noise_verdict(58.0, 1.0, 60.0, 2.5) == "within noise"  # the recipe's spread counts too
    assert beyond.noise_verdict(58.0, 2.5, 60.0, 1.0) == "within noise"
    assert beyond.noise_verdict(63.5, 0.5, 60.0, 1.0) == "worse"


def test_the_committed_comparison_adds_the_ensembles_and_says_what_helped():
    table = beyond.committed_comparison(workspace.project_root(Path(__file__)))
    assert table.index.is_unique and table.loc["recipe", "verdict"] == "within noise"
    assert set(table["verdict"]) <= set(beyond.VERDICTS)
    assert table.loc["best, ensemble of 3", "run"] == "ensembles" and table.loc["kNN", "run"] == "ablation"
    assert table.loc["kNN", "verdict"] == "worse" and table.loc["best", "verdict"] == "better"


def _copy_benchmarks(tmp_path: Path) -> Path:
    project = workspace.project_root(Path(__file__))
    (tmp_path / "benchmarks").mkdir()
    for relative in ("benchmarks/ablation.json", "benchmarks/ablation_100.json", beyond.ENSEMBLES_FILE):
        shutil.copy(project / relative, tmp_path / relative)
    return tmp_path


def test_runs_of_other_seeds_are_not_compared(tmp_path):
    root = _copy_benchmarks(tmp_path)
    path = root / beyond.ENSEMBLES_FILE
    data = json.loads(path.read_text())
    data["settings"]["seeds"] = [0, 1, 2]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="not comparable"):
        beyond.committed_comparison(root)
    path.unlink()
    with pytest.raises(DataError, match="no such ablation file"):
        beyond.committed_comparison(root)


def test_the_attention_figure_has_the_views_and_one_matrix_per_layer():
    views = {heading: np.zeros((8, 8, 3), dtype=np.uint8) for heading in (0, 90, 180, 270)}
    weights = [np.full((4, 4), 0.25), np.eye(4)]
    figure = beyond.plot_view_attention(views, weights, title="one location")
    images = [ax for ax in figure.axes if ax.get_images()]
    assert len(images) == 6  # four photos and two heat maps
    heat = [ax for ax in images if ax.get_title().startswith("encoder layer")]
    assert [ax.get_title() for ax in heat] == ["encoder layer 1", "encoder layer 2"]
    assert np.allclose(heat[1].get_images()[0].get_array(), np.eye(4))
    with pytest.raises(DataError, match=r"\(4, 4\) matrix"):
        beyond.plot_view_attention(views, [np.eye(3)])
    with pytest.raises(DataError):
        beyond.plot_view_attention(views, [])


@pytest.mark.slow
def test_split_features_come_from_the_embedding_cache_and_are_read_back(tmp_path):
    from _training_helpers import make_dataset

    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings, CellSettings, EmbeddingSettings, SplitSettings

    root = make_dataset(tmp_path / "data", 20, size=32)

    def module() -> GeoDataModule:
        dm = GeoDataModule(
            roots=[str(root)],
            image_size=32,
            batch_size=8,
            num_workers=0,
            augment=False,
            cells=CellSettings(scheme="square", spacing_deg=1.0),
            split=SplitSettings(fractions=(0.6, 0.2, 0.2), seed=0),
            cache=CacheSettings(images="memory", dir=str(tmp_path / "cache")),
            embeddings=EmbeddingSettings(enabled=True),
        )
        dm.setup("fit")
        return dm

    dm = module()
    task = beyond.new_task({**ARGS, "pretrained": True}, dm.context, 32, seed=0)  # ImageNet weights: real features
    parts = beyond.split_features(dm, task)
    assert list(parts) == ["train", "val", "test"] and sum(len(p) for p in parts.values()) == 20
    test = parts["test"]
    assert test.features.shape == (len(test), 4, FEATURES) and test.features.dtype == torch.float32
    assert np.allclose(test.latlon, dm.dataset("test").latlon) and test.uuids == dm.dataset("test").uuids
    with torch.no_grad():
        direct = task.net.view_features(dm.dataset("test")[0]["images"][None])[0]
    assert torch.allclose(test.features[0], direct, atol=5e-2 * float(direct.abs().max()))  # float16 in the cache
    cached = sorted((tmp_path / "cache" / "embeddings").glob("*.f16"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    again = beyond.split_features(module(), task)
    assert [p.stat().st_mtime_ns for p in cached] == stamps, "the second read computes nothing"
    assert torch.equal(again["train"].features, parts["train"].features)
