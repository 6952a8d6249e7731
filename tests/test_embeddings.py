"""The embedding cache: built once through Trainer.predict, detected stale, and used by the frozen phase."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from _training_helpers import make_dataset

from geoguess_utils import embeddings
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.data.geodataset import GeoDataset
from geoguess_utils.data.loading import load_locations
from geoguess_utils.data.settings import CacheSettings, CellSettings, EmbeddingSettings
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.training.callbacks import TaskDataLink

SIZE = 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("emb") / "root", 30, size=SIZE, seed=5)


@pytest.fixture(scope="module")
def embedder():
    torch.manual_seed(0)
    return embeddings.Embedder.by_name("resnet18", pretrained=False)


def _dataset(root, embedder):
    table = load_locations([str(root)], require_labels=False)
    return GeoDataset(table, SIZE, normalization=embedder.normalization)


def test_cached_features_are_the_backbone_features_of_each_view(root, embedder, tmp_path):
    dataset = _dataset(root, embedder)
    cache = embeddings.build_embeddings(embedder, dataset, tmp_path, "all", batch_size=7)
    assert cache.shape == (30, 4, 512) and cache.array.dtype == np.float16
    images = torch.stack([dataset[i]["images"] for i in (0, 17, 29)])
    with torch.no_grad():
        expected = embedder.eval().view_features(images).numpy()
    got = np.stack([cache[i] for i in (0, 17, 29)]).astype(np.float32)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)  # float16 storage


def test_a_fresh_cache_is_reused_and_a_stale_one_rebuilt(root, embedder, tmp_path, monkeypatch):
    dataset = _dataset(root, embedder)
    first = embeddings.build_embeddings(embedder, dataset, tmp_path, "all")
    calls = []
    real = embeddings._compute
    monkeypatch.setattr(embeddings, "_compute", lambda *a: calls.append(1) or real(*a))
    embeddings.build_embeddings(embedder, dataset, tmp_path, "all")
    assert calls == []  # fresh: nothing recomputed

    with open(first.data_path, "r+b") as f:  # truncated
        f.truncate(100)
    embeddings.build_embeddings(embedder, dataset, tmp_path, "all")
    assert calls == [1]

    data_path = first.data_path
    sidecar = data_path.with_suffix(".json")
    stored = json.loads(sidecar.read_text())
    stored["key"]["image_size"] = 64  # edited sidecar
    sidecar.write_text(json.dumps(stored))
    embeddings.build_embeddings(embedder, dataset, tmp_path, "all")
    assert calls == [1, 1]

    view = dataset.paths[3][0]
    os.utime(view, ns=(os.stat(view).st_atime_ns, os.stat(view).st_mtime_ns + 10**9))  # an image changed
    embeddings.build_embeddings(embedder, _dataset(root, embedder), tmp_path, "all")
    assert calls == [1, 1, 1]

    with torch.no_grad():
        next(embedder.backbone.parameters()).add_(1.0)  # other weights
    try:
        embeddings.build_embeddings(embedder, _dataset(root, embedder), tmp_path, "all")
    finally:
        with torch.no_grad():
            next(embedder.backbone.parameters()).sub_(1.0)
    assert len(calls) == 4


def test_an_augmented_dataset_is_refused(root, embedder, tmp_path):
    from geoguess_utils.data.augment import TrainAugmentation
    from geoguess_utils.errors import DataError

    table = load_locations([str(root)], require_labels=False)
    dataset = GeoDataset(table, SIZE, augment=TrainAugmentation())
    with pytest.raises(DataError, match="un-augmented"):
        embeddings.build_embeddings(embedder, dataset, tmp_path, "all")


class _BatchKinds(pl.Callback):
    """Which kind of batch each training epoch saw: cached features or images."""

    def __init__(self) -> None:
        self.kinds: dict[int, set[str]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        kind = "features" if "view_features" in batch else "images"
        self.kinds.setdefault(trainer.current_epoch, set()).add(kind)


def _module(root, tmp_path, enabled):
    return GeoDataModule(
        roots=[str(root)],
        image_size=SIZE,
        batch_size=8,
        augment=False,
        cells=CellSettings(spacing_deg=0.7),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
        embeddings=EmbeddingSettings(enabled=enabled),
    )


def _fit(module, task, epochs, tmp_path, callbacks=(), one_batch=False):
    """Fit for ``epochs``; ``one_batch``: one training and one validation batch per epoch (wiring tests)."""
    trainer = pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=1 if one_batch else 1.0,
        limit_val_batches=1 if one_batch else 1.0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[TaskDataLink(), *callbacks],
    )
    trainer.fit(task, datamodule=module)
    return trainer


def test_the_frozen_phase_trains_from_the_cache_then_images_return(root, tmp_path):
    kinds = _BatchKinds()
    task = ClassificationTask(backbone="resnet18", pretrained=False, freeze_backbone_epochs=1)
    _fit(_module(root, tmp_path, True), task, 2, tmp_path, [kinds], one_batch=True)
    assert kinds.kinds == {0: {"features"}, 1: {"images"}}


def test_cache_on_and_off_give_the_same_frozen_training(root, tmp_path):
    results = {}
    for enabled in (False, True):
        pl.seed_everything(3)
        task = ClassificationTask(backbone="resnet18", pretrained=False, freeze_backbone_epochs=2, head_hidden=16)
        trainer = _fit(_module(root, tmp_path / str(enabled), enabled), task, 2, tmp_path)
        results[enabled] = float(trainer.callback_metrics["val/mean_km"])
    # not identical: features are stored as float16, and the image path runs the frozen backbone's
    # batch norm on batch statistics, the cache on its running ones
    assert results[True] == pytest.approx(results[False], rel=2e-2)


def test_a_backbone_frozen_for_all_epochs_never_runs_after_the_cache_and_stays_fixed(root, tmp_path, monkeypatch):
    from geoguess_utils.models.multiview import MultiViewNet

    task = ClassificationTask(backbone="resnet18", pretrained=False, freeze_backbone_epochs="all")
    module = _module(root, tmp_path, True)
    module.setup("fit")
    task.configure_context(module.context, SIZE)
    before = {k: v.clone() for k, v in task.net.backbone.state_dict().items()}
    calls = []
    real = MultiViewNet.view_features
    monkeypatch.setattr(MultiViewNet, "view_features", lambda self, x: calls.append(1) or real(self, x))
    kinds = _BatchKinds()
    _fit(module, task, 2, tmp_path, [kinds], one_batch=True)
    assert kinds.kinds == {0: {"features"}, 1: {"features"}}
    assert calls == []  # the cache was computed by the Embedder, training used only the head
    for name, value in task.net.backbone.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)


def test_the_embed_command_builds_then_reuses_the_cache(root, tmp_path, capsys):
    from geoguess_utils import cli

    argv = ["embed", "--data", str(root), "--image-size", "32", "--cache-dir", str(tmp_path)]
    assert cli.main(argv) == 0  # EfficientNet-Lite0 with the weights installed with the package
    assert "30 locations x 4 views x 1280 features (efficientnet_lite0, 32 px)" in capsys.readouterr().out
    files = sorted(p.name for p in (tmp_path / "embeddings").iterdir())
    assert files == ["all_efficientnet_lite0_32px.f16", "all_efficientnet_lite0_32px.json"]
    data = tmp_path / "embeddings" / "all_efficientnet_lite0_32px.f16"
    stamp = data.stat().st_mtime_ns
    assert cli.main(argv) == 0
    assert data.stat().st_mtime_ns == stamp  # the same weights and images: reused
    assert data.stat().st_size == 30 * 4 * 1280 * 2


def test_freeze_batchnorm_keeps_the_backbones_running_statistics(root, tmp_path):
    task = ClassificationTask(backbone="resnet18", pretrained=False, freeze_backbone_epochs=0, freeze_batchnorm=True)
    module = _module(root, tmp_path, False)
    module.setup("fit")
    task.configure_context(module.context, SIZE)
    bn = task.net.backbone.body.bn1
    before, weight = bn.running_mean.clone(), task.net.backbone.body.conv1.weight.detach().clone()
    _fit(module, task, 1, tmp_path)  # a full epoch: the backbone's first step has no learning rate yet
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)
    assert not torch.equal(task.net.backbone.body.conv1.weight.detach(), weight)  # the backbone itself trained


def test_views_normalised_for_another_backbone_are_refused(root, embedder, tmp_path):
    from geoguess_utils.errors import DataError

    table = load_locations([str(root)], require_labels=False)
    dataset = GeoDataset(table, SIZE, normalization=((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    with pytest.raises(DataError, match="not normalised as backbone 'resnet18' expects"):
        embeddings.build_embeddings(embedder, dataset, tmp_path, "all")


def test_the_test_split_is_scored_from_images_as_predictions_are(root, tmp_path):
    """Cached float16 features speed up training; the final test score comes from the images.

    So the logged ``test/mean_km`` is the score ``geoguess predict`` gives, to the metre, even
    for a head-only run whose every training and validation batch was read from the cache.
    """
    from geoguess_utils.geo import distance
    from geoguess_utils.tasks.regression import RegressionTask

    pl.seed_everything(4)
    task = RegressionTask(backbone="resnet18", pretrained=False, freeze_backbone_epochs="all")
    module = _module(root, tmp_path, True)
    trainer = _fit(module, task, 2, tmp_path, one_batch=True)  # the test split below is scored in full
    logged = trainer.test(task, datamodule=module, verbose=False)[0]["test/mean_km"]
    task.eval()
    errors = []
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(module.dataset("test"), batch_size=4):
            lat, lon = task.decode(task(batch["images"])).numpy().T
            truth = batch["latlon"].numpy()
            errors.append(distance.haversine_km(truth[:, 0], truth[:, 1], lat, lon))
    assert logged == pytest.approx(float(np.concatenate(errors).mean()), abs=1e-5)  # 1 cm; float16 features: 0.2 m
