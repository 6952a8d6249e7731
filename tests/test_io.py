import errno
import os

import pandas as pd
import pytest

from geoguess_utils import io
from geoguess_utils.errors import GeoguessError


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    io.atomic_write_text(target, "first")
    io.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temporary files left


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "preds.csv"
    io.atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash in the middle")
    assert target.read_text() == "good"
    assert len(list(tmp_path.iterdir())) == 1


def test_disk_full_is_reported_with_path(tmp_path, monkeypatch):
    target = tmp_path / "cache.bin"
    io.atomic_write_bytes(target, b"old")
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(GeoguessError, match=r"cache\.bin.*disk is full"):
        io.atomic_write_bytes(target, b"new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_bytes() == b"old"
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(GeoguessError, match="permission"):
        io.atomic_write_text(folder / "x.txt", "y")


def test_read_only_folder_simulated(tmp_path, monkeypatch):
    import tempfile

    def denied(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(GeoguessError, match=r"x\.txt.*read-only"):
        io.atomic_write_text(tmp_path / "x.txt", "y")


def test_csv_writer(tmp_path):
    df = pd.DataFrame({"uuid": ["a", "b"], "latitude": [45.0, 44.0]})
    path = io.atomic_write_csv(df, tmp_path / "t.csv")
    assert pd.read_csv(path).equals(df)
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)
