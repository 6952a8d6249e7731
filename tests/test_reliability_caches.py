"""Caches that cannot lie, and writes that fail cleanly on a full disk or a read-only folder.

The uint8 image cache and the enriched table carry a key of what they were built from;
these tests damage or outdate them in the ways the older tests do not (a cache file
rewritten at the same size, a table cut inside its last number, a new code version)
and check that the cache is rebuilt and its wrong content never returned. Then every
writer meets a full disk or a read-only folder (simulated: the tests run as root, which
ignores permissions) and must fail with a message naming the file, leaving the previous
good files as they were.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _reliability_helpers import tiny_task, write_checkpoint
from PIL import Image

from geoguess_utils import cli
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data import enrich, images, layout, loading
from geoguess_utils.errors import GeoguessError
from geoguess_utils.tasks.classification import ClassificationTask

SIZE = 16


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("caches") / "sample"
    argv = ["make-sample", "--out", str(root), "--locations", "10", "--size", "32", "--seed", "3", "--workers", "1"]
    assert cli.main(argv) == 0
    return root


@pytest.fixture(scope="module")
def locations(sample) -> pd.DataFrame:
    return loading.load_locations([sample])


@pytest.fixture(scope="module")
def context(locations) -> GeoContext:
    return GeoContext.fit(locations["latitude"], locations["longitude"], spacing_deg=0.5)


def _view_paths(locations: pd.DataFrame) -> list[list[str]]:
    return locations[list(layout.PATH_COLUMNS)].to_numpy(dtype=str).tolist()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _fail_with(monkeypatch, module, name: str, code: int, when=lambda *a: True) -> None:
    real = getattr(module, name)

    def failing(*args, **kwargs):
        if when(*args):
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)


# ----------------------------------------------------------------------------- image cache


def test_image_cache_rewritten_at_the_same_size_is_rebuilt(locations, tmp_path):
    paths = _view_paths(locations)
    cache = images.ImageCache.open_or_build(paths, SIZE, tmp_path, "train", progress=False)
    good = np.array(cache.array)
    data_path, key_path = images.ImageCache.paths_for(tmp_path, "train", SIZE)
    # same byte size, other content (a copy of another cache, a disk error, a stray write)
    data_path.write_bytes(bytes(data_path.stat().st_size))
    again = images.ImageCache.open_or_build(paths, SIZE, tmp_path, "train", progress=False)
    np.testing.assert_array_equal(again.array, good)
    assert json.loads(key_path.read_text())["data"]["mtime_ns"] == data_path.stat().st_mtime_ns


def test_image_cache_with_a_sidecar_from_another_build_is_rebuilt(locations, tmp_path):
    """A sidecar that survived a crash between the data file's replacement and its own."""
    paths = _view_paths(locations)
    images.ImageCache.open_or_build(paths, SIZE, tmp_path / "a", "train", progress=False)
    other = [list(reversed(views)) for views in paths]  # same files, same sizes, other pixels
    images.ImageCache.open_or_build(other, SIZE, tmp_path / "b", "train", progress=False)
    data_a, _ = images.ImageCache.paths_for(tmp_path / "a", "train", SIZE)
    data_b, _ = images.ImageCache.paths_for(tmp_path / "b", "train", SIZE)
    os.replace(data_b, data_a)  # new data under the old sidecar
    cache = images.ImageCache.open_or_build(paths, SIZE, tmp_path / "a", "train", progress=False)
    np.testing.assert_array_equal(cache[0], images.load_views(paths[0], SIZE))


def test_image_cache_key_follows_files_size_and_code(locations, tmp_path, monkeypatch):
    paths = _view_paths(locations)[:3]
    base = images.cache_key(paths, SIZE)
    changed = os.stat(paths[1][3])
    os.utime(paths[1][3], ns=(changed.st_atime_ns, changed.st_mtime_ns + 1))
    try:
        assert images.cache_key(paths, SIZE) != base  # one nanosecond newer
    finally:
        os.utime(paths[1][3], ns=(changed.st_atime_ns, changed.st_mtime_ns))
    assert images.cache_key(paths, SIZE) == base
    assert images.cache_key(paths, SIZE + 1) != base
    assert images.cache_key(paths[:2], SIZE) != base
    monkeypatch.setattr(images, "CACHE_FORMAT", images.CACHE_FORMAT + 1)
    assert images.cache_key(paths, SIZE) != base


# ----------------------------------------------------------------------------- enriched table


def _enriched_file(cache_dir: Path) -> Path:
    (found,) = cache_dir.glob("enriched-*.csv")
    return found


@pytest.mark.parametrize("damage", ["truncated", "edited", "no_sidecar", "garbage"])
def test_damaged_enriched_table_is_recomputed_not_used(damage, locations, context, tmp_path, monkeypatch):
    fresh = enrich.enrich_locations(locations, context, cache_dir=tmp_path)
    table = _enriched_file(tmp_path)
    text = table.read_text()
    if damage == "truncated":  # cut inside the last number: same rows, one value wrong
        table.write_text(text.rstrip("\n")[:-3])
    elif damage == "edited":
        table.write_text(text.replace(",", ",9", 1))
    elif damage == "no_sidecar":
        table.with_suffix(".json").unlink()
    else:
        table.write_bytes(os.urandom(200))
    calls = []
    original = GeoContext.enrich
    monkeypatch.setattr(GeoContext, "enrich", lambda self, df: calls.append(1) or original(self, df))
    again = enrich.enrich_locations(locations, context, cache_dir=tmp_path)
    assert calls == [1]  # recomputed
    pd.testing.assert_frame_equal(again, fresh)
    assert table.read_text() == text  # and rewritten whole


def test_enriched_table_key_follows_the_code_version(locations, context, tmp_path, monkeypatch):
    enrich.enrich_locations(locations, context, cache_dir=tmp_path)
    old = _enriched_file(tmp_path)
    monkeypatch.setattr(enrich, "ENRICH_FORMAT", enrich.ENRICH_FORMAT + 1)
    calls = []
    original = GeoContext.enrich
    monkeypatch.setattr(GeoContext, "enrich", lambda self, df: calls.append(1) or original(self, df))
    enrich.enrich_locations(locations, context, cache_dir=tmp_path)
    assert calls == [1]
    assert len(list(tmp_path.glob("enriched-*.csv"))) == 2 and old.exists()


# ----------------------------------------------------------------------------- full disk, read-only folder


def test_image_cache_on_a_full_disk_fails_cleanly_and_keeps_the_old_cache(locations, tmp_path, monkeypatch):
    paths = _view_paths(locations)
    images.ImageCache.open_or_build(paths[:4], SIZE, tmp_path, "train", progress=False)
    before = _files(tmp_path)
    # more locations: a rebuild; the disk has no room for it (reserving the space fails,
    # before any pixel is written through the memory map, which would crash with SIGBUS)
    _fail_with(monkeypatch, os, "posix_fallocate", errno.ENOSPC)
    with pytest.raises(GeoguessError, match=r"could not write .*train_16px\.u8: the disk is full"):
        images.ImageCache.open_or_build(paths, SIZE, tmp_path, "train", progress=False)
    assert _files(tmp_path) == before  # old data and sidecar untouched, no temporary file left
    monkeypatch.undo()
    cache = images.ImageCache.open_or_build(paths[:4], SIZE, tmp_path, "train", progress=False)
    assert _files(tmp_path) == before and len(cache) == 4  # and still valid for what it was built from


def test_image_cache_failing_at_the_rename_keeps_the_old_data(locations, tmp_path, monkeypatch):
    paths = _view_paths(locations)
    images.ImageCache.open_or_build(paths[:4], SIZE, tmp_path, "train", progress=False)
    data_path, _ = images.ImageCache.paths_for(tmp_path, "train", SIZE)
    old_data = data_path.read_bytes()
    _fail_with(monkeypatch, os, "replace", errno.ENOSPC)
    with pytest.raises(GeoguessError, match=r"train_16px\.u8: the disk is full"):
        images.ImageCache.open_or_build(paths, SIZE, tmp_path, "train", progress=False)
    monkeypatch.undo()
    assert data_path.read_bytes() == old_data
    assert sorted(p.name for p in tmp_path.iterdir()) == [data_path.name]  # no temp file; no sidecar vouching
    cache = images.ImageCache.open_or_build(paths, SIZE, tmp_path, "train", progress=False)  # rebuilt later
    np.testing.assert_array_equal(cache[9], images.load_views(paths[9], SIZE))


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "permission denied")])
def test_enriched_table_in_a_full_or_read_only_folder(code, words, locations, context, tmp_path, monkeypatch):
    _fail_with(monkeypatch, tempfile, "mkstemp", code)
    with pytest.raises(GeoguessError, match=rf"could not write {tmp_path}.*enriched-\w+\.csv: {words}"):
        enrich.enrich_locations(locations, context, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def checkpoint(context, tmp_path_factory) -> Path:
    return write_checkpoint(tiny_task(ClassificationTask, context), tmp_path_factory.mktemp("ckpt") / "classifier.ckpt")


@pytest.mark.parametrize(
    "where, code, words",
    [
        ("replace", errno.ENOSPC, "the disk is full"),
        ("mkstemp", errno.EACCES, "permission denied"),
        ("write", errno.EDQUOT, os.strerror(errno.EDQUOT)),
    ],
)
def test_predict_into_a_full_or_read_only_folder_keeps_the_old_predictions(
    where, code, words, sample, checkpoint, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "out" / "predictions.csv"
    argv = ["predict", "--ckpt", str(checkpoint), "--data", str(sample), "--out", str(out)]
    argv += ["--cache-dir", str(tmp_path / "cache")]
    assert cli.main(argv) == 0
    good = out.read_bytes()
    assert len(pd.read_csv(out)) == 10
    out.write_bytes(good + b"# the earlier predictions\n")
    earlier = out.read_bytes()
    capsys.readouterr()
    if where == "replace":
        _fail_with(monkeypatch, os, "replace", code, lambda src, dst, *a: Path(dst) == out)
    elif where == "mkstemp":
        _fail_with(monkeypatch, tempfile, "mkstemp", code, lambda *a, **k: True)
    else:  # the disk fills up while the CSV is being written
        real_to_csv = pd.DataFrame.to_csv

        def to_full_disk(self, path_or_buf=None, *args, **kwargs):
            if path_or_buf is not None and Path(path_or_buf).parent == out.parent:
                Path(path_or_buf).write_bytes(good[:10])
                raise OSError(code, os.strerror(code))
            return real_to_csv(self, path_or_buf, *args, **kwargs)

        monkeypatch.setattr(pd.DataFrame, "to_csv", to_full_disk)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"could not write {out}" in err and words in err
    assert "previous file, if any, is unchanged" in err
    assert out.read_bytes() == earlier
    assert sorted(p.name for p in out.parent.iterdir()) == ["predictions.csv"]


def test_a_cache_folder_that_cannot_be_created_is_named(sample, checkpoint, tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should go")
    argv = ["predict", "--ckpt", str(checkpoint), "--data", str(sample), "--out", str(tmp_path / "p.csv")]
    assert cli.main([*argv, "--cache-dir", str(blocker / "cache")]) == 2
    err = capsys.readouterr().err
    assert str(blocker / "cache") in err
    assert not (tmp_path / "p.csv").exists()


def test_nothing_is_memory_mapped_for_writing_on_a_full_disk(tmp_path, monkeypatch):
    """The space check comes before np.memmap: nothing is mapped when the disk is full."""
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "v.jpg")
    paths = [[str(tmp_path / "v.jpg")] * 4]
    mapped = []
    real_memmap = np.memmap
    monkeypatch.setattr(np, "memmap", lambda *a, **k: mapped.append(a) or real_memmap(*a, **k))
    _fail_with(monkeypatch, os, "posix_fallocate", errno.ENOSPC)
    with pytest.raises(GeoguessError, match="the disk is full"):
        images.ImageCache.open_or_build(paths, SIZE, tmp_path / "cache", "x", progress=False)
    assert mapped == []


def test_without_space_reservation_the_free_space_is_checked(tmp_path, monkeypatch):
    """File systems that cannot reserve space (or systems without posix_fallocate) compare with the free space."""
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "v.jpg")
    paths = [[str(tmp_path / "v.jpg")] * 4]
    _fail_with(monkeypatch, os, "posix_fallocate", errno.EOPNOTSUPP)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(GeoguessError, match=r"x_16px\.u8: the disk is full"):
        images.ImageCache.open_or_build(paths, SIZE, tmp_path / "cache", "x", progress=False)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 0, 10**9))
    cache = images.ImageCache.open_or_build(paths, SIZE, tmp_path / "cache", "x", progress=False)
    np.testing.assert_array_equal(cache[0], images.load_views(paths[0], SIZE))
