"""Splits, the enriched table, GeoDataset and GeoDataModule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _lumen_fixtures import coded_level, write_lumen_root

from geoguess_utils import imagenet
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data import augment, datamodule, enrich, geodataset, loading, splits
from geoguess_utils.data.settings import (
    MOVED_KEYS,
    CacheSettings,
    CellSettings,
    LoaderSettings,
    ReadSettings,
    SplitSettings,
)
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import projection

SIZE = 24  # source images are 48 px: the draft path decodes at 1/2


@pytest.fixture(scope="module")
def two_roots(tmp_path_factory):
    """One root with data/ and the organisers' CSV, one with images/ and extra CSV columns."""
    base = tmp_path_factory.mktemp("two_roots")
    a = write_lumen_root(base / "organisers", 10, layout="data", image_size=48, seed=1)
    b = write_lumen_root(
        base / "external", 10, layout="images", image_size=48, extra_columns=True, seed=2, town_offset=7
    )
    return a, b


@pytest.fixture(scope="module")
def predict_root(tmp_path_factory):
    return write_lumen_root(tmp_path_factory.mktemp("predict") / "test", 3, image_size=48, with_csv=False, seed=4)


def truth(fixtures):
    """uuid -> (fixture, position) for the coded colours and coordinates."""
    return {u: (fx, i) for fx in fixtures for i, u in enumerate(fx.uuids)}


def to_uint8_levels(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(imagenet.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(imagenet.IMAGENET_STD).view(3, 1, 1)
    return (images * std + mean) * 255.0


def check_batch(batch, fixtures, context, size=SIZE, labelled=True):
    n = len(batch["uuid"])
    assert batch["images"].shape == (n, 4, 3, size, size) and batch["images"].dtype == torch.float32
    assert batch["class_index"].shape == (n,) and batch["class_index"].dtype == torch.int64
    assert batch["xy_scaled"].shape == (n, 2) and batch["xy_scaled"].dtype == torch.float32
    assert batch["latlon"].shape == (n, 2) and batch["latlon"].dtype == torch.float64
    lookup = truth(fixtures)
    for row, uuid in enumerate(batch["uuid"]):
        fx, index = lookup[uuid]
        levels = to_uint8_levels(batch["images"][row])
        for h_index in range(4):  # heading order 0/90/180/270, pixels of this uuid
            expected = torch.tensor(coded_level(index, h_index), dtype=torch.float32)
            np.testing.assert_allclose(levels[h_index].mean(dim=(1, 2)), expected, atol=4.0)
        if not labelled:
            assert batch["class_index"][row] == -1
            assert torch.isnan(batch["latlon"][row]).all() and torch.isnan(batch["xy_scaled"][row]).all()
            continue
        lat, lon = fx.latitude[index], fx.longitude[index]
        assert batch["latlon"][row].tolist() == [lat, lon]
        assert batch["class_index"][row] == int(context.assign(np.array([lat]), np.array([lon]))[0])
        xs, ys = context.scaler.transform(*projection.to_projected(lat, lon, context.crs))
        np.testing.assert_allclose(batch["xy_scaled"][row].numpy(), [xs, ys], rtol=1e-6)


def make_module(roots, tmp_path, **kwargs):
    """A GeoDataModule from flat keyword arguments (the grouped settings are filled from them)."""
    kwargs.setdefault("image_size", SIZE)
    kwargs.setdefault("batch_size", 4)
    kwargs.setdefault("cache_dir", str(tmp_path / "cache"))
    kwargs.setdefault("run_dir", str(tmp_path / "run"))
    groups = {}
    for key in [k for k in kwargs if k in MOVED_KEYS]:
        group, field = MOVED_KEYS[key].split(".")
        groups.setdefault(group, {})[field] = kwargs.pop(key)
    kinds = {"cells": CellSettings, "split": SplitSettings, "reading": ReadSettings, "cache": CacheSettings}
    kinds["loader"] = LoaderSettings
    settings = {group: kinds[group](**fields) for group, fields in groups.items()}
    return datamodule.GeoDataModule(roots=[str(r) for r in roots], **kwargs, **settings)


# ----------------------------------------------------------------------------- splits


def test_split_is_seeded_sized_and_order_independent():
    uuids = [f"u{i:03d}" for i in range(100)]
    split = splits.make_split(uuids, (0.8, 0.1, 0.1), seed=0)
    assert split["split"].value_counts().to_dict() == {"train": 80, "val": 10, "test": 10}
    assert split["uuid"].tolist() == sorted(uuids)
    pd.testing.assert_frame_equal(split, splits.make_split(list(reversed(uuids)), (0.8, 0.1, 0.1), seed=0))
    assert not split.equals(splits.make_split(uuids, (0.8, 0.1, 0.1), seed=1))
    seed_split = splits.make_split(uuids, (0.9, 0.05, 0.05), seed=0)
    assert seed_split["split"].value_counts().to_dict() == {"train": 90, "val": 5, "test": 5}
    tiny = splits.make_split(["a", "b"], (0.8, 0.1, 0.1))
    assert (tiny["split"] == "train").sum() >= 1


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (-0.1, 0.6, 0.5), (0.0, 0.5, 0.5), (1.0, 0.0)])
def test_invalid_split_fractions(fractions):
    with pytest.raises(ConfigError, match="fractions"):
        splits.make_split(["a", "b", "c"], fractions)


def test_split_rejects_repeats_and_empty():
    with pytest.raises(DataError, match="repeat"):
        splits.make_split(["a", "a", "b"])
    with pytest.raises(DataError, match="empty"):
        splits.make_split([])


def test_split_csv_round_trip_and_mismatch(tmp_path):
    uuids = [f"u{i}" for i in range(20)]
    split = splits.make_split(uuids, seed=3)
    path = splits.save_split(split, tmp_path / "split.csv")
    pd.testing.assert_frame_equal(splits.load_split(path, uuids), split)
    with pytest.raises(DataError, match=r"1 dataset uuids are not in it \(e\.g\. zzz\)"):
        splits.load_split(path, [*uuids, "zzz"])
    with pytest.raises(DataError, match=r"1 of its uuids are not in the dataset \(e\.g\. u0\)"):
        splits.load_split(path, uuids[1:])
    bad = split.copy()
    bad.loc[4, "split"] = "holdout"
    splits.save_split(bad, tmp_path / "bad.csv")
    with pytest.raises(DataError, match=r"bad\.csv line 6: split 'holdout'"):
        splits.load_split(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("id,part\na,train\n")
    with pytest.raises(DataError, match="needs the columns uuid and split"):
        splits.load_split(tmp_path / "cols.csv")
    with pytest.raises(DataError, match="does not exist"):
        splits.load_split(tmp_path / "missing.csv")


# ----------------------------------------------------------------------------- enriched table


def test_enriched_table_is_cached_and_rebuilt_when_an_input_changes(two_roots, tmp_path, monkeypatch):
    locations = loading.load_locations([fx.root for fx in two_roots])
    split = splits.make_split(locations["uuid"], seed=0)
    train = locations[locations["uuid"].isin(split.loc[split["split"] == "train", "uuid"])]
    context = GeoContext.fit(train["latitude"], train["longitude"])
    fresh = enrich.enrich_locations(locations, context, split, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("enriched-*.csv"))) == 1
    expected = context.enrich(locations)
    for column in enrich.ENRICHED_COLUMNS:
        np.testing.assert_array_equal(fresh[column].to_numpy(), expected[column].to_numpy())
    assert fresh["split"].tolist() == split.set_index("uuid").loc[locations["uuid"], "split"].tolist()

    def refuse(*_args, **_kwargs):
        raise AssertionError("enrich must not run: the cached table is valid")

    monkeypatch.setattr(GeoContext, "enrich", refuse)
    cached = enrich.enrich_locations(locations, context, split, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(cached, fresh)  # bit-identical, paths from the live table
    monkeypatch.undo()

    keys = {enrich.enriched_cache_key(locations, split, context)}
    moved = locations.copy()
    moved.loc[0, "latitude"] += 0.01
    keys.add(enrich.enriched_cache_key(moved, split, context))
    other_split = splits.make_split(locations["uuid"], seed=5)
    keys.add(enrich.enriched_cache_key(locations, other_split, context))
    other_context = GeoContext.fit(train["latitude"], train["longitude"], spacing_deg=0.5)
    keys.add(enrich.enriched_cache_key(locations, split, other_context))
    assert len(keys) == 4
    enrich.enrich_locations(moved, context, split, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("enriched-*.csv"))) == 2


def test_unlabelled_rows_are_marked_not_guessed(predict_root, two_roots):
    locations = loading.load_locations([predict_root.root], require_labels=False)
    context = GeoContext.fit(two_roots[0].latitude, two_roots[0].longitude)
    table = enrich.enrich_locations(locations, context)
    assert (table["class_index"] == -1).all() and table["x_scaled"].isna().all()


# ----------------------------------------------------------------------------- dataset


def test_dataset_sample(two_roots):
    fx = two_roots[0]
    locations = loading.load_locations([fx.root])
    context = GeoContext.fit(fx.latitude, fx.longitude)
    dataset = geodataset.GeoDataset(enrich.enrich_locations(locations, context), image_size=SIZE)
    sample = dataset[3]
    assert set(sample) == {"images", "view_mask", "class_index", "xy_scaled", "latlon", "uuid", "index"}
    assert sample["view_mask"].tolist() == [True, True, True, True]
    assert sample["index"] == 3
    assert sample["images"].shape == (4, 3, SIZE, SIZE)
    assert sample["uuid"] == fx.uuids[3]
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    check_batch(batch, [fx], context)


def test_augmentation_keeps_orientation_and_changes_pixels(two_roots):
    fx = two_roots[0]
    table = loading.load_locations([fx.root])
    plain = geodataset.GeoDataset(table, image_size=SIZE)
    augmented = geodataset.GeoDataset(table, image_size=SIZE, augment=augment.TrainAugmentation())
    torch.manual_seed(0)
    changed = 0
    for index in range(len(table)):
        views = augmented[index]["images"]
        assert views.shape == (4, 3, SIZE, SIZE)
        changed += int(not torch.allclose(views, plain[index]["images"]))
        levels = to_uint8_levels(views).sum(dim=1)  # (4, H, W)
        left, right = levels[..., : SIZE // 2].mean(dim=(1, 2)), levels[..., SIZE // 2 :].mean(dim=(1, 2))
        assert (left < right).all(), "a horizontal flip would reverse the left-to-right ramp"
    assert changed == len(table)
    flips = [t for t in augment.TrainAugmentation()._transform(SIZE).transforms if "Flip" in type(t).__name__]
    assert flips == []


# ----------------------------------------------------------------------------- datamodule


def test_datamodule_from_two_roots_yields_correct_batches(two_roots, tmp_path):
    dm = make_module([fx.root for fx in two_roots], tmp_path, augment=False)
    dm.setup("fit")
    assert dm.split["split"].value_counts().to_dict() == {"train": 16, "val": 2, "test": 2}
    assert dm.num_classes == dm.context.num_classes > 0
    assert (tmp_path / "run" / "split.csv").is_file()
    seen = []
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        for batch in loader:
            check_batch(batch, two_roots, dm.context)
            seen += batch["uuid"]
    assert sorted(seen) == sorted(u for fx in two_roots for u in fx.uuids)
    by_split = dm.split.set_index("uuid")["split"]
    val_uuids = [u for b in dm.val_dataloader() for u in b["uuid"]]
    assert set(by_split[val_uuids]) == {"val"}


def test_context_sees_training_rows_only(two_roots, tmp_path, monkeypatch):
    fitted = []
    original = GeoContext.fit.__func__

    def spy(cls, lat, lon, *args, **kwargs):
        fitted.append(set(zip(np.asarray(lat).tolist(), np.asarray(lon).tolist(), strict=True)))
        return original(cls, lat, lon, *args, **kwargs)

    monkeypatch.setattr(GeoContext, "fit", classmethod(spy))
    dm = make_module([fx.root for fx in two_roots], tmp_path)
    dm.setup("fit")
    train = dm.locations[dm.locations["split"] == "train"]
    assert fitted == [set(zip(train["latitude"], train["longitude"], strict=True))]


def test_val_and_test_rows_do_not_change_the_context(tmp_path):
    root = tmp_path / "root"
    fx = write_lumen_root(root, 12, image_size=16, seed=21)
    dm = make_module([root], tmp_path / "first", image_size=8)
    dm.setup("fit")
    split_csv = tmp_path / "first" / "run" / "split.csv"
    reference = dm.context

    frame = pd.read_csv(root / "data.csv", index_col=0, dtype={"uuid": str})
    held_out = frame["uuid"].isin(dm.split.loc[dm.split["split"] != "train", "uuid"])
    assert held_out.sum() >= 2
    # move every val/test location to Croatia's far corners: a leak would move the scaler
    corners = [(42.65, 18.09), (46.38, 16.43), (45.19, 19.30), (44.87, 13.85)]
    for k, idx in enumerate(frame.index[held_out]):
        frame.loc[idx, ["latitude", "longitude"]] = corners[k % len(corners)]
    frame.to_csv(root / "data.csv")
    again = make_module([root], tmp_path / "second", image_size=8, split_csv=str(split_csv))
    again.setup("fit")
    assert again.context.fingerprint() == reference.fingerprint()
    assert again.context.scaler == reference.scaler
    pd.testing.assert_frame_equal(again.context.class_table, reference.class_table)
    np.testing.assert_array_equal(again.context.centroids_latlon(), reference.centroids_latlon())
    assert not again.locations["latitude"].equals(dm.locations["latitude"])  # the held-out rows did move

    # the check can fail: moving one training row does change the context
    train_idx = frame.index[~held_out][0]
    frame.loc[train_idx, ["latitude", "longitude"]] = corners[0]
    frame.to_csv(root / "data.csv")
    moved = make_module([root], tmp_path / "third", image_size=8, split_csv=str(split_csv))
    moved.setup("fit")
    assert moved.context.fingerprint() != reference.fingerprint()
    assert fx.uuids  # the fixture wrote the locations the split refers to


def test_saved_split_is_reused(two_roots, tmp_path):
    roots = [fx.root for fx in two_roots]
    first = make_module(roots, tmp_path / "a", seed=7)
    first.setup("fit")
    second = make_module(roots, tmp_path / "b", seed=99, split_csv=str(tmp_path / "a" / "run" / "split.csv"))
    second.setup("fit")
    pd.testing.assert_frame_equal(first.split, second.split)
    assert (tmp_path / "b" / "run" / "split.csv").read_text() == (tmp_path / "a" / "run" / "split.csv").read_text()
    third = make_module(roots, tmp_path / "c", seed=99)
    third.setup("fit")
    assert not third.split.equals(first.split)


def test_workers_persistent_workers_and_memmap_cache(two_roots, tmp_path):
    roots = [fx.root for fx in two_roots]
    plain = make_module(roots, tmp_path / "plain", augment=False)
    cached = make_module(
        roots,
        tmp_path / "cached",
        augment=False,
        image_cache="memmap",
        num_workers=2,
        persistent_workers=True,
        pin_memory=False,
    )
    plain.setup("fit")
    cached.setup("fit")
    assert sorted(p.name for p in (tmp_path / "cached" / "cache").glob("*.u8")) == [
        f"{name}_{SIZE}px.u8" for name in ("test", "train", "val")
    ]
    loader = cached.train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 2
    train_uuids = set(cached.split.loc[cached.split["split"] == "train", "uuid"])
    for _epoch in range(2):
        epoch = []
        for batch in loader:
            check_batch(batch, two_roots, cached.context)
            epoch += batch["uuid"]
        assert set(epoch) == train_uuids and len(epoch) == len(train_uuids)
    for a, b in zip(plain.val_dataloader(), cached.val_dataloader(), strict=True):
        assert a["uuid"] == b["uuid"]
        torch.testing.assert_close(a["images"], b["images"], rtol=0, atol=0)
    memory = make_module(roots, tmp_path / "cached", augment=False, image_cache="memory")
    memory.setup("fit")
    for a, b in zip(plain.test_dataloader(), memory.test_dataloader(), strict=True):
        torch.testing.assert_close(a["images"], b["images"], rtol=0, atol=0)


def test_predict_loader_over_unlabelled_root(two_roots, predict_root, tmp_path):
    trained = make_module([fx.root for fx in two_roots], tmp_path / "fit")
    trained.setup("fit")
    dm = datamodule.GeoDataModule(
        predict_roots=[str(predict_root.root)],
        image_size=SIZE,
        batch_size=2,
        context=trained.context.to_dict(),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
    )
    dm.setup("predict")
    assert dm.num_classes == trained.num_classes
    uuids = []
    for batch in dm.predict_dataloader():
        check_batch(batch, [predict_root], dm.context, labelled=False)
        uuids += batch["uuid"]
    assert sorted(uuids) == sorted(predict_root.uuids)

    both = make_module([fx.root for fx in two_roots], tmp_path / "both", predict_roots=[str(predict_root.root)])
    both.setup("predict")  # fits the context on the training roots first
    assert both.context.fingerprint() == trained.context.fingerprint()
    assert len(both.dataset("predict")) == 3

    orphan = datamodule.GeoDataModule(
        predict_roots=[str(predict_root.root)], cache=CacheSettings(dir=str(tmp_path / "c"))
    )
    with pytest.raises(ConfigError, match="fitted context"):
        orphan.setup("predict")
    orphan.set_context(trained.context)
    orphan.setup("predict")
    assert len(orphan.dataset("predict")) == 3


def test_strict_and_lenient_datamodule(tmp_path):
    root = tmp_path / "faulty"
    fx = write_lumen_root(root, 8, image_size=16, faults=("missing_image", "nan", "grayscale"), seed=8)
    with pytest.raises(DataError, match=fx.faults["missing_image"]):
        make_module([root], tmp_path / "strict", image_size=8).setup("fit")
    dm = make_module([root], tmp_path / "lenient", image_size=8, lenient=True)
    with pytest.warns(UserWarning, match="skipped 3 locations"):
        dm.setup("fit")
    assert sorted(dm.locations["uuid"]) == sorted(fx.uuids)
    report = pd.read_csv(tmp_path / "lenient" / "run" / "skipped_locations.csv", dtype=str)
    assert sorted(report["uuid"]) == sorted(fx.faults.values())


def test_image_sizes_and_drop_last(two_roots, tmp_path):
    dm = make_module([fx.root for fx in two_roots], tmp_path, image_size=16, batch_size=5, drop_last=True)
    batches = list(dm.train_dataloader())  # sets itself up on demand
    assert [len(b["uuid"]) for b in batches] == [5, 5, 5]
    assert batches[0]["images"].shape == (5, 4, 3, 16, 16)


def test_constructor_checks_arguments():
    with pytest.raises(ConfigError, match=r"cache\.images"):
        datamodule.GeoDataModule(roots=["x"], cache=CacheSettings(images="disk"))
    with pytest.raises(ConfigError, match="centroid"):
        datamodule.GeoDataModule(roots=["x"], cells=CellSettings(centroid="middle"))
    with pytest.raises(ConfigError, match="fractions"):
        datamodule.GeoDataModule(roots=["x"], split=SplitSettings(fractions=(0.7, 0.7, 0.1)))
    with pytest.raises(ConfigError, match="image_size"):
        datamodule.GeoDataModule(roots=["x"], image_size=0)
    with pytest.raises(ConfigError, match="roots"):
        datamodule.GeoDataModule()
    with pytest.raises(ConfigError, match="setup"):
        _ = datamodule.GeoDataModule(roots=["x"]).context


def test_flat_arguments_work_with_jsonargparse():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(datamodule.GeoDataModule, "data")
    config = parser.parse_args(
        [
            "--data.roots=[/a, /b]",
            "--data.image_size=56",
            "--data.split.fractions=[0.9, 0.05, 0.05]",
            "--data.cache.images=memmap",
            "--data.num_workers=2",
        ]
    )
    dm = parser.instantiate(config).data
    assert dm.roots == ["/a", "/b"] and dm.image_size == 56 and dm.split_fractions == (0.9, 0.05, 0.05)
    assert dm.cache.images == "memmap" and dm.num_workers == 2
