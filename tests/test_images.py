"""Image loading: DCT-scaled decode, full decode, decompression-bomb guard, uint8 cache."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from _lumen_fixtures import _photo_image, write_lumen_root
from PIL import Image, JpegImagePlugin

from geoguess_utils.data import images, layout, loading
from geoguess_utils.errors import DataError


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four locations of realistic-looking 256x256 JPEGs (view paths per location)."""
    root = tmp_path_factory.mktemp("photos") / "root"
    fx = write_lumen_root(root, 4, image_size=256, pattern="photo", seed=11)
    table = loading.load_locations([fx.root])
    return table[list(layout.PATH_COLUMNS)].to_numpy(dtype=str).tolist()


@pytest.fixture(scope="module")
def jpeg_tolerance(tmp_path_factory):
    """What JPEG itself loses on such images: mean |decoded - original| in 0-255 levels.

    Two decode paths "agree within JPEG tolerance" when they differ from each other by
    less than the compression already changed the pixels.
    """
    folder = tmp_path_factory.mktemp("tolerance")
    errors = []
    for seed in range(3):
        original = _photo_image(256, np.random.default_rng(seed))
        Image.fromarray(original).save(folder / f"{seed}.jpg", quality=90)
        decoded = np.asarray(Image.open(folder / f"{seed}.jpg"), dtype=np.float64)
        errors.append(np.abs(decoded - original).mean())
    return float(np.mean(errors))


@pytest.fixture
def draft_calls(monkeypatch):
    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def test_load_view_shape_and_dtype(photos):
    for size in (56, 64, 100, 128, 160):
        view = images.load_view(photos[0][0], size)
        assert view.shape == (size, size, 3) and view.dtype == np.uint8


def test_draft_is_used_only_when_target_is_at_most_half_the_source(photos, draft_calls):
    images.load_view(photos[0][0], 128)
    assert draft_calls == [(128, 128)]
    images.load_view(photos[0][0], 129)
    images.load_view(photos[0][0], 32, use_draft=False)
    assert draft_calls == [(128, 128)]


@pytest.mark.parametrize("size", [40, 56, 64, 112])
def test_draft_and_full_decode_agree_within_jpeg_tolerance(photos, jpeg_tolerance, size):
    """Decoded at 1/4 (40, 56, 64) or 1/2 (112) of 256 px, then resized where needed.

    An exact 1/8 reduction (256 -> 32) keeps only each 8x8 block's mean, a box filter
    that differs from the bilinear filter by about the JPEG error itself; LUMEN's 640 px
    sources hit it only at exactly 80 px.
    """
    assert jpeg_tolerance > 1.0 and jpeg_tolerance < 8.0  # the measured JPEG error is sane
    for views in photos:
        fast = images.load_views(views, size).astype(np.float64)
        full = images.load_views(views, size, use_draft=False).astype(np.float64)
        assert fast.shape == full.shape == (4, size, size, 3)
        assert np.abs(fast - full).mean() < jpeg_tolerance
        assert abs(fast.mean() - full.mean()) < 1.0


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (4100, 4100), (90, 120, 60)).save(big, quality=50)
    with pytest.raises(DataError, match=r"big\.jpg: 4100x4100 pixels exceeds the limit"):
        images.load_view(big, 56)
    small = tmp_path / "small.jpg"
    Image.new("RGB", (40, 40)).save(small)
    with pytest.raises(DataError, match=r"small\.jpg: 40x40 pixels exceeds the limit of 1000"):
        images.load_view(small, 16, max_pixels=1000)
    assert images.load_view(small, 16, max_pixels=1600).shape == (16, 16, 3)


def test_bad_files_raise_data_error_naming_the_file(tmp_path, photos):
    with pytest.raises(DataError, match=r"nope\.jpg: image file not found"):
        images.load_view(tmp_path / "nope.jpg", 32)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg" * 20)
    with pytest.raises(DataError, match=r"garbage\.jpg: cannot decode"):
        images.load_view(garbage, 32)
    data = Path(photos[0][0]).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode the image \(image file is truncated"):
        images.load_view(cut, 32)


def test_grayscale_and_png_sources_give_rgb(tmp_path):
    gray = tmp_path / "g.jpg"
    Image.new("L", (64, 64), 77).save(gray)
    view = images.load_view(gray, 16)
    assert view.shape == (16, 16, 3) and np.abs(view.astype(int) - 77).max() <= 2
    png = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(png)
    assert (images.load_view(png, 16) == (10, 200, 30)).all()


# ----------------------------------------------------------------------------- cache


def test_cache_matches_direct_loading_and_full_decode(photos, jpeg_tolerance, tmp_path):
    cache = images.ImageCache.open_or_build(photos, 56, tmp_path, "train", progress=False)
    assert len(cache) == len(photos) and cache.array.shape == (len(photos), 4, 56, 56, 3)
    assert isinstance(cache.array, np.memmap)
    for index, views in enumerate(photos):
        np.testing.assert_array_equal(cache[index], images.load_views(views, 56))
        full = images.load_views(views, 56, use_draft=False).astype(np.float64)
        assert np.abs(cache[index].astype(np.float64) - full).mean() < jpeg_tolerance
    data_path, key_path = images.ImageCache.paths_for(tmp_path, "train", 56)
    assert data_path.stat().st_size == len(photos) * 4 * 56 * 56 * 3
    key = json.loads(key_path.read_text())["key"]
    assert key["image_size"] == 56 and key["decode"] == "draft" and key["format"] == images.CACHE_FORMAT
    assert key["files"] == [p for views in photos for p in views]
    assert len(key["bytes"]) == len(key["mtime_ns"]) == 4 * len(photos)
    assert not list(tmp_path.glob(".*.tmp"))


def test_cache_is_reused_until_stale(photos, tmp_path, monkeypatch):
    builds = []
    original = images.ImageCache._build

    def counting(*args, **kwargs):
        builds.append(args[1])
        return original(*args, **kwargs)

    monkeypatch.setattr(images.ImageCache, "_build", staticmethod(counting))
    subset = photos[:3]
    images.ImageCache.open_or_build(subset, 32, tmp_path, "val", progress=False)
    images.ImageCache.open_or_build(subset, 32, tmp_path, "val", progress=False)
    assert len(builds) == 1  # fresh: reused
    images.ImageCache.open_or_build(subset, 40, tmp_path, "val", progress=False)
    assert len(builds) == 2  # another size is another cache
    data_path, key_path = images.ImageCache.paths_for(tmp_path, "val", 32)

    # a source image changes (new mtime): rebuilt
    stat = os.stat(subset[1][2])
    os.utime(subset[1][2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    images.ImageCache.open_or_build(subset, 32, tmp_path, "val", progress=False)
    assert len(builds) == 3
    images.ImageCache.open_or_build(subset, 32, tmp_path, "val", progress=False)
    assert len(builds) == 3

    # a truncated data file: rebuilt, and the rebuilt file is complete
    with open(data_path, "r+b") as handle:
        handle.truncate(1000)
    cache = images.ImageCache.open_or_build(subset, 32, tmp_path, "val", progress=False)
    assert len(builds) == 4 and data_path.stat().st_size == 3 * 4 * 32 * 32 * 3
    np.testing.assert_array_equal(cache[2], images.load_views(subset[2], 32))

    # a damaged sidecar, or another file list, or the full-decode path: rebuilt
    key_path.write_text("{not json")
    images.ImageCache.open_or_build(subset, 32, tmp_path, "val", progress=False)
    assert len(builds) == 5
    images.ImageCache.open_or_build(photos[:2], 32, tmp_path, "val", progress=False)
    assert len(builds) == 6
    cache = images.ImageCache.open_or_build(photos[:2], 32, tmp_path, "val", use_draft=False, progress=False)
    assert len(builds) == 7
    np.testing.assert_array_equal(cache[1], images.load_views(photos[1], 32, use_draft=False))


def test_cache_detects_a_changed_code_version(photos, tmp_path, monkeypatch):
    images.ImageCache.open_or_build(photos[:1], 32, tmp_path, "t", progress=False)
    monkeypatch.setattr(images, "CACHE_FORMAT", images.CACHE_FORMAT + 1)
    _, key_path = images.ImageCache.paths_for(tmp_path, "t", 32)
    before = key_path.read_text()
    images.ImageCache.open_or_build(photos[:1], 32, tmp_path, "t", progress=False)
    assert (
        json.loads(key_path.read_text())["key"]["format"] == images.CACHE_FORMAT != json.loads(before)["key"]["format"]
    )


def test_memory_mode_and_pickling(photos, tmp_path):
    mapped = images.ImageCache.open_or_build(photos, 32, tmp_path, "train", progress=False)
    in_ram = images.ImageCache.open_or_build(photos, 32, tmp_path, "train", in_memory=True, progress=False)
    assert not isinstance(in_ram.array, np.memmap)
    np.testing.assert_array_equal(in_ram.array, mapped.array)
    payload = pickle.dumps(mapped)
    assert len(payload) < 2000  # workers re-map the file instead of receiving the pixels
    clone = pickle.loads(payload)
    np.testing.assert_array_equal(clone[3], mapped[3])


def test_failed_build_leaves_nothing_behind(photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"garbage" * 30)
    paths = [list(photos[0]), [str(broken), *photos[1][1:]]]
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError, match=r"broken\.jpg"):
        images.ImageCache.open_or_build(paths, 32, cache_dir, "train", progress=False)
    assert list(cache_dir.iterdir()) == []


def test_missing_source_file_is_named_when_keying(tmp_path):
    with pytest.raises(DataError, match=r"gone\.jpg"):
        images.cache_key([[str(tmp_path / "gone.jpg")] * 4], 32)


def test_empty_cache(tmp_path):
    cache = images.ImageCache.open_or_build([], 32, tmp_path, "test", progress=False)
    assert len(cache) == 0 and cache.array.shape == (0, 4, 32, 32, 3)
