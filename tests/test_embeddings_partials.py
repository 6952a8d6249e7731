"""Unfinished embedding-cache files: those of killed processes are removed, those of running ones kept."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _training_helpers import make_dataset

from geoguess_utils import embeddings
from geoguess_utils.data.geodataset import GeoDataset
from geoguess_utils.data.loading import load_locations

SIZE = 32

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> GeoDataset:
    root = make_dataset(tmp_path_factory.mktemp("partials") / "root", 4, size=SIZE, seed=2)
    table = load_locations([str(root)], require_labels=False)
    return GeoDataset(table, SIZE, normalization=_embedder().normalization)


def _embedder() -> embeddings.Embedder:
    torch.manual_seed(0)
    return embeddings.Embedder.by_name("resnet18", pretrained=False)


def _dead_pid() -> int:
    """The id of a process that has just ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The id of another process that keeps running during the test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def _data_path(cache_dir: Path, embedder: embeddings.Embedder) -> Path:
    data_path, _ = embeddings.EmbeddingCache.paths_for(
        cache_dir, "all", {"backbone": embedder.name, "image_size": SIZE}
    )
    return data_path


def _fake_partial(data_path: Path, middle: str) -> Path:
    path = data_path.with_name(f".{data_path.name}.{middle}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 64)
    return path


def test_a_cache_write_removes_partials_of_killed_writers_only(
    dataset: GeoDataset, tmp_path: Path, live_pid: int
) -> None:
    embedder = _embedder()
    data_path = _data_path(tmp_path, embedder)
    host = embeddings.partial_path(data_path).name.rsplit(".", 3)[1]  # this machine, as partial names write it
    dead = _dead_pid()
    stale = _fake_partial(data_path, f"{host}.{dead}")
    stale_old_name = _fake_partial(data_path, str(_dead_pid()))  # name without the machine, as earlier versions wrote
    running = _fake_partial(data_path, f"{host}.{live_pid}")
    init = _fake_partial(data_path, f"{host}.1")  # pid 1 always runs (another user's: PermissionError)
    other_machine = _fake_partial(data_path, f"another-machine.{dead}")  # its process cannot be probed from here
    other_cache = data_path.with_name(f".other_{data_path.name}.{host}.{dead}.partial")
    other_cache.write_bytes(b"\0")

    cache = embeddings.build_embeddings(embedder, dataset, tmp_path, "all", batch_size=4, in_place=True)

    assert cache.shape[0] == len(dataset)
    assert not stale.exists() and not stale_old_name.exists()
    assert running.exists() and init.exists() and other_machine.exists() and other_cache.exists()
    assert not embeddings.partial_path(data_path).exists()  # this process's own file became the cache
    # The cache never reads an unfinished file: what it opened is the finished data file.
    assert Path(cache.data_path).name == data_path.name


def test_a_failed_cache_write_leaves_no_partial(dataset: GeoDataset, tmp_path: Path, monkeypatch) -> None:
    embedder = _embedder()

    def broken(*args: object) -> None:
        raise RuntimeError("the backbone failed")

    monkeypatch.setattr(embeddings, "_compute_in_place", broken)
    with pytest.raises(RuntimeError, match="the backbone failed"):
        embeddings.build_embeddings(embedder, dataset, tmp_path, "all", batch_size=4, in_place=True)
    assert list(_data_path(tmp_path, embedder).parent.glob("*.partial")) == []


def test_process_is_running(live_pid: int) -> None:
    assert embeddings.process_is_running(os.getpid())
    assert embeddings.process_is_running(live_pid)
    assert embeddings.process_is_running(1)
    assert not embeddings.process_is_running(_dead_pid())
