"""Augmented copies in the embedding cache: K seeded augmented versions of every training view, one per epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _training_helpers import fit_args, make_dataset, tiny_backbone, use_tiny_backbone

from geoguess_utils import cli, embeddings
from geoguess_utils.data.augment import AugmentedCopies, DrawnCopies, TrainAugmentation, copy_seed
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.data.geodataset import CachedFeatureDataset, GeoDataset
from geoguess_utils.data.images import cache_key
from geoguess_utils.data.loading import load_locations
from geoguess_utils.data.sampling import EpochSampler
from geoguess_utils.data.settings import CacheSettings, CellSettings, EmbeddingSettings
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.imagenet import IMAGENET_MEAN, IMAGENET_STD

SIZE = 32
LOCATIONS = 30

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("copies") / "root", LOCATIONS, size=SIZE, seed=11)


@pytest.fixture(scope="module")
def embedder():
    torch.manual_seed(0)
    return embeddings.Embedder(tiny_backbone("tiny"), "tiny", (IMAGENET_MEAN, IMAGENET_STD))


@pytest.fixture(scope="module")
def plain(root):
    return GeoDataset(load_locations([str(root)], require_labels=False), SIZE)


def _old_key(paths, backbone, digest, image_size, normalization, num_features, use_draft=True):
    """The embedding cache's key as it was computed before augmented copies existed."""
    images = cache_key(paths, image_size, use_draft=use_draft)
    return {
        "format": 1,
        "backbone": str(backbone),
        "weights": str(digest),
        "image_size": int(image_size),
        "normalization": {"mean": [float(v) for v in normalization[0]], "std": [float(v) for v in normalization[1]]},
        "shape": [len(paths), int(images["shape"][1]), int(num_features)],
        "dtype": "float16",
        "images": {k: images[k] for k in ("decode", "files", "bytes", "mtime_ns")},
    }


def _key(plain, copies=None):
    args = (plain.paths.tolist(), "tiny", "0123456789abcdef", SIZE, (IMAGENET_MEAN, IMAGENET_STD), 8)
    return embeddings.embedding_key(*args, copies=copies.key() if copies is not None else None)


def test_without_copies_the_key_and_files_are_those_of_before(plain, embedder, tmp_path):
    args = (plain.paths.tolist(), "tiny", "0123456789abcdef", SIZE, (IMAGENET_MEAN, IMAGENET_STD), 8)
    assert embeddings.embedding_key(*args) == _old_key(*args)
    assert embeddings.embedding_key(*args, copies=None) == _old_key(*args)
    data, sidecar = embeddings.EmbeddingCache.paths_for(tmp_path, "train", _old_key(*args))
    assert (data.name, sidecar.name) == ("train_tiny_32px.f16", "train_tiny_32px.json")

    cache = embeddings.build_embeddings(embedder, plain, tmp_path, "train")
    assert sorted(p.name for p in (tmp_path / "embeddings").iterdir()) == [
        "train_tiny_32px.f16",
        "train_tiny_32px.json",
    ]
    digest = embeddings.weights_digest(embedder.backbone)
    old = _old_key(plain.paths.tolist(), "tiny", digest, SIZE, (IMAGENET_MEAN, IMAGENET_STD), 8)
    assert json.loads((tmp_path / "embeddings" / "train_tiny_32px.json").read_text())["key"] == old
    assert cache.shape == (LOCATIONS, 4, 8)


def test_the_key_changes_with_k_the_augmentation_and_its_seed(plain):
    keys = [
        _key(plain),
        _key(plain, AugmentedCopies(plain, 2)),
        _key(plain, AugmentedCopies(plain, 3)),
        _key(plain, AugmentedCopies(plain, 2, TrainAugmentation(min_crop_scale=0.5))),
        _key(plain, AugmentedCopies(plain, 2, TrainAugmentation(brightness=0.4))),
        _key(plain, AugmentedCopies(plain, 2, seed=1)),
    ]
    digests = [json.dumps(k, sort_keys=True) for k in keys]
    assert len(set(digests)) == len(digests)
    assert keys[1]["shape"] == [2 * LOCATIONS, 4, 8] and keys[2]["shape"] == [3 * LOCATIONS, 4, 8]
    assert keys[1]["copies"] == {"count": 2, "augmentation": TrainAugmentation().settings(), "seed": 0}
    data, _ = embeddings.EmbeddingCache.paths_for("c", "train", keys[1])
    assert data.name == "train_tiny_32px_copies.f16"  # never the plain cache's file


def test_a_copies_cache_is_reused_and_rebuilt_when_k_or_its_seed_change(plain, embedder, tmp_path, monkeypatch):
    calls = []
    real = embeddings._compute
    monkeypatch.setattr(embeddings, "_compute", lambda *a: calls.append(1) or real(*a))
    embeddings.build_embeddings(embedder, AugmentedCopies(plain, 2), tmp_path, "train")
    embeddings.build_embeddings(embedder, AugmentedCopies(plain, 2), tmp_path, "train")
    assert calls == [1]
    embeddings.build_embeddings(embedder, AugmentedCopies(plain, 3), tmp_path, "train")
    embeddings.build_embeddings(embedder, AugmentedCopies(plain, 3, seed=5), tmp_path, "train")
    embeddings.build_embeddings(embedder, AugmentedCopies(plain, 3, TrainAugmentation(contrast=0.0)), tmp_path, "train")
    assert calls == [1, 1, 1, 1]


def test_copies_differ_from_each_other_and_from_the_plain_views_and_repeat_exactly(plain, embedder, tmp_path, capsys):
    base = embeddings.build_embeddings(embedder, plain, tmp_path / "a", "train")
    copies = embeddings.build_embeddings(embedder, AugmentedCopies(plain, 3), tmp_path / "a", "train", batch_size=7)
    err = capsys.readouterr().err
    assert "computing 3 augmented copies of 30 train locations: 90 x 4 x 8 float16, 0.0 MB" in err
    assert "embedding cache: train copy 3/3, 30/30 locations" in err  # the last line
    assert "train copy 2/3" in err
    rows = np.asarray(copies.array, dtype=np.float32).reshape(3, LOCATIONS, 4, 8)
    plain_rows = np.asarray(base.array, dtype=np.float32)
    for first in range(3):
        assert np.abs(rows[first] - plain_rows).max() > 1e-3
        for second in range(first + 1, 3):
            assert np.abs(rows[first] - rows[second]).max() > 1e-3
    again = embeddings.build_embeddings(embedder, AugmentedCopies(plain, 3), tmp_path / "b", "train", batch_size=4)
    assert again.data_path.read_bytes() == copies.data_path.read_bytes()  # seeded per (copy, location)

    images = AugmentedCopies(plain, 3)
    assert images[LOCATIONS + 4]["copy"] == 1 and images[LOCATIONS + 4]["uuid"] == plain.uuids[4]
    torch.testing.assert_close(images[LOCATIONS + 4]["images"], AugmentedCopies(plain, 3)[LOCATIONS + 4]["images"])
    assert copy_seed(0, 1, plain.uuids[4]) != copy_seed(0, 2, plain.uuids[4]) != copy_seed(1, 2, plain.uuids[4])


def test_each_epoch_draws_one_copy_per_location_reproducibly(plain):
    copies = 4
    features = np.zeros((copies * LOCATIONS, 4, 8), dtype=np.float16)
    for which in range(copies):
        features[which * LOCATIONS : (which + 1) * LOCATIONS] = which  # each row says which copy it is
    drawn = DrawnCopies(plain, features, copies)

    def draws(seed, epoch):
        indices, seeds = EpochSampler(drawn, seed).order(epoch)
        samples = [drawn[(int(i), int(s))] for i, s in zip(indices, seeds, strict=True)]
        assert [s["index"] for s in samples] == indices.tolist()
        return {s["index"]: int(s["view_features"][0, 0]) for s in samples}

    first = draws(7, 0)
    assert sorted(first) == list(range(LOCATIONS)) and set(first.values()) == set(range(copies))
    assert draws(7, 0) == first  # the same seed and epoch: the same copies (a resumed run)
    assert draws(7, 1) != first
    assert draws(8, 0) != first
    assert drawn[5]["view_features"].sum() == 0  # a plain index reads copy 0
    with pytest.raises(DataError, match="rows"):
        DrawnCopies(plain, features[:-1], copies)


def _module(root, tmp_path, copies, augment=True):
    return GeoDataModule(
        roots=[str(root)],
        image_size=SIZE,
        batch_size=8,
        augment=augment,
        cells=CellSettings(spacing_deg=0.7),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
        embeddings=EmbeddingSettings(enabled=True, augmented_copies=copies),
    )


def test_validation_and_test_read_the_plain_features_and_training_the_copies(root, tmp_path, monkeypatch):
    from geoguess_utils.tasks.classification import ClassificationTask

    use_tiny_backbone(monkeypatch)
    module = _module(root, tmp_path, 2)
    module.setup("fit")
    task = ClassificationTask(backbone="efficientnet_lite0", pretrained=False, freeze_backbone_epochs="all")
    task.configure_context(module.context, SIZE)
    source = embeddings.TaskFeatures(task)
    train = module.feature_dataset("train", source)
    assert isinstance(train, DrawnCopies) and len(train.cache) == 2 * len(module.dataset("train"))
    assert train.cache.data_path.name.endswith("_copies.f16")
    embedder = embeddings.Embedder.of_task(task)
    for name in ("val", "test"):
        served = module.feature_dataset(name, source)
        assert isinstance(served, CachedFeatureDataset) and not served.cache.data_path.name.endswith("_copies.f16")
        plain = GeoDataset(module._tables[name], SIZE, normalization=task.normalization)
        expected = embeddings.build_embeddings(embedder, plain, tmp_path / "check", name)
        np.testing.assert_array_equal(np.asarray(served.cache.array), np.asarray(expected.array))


def test_copies_need_the_cache_and_the_augmentation(root, tmp_path):
    with pytest.raises(ConfigError, match=r"needs embeddings\.enabled true and augment true"):
        _module(root, tmp_path, 2, augment=False)
    with pytest.raises(ConfigError, match=r"needs embeddings\.enabled true"):
        GeoDataModule(roots=[str(root)], embeddings=EmbeddingSettings(enabled=False, augmented_copies=2))
    with pytest.raises(ConfigError, match="0 or more"):
        EmbeddingSettings(enabled=True, augmented_copies=-1)
    augmented = GeoDataset(load_locations([str(root)], require_labels=False), SIZE, augment=TrainAugmentation())
    with pytest.raises(DataError, match="without augmentation"):
        AugmentedCopies(augmented, 2)


@pytest.mark.timeout(600)
def test_fit_trains_from_two_augmented_copies(root, tmp_path, monkeypatch, capsys):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    extra = ["--data.embeddings.augmented_copies", "2", "--model.init_args.freeze_backbone_epochs", "all"]
    assert cli.main(["fit", *fit_args(root, tmp_path, *extra, "--trainer.logger", "false", epochs=2)]) == 0
    err = capsys.readouterr().err
    assert "computing 2 augmented copies of" in err and "train copy 2/2" in err
    files = sorted(p.name for p in (tmp_path / "cache" / "embeddings").glob("*.f16"))
    assert files == [  # with_plain (the default): the plain training views are one more choice of each draw
        "train_efficientnet_lite0_32px.f16",
        "train_efficientnet_lite0_32px_copies.f16",
        "val_efficientnet_lite0_32px.f16",
    ]


def test_with_plain_the_plain_views_are_one_more_choice_of_each_draw():
    from geoguess_utils.data.augment import DrawnCopies

    class Base:
        def __init__(self, n):
            self.n = n
            self.class_index = np.zeros(n, dtype=np.int64)
            self.xy_scaled = np.zeros((n, 2), dtype=np.float32)
            self.latlon = np.zeros((n, 2), dtype=np.float64)
            self.uuids = [f"u{i}" for i in range(n)]

        def __len__(self):
            return self.n

        def targets(self, index):
            return {"uuid": self.uuids[index], "index": index}

    n, k = 3, 2
    copies = np.stack([np.full((4, 5), 10 * c + i, dtype=np.float32) for c in range(k) for i in range(n)])
    plain = np.stack([np.full((4, 5), -1 - i, dtype=np.float32) for i in range(n)])
    drawn = DrawnCopies(Base(n), copies, k, plain)
    assert drawn.choices == k + 1
    seen = {float(drawn[(1, seed)]["view_features"][0, 0]) for seed in range(30)}
    assert seen == {-2.0, 1.0, 11.0}  # location 1: plain, copy 0, copy 1
    without = DrawnCopies(Base(n), copies, k)
    assert {float(without[(1, seed)]["view_features"][0, 0]) for seed in range(30)} == {1.0, 11.0}
