import errno
import os
from pathlib import Path

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


# -- destinations that are not plain files -------------------------------------------------


def test_a_symlink_is_followed_and_its_target_replaced(tmp_path):
    target = tmp_path / "real" / "preds.csv"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    io.atomic_write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["preds.csv"]  # no temporary file left


def test_a_chain_of_symlinks_and_a_dangling_one_reach_their_final_target(tmp_path):
    final = tmp_path / "final.txt"
    (tmp_path / "b").symlink_to(final)  # dangling until written
    (tmp_path / "a").symlink_to(tmp_path / "b")
    io.atomic_write_text(tmp_path / "a", "through two links")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert final.read_text() == "through two links"


def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path):
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as handle:
            received.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    io.atomic_write_text(fifo, "uuid,latitude,longitude\n")
    reader.join(timeout=30)
    assert received == [b"uuid,latitude,longitude\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_a_full_device_reports_the_full_disk_and_stays_a_device(tmp_path):
    import stat

    device = tmp_path / "full"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # the same device as /dev/full
    with pytest.raises(GeoguessError, match=r"full.*disk is full"):
        io.atomic_write_text(device, "x" * 10000)
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_standard_output_is_written_through(tmp_path):
    """``/dev/fd/1`` is written, never replaced; ``/dev/stdout`` is recognised as the same without touching it.

    The subprocess writes to ``/dev/fd/1`` rather than ``/dev/stdout``: a writer that
    replaced its destination would, run as root, turn ``/dev/stdout`` itself into a file.
    """
    import subprocess
    import sys

    for name in ("/dev/stdout", "/dev/stderr", "/dev/fd/1", "/proc/self/fd/2"):
        assert io._destination(Path(name)) == (Path(name), True)
    code = "from geoguess_utils import io; io.atomic_write_text('/dev/fd/1', 'to stdout\\n')"
    env = {**os.environ, "PYTHONPATH": str(Path(io.__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "to stdout\n"
    redirected = tmp_path / "captured.txt"
    with open(redirected, "w") as handle:  # stdout is now a regular file: written at its position, never replaced
        handle.write("before\n")
        handle.flush()
        result = subprocess.run([sys.executable, "-c", code], stdout=handle, timeout=120, env=env)
    assert result.returncode == 0
    assert redirected.read_text() == "before\nto stdout\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["captured.txt"]


def test_a_folder_is_refused_by_name(tmp_path):
    folder = tmp_path / "out"
    (folder / "keep").mkdir(parents=True)
    with pytest.raises(GeoguessError, match=r"out: it is a folder"):
        io.atomic_write_text(folder, "x")
    assert (folder / "keep").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_the_commands_follow_links_and_write_through_devices(tmp_path, capsys):
    import stat

    from geoguess_utils import cli

    root = tmp_path / "root"
    argv = ["make-sample", "--out", str(root), "--locations", "2", "--size", "32", "--seed", "5", "--workers", "1"]
    assert cli.main(argv) == 0
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "report.csv"
    target.write_text("old report")
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    assert cli.main(["validate", str(root), "--report", str(link)]) == 0
    assert link.is_symlink() and target.read_text().startswith("uuid,file,kind,message")
    assert cli.main(["validate", str(root), "--report", str(tmp_path / "reports")]) == 2
    assert "it is a folder" in capsys.readouterr().err
    if os.geteuid() == 0:
        device = tmp_path / "full"
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full
        assert cli.main(["validate", str(root), "--report", str(device)]) == 2
        assert "disk is full" in capsys.readouterr().err
        assert stat.S_ISCHR(os.stat(device).st_mode)
