import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from geoguess_utils.course import workspace
from geoguess_utils.errors import DataError


def _project(tmp_path):
    root = tmp_path / "project"
    (root / "notebooks" / "deep").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return root


def test_project_root_walks_up_to_pyproject(tmp_path):
    root = _project(tmp_path)
    assert workspace.project_root(root / "notebooks" / "deep") == root.resolve()
    assert workspace.project_root(root) == root.resolve()


def test_project_root_defaults_to_the_working_directory(tmp_path, monkeypatch):
    root = _project(tmp_path)
    monkeypatch.chdir(root / "notebooks")
    assert workspace.project_root() == root.resolve()


def test_project_root_falls_back_to_start(tmp_path):
    lonely = tmp_path / "nowhere"
    lonely.mkdir()
    assert workspace.project_root(lonely) == lonely.resolve()


def test_figures_dir_is_created(tmp_path):
    root = _project(tmp_path)
    folder = workspace.figures_dir(root)
    assert folder == root / "figures" / "generated" and folder.is_dir()
    assert workspace.published_figures_dir(root) == root / "figures"


def test_generated_figures_are_ignored_by_git():
    project = Path(__file__).resolve().parents[1]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "figures/generated/locations.png"], cwd=project, check=False
    ).returncode
    tracked = subprocess.run(["git", "check-ignore", "-q", "figures/locations.png"], cwd=project, check=False)
    assert ignored == 0 and tracked.returncode == 1


def test_publish_figures_copies_generated_over_tracked(tmp_path):
    from geoguess_utils.course import figures

    root = _project(tmp_path)
    with pytest.raises(DataError, match="holds no figures yet"):
        figures.publish_figures(root)
    (workspace.figures_dir(root) / "locations.png").write_bytes(b"new picture")
    (workspace.figures_dir(root) / "predictions_map.html").write_text("<html></html>")
    (workspace.published_figures_dir(root) / "locations.png").write_bytes(b"old picture")
    written = figures.publish_figures(root)
    assert written == [root / "figures" / "locations.png"]
    assert (root / "figures" / "locations.png").read_bytes() == b"new picture"
    assert not (root / "figures" / "predictions_map.html").exists()  # the map is never tracked
    with pytest.raises(DataError, match=r"error_floor\.png"):
        figures.publish_figures(root, ["locations.png", "error_floor.png"])


def test_run_name_keeps_course_for_the_sample_only(tmp_path):
    root = _project(tmp_path)
    sample = workspace.sample_dir(root)
    sample.mkdir(parents=True)
    other = tmp_path / "lumen train!"
    other.mkdir()
    assert workspace.run_name([sample], root=root) == "course"
    named = workspace.run_name([other], root=root)
    assert named.startswith("course-lumen-train-") and named != workspace.run_name([other, sample], root=root)
    assert named == workspace.run_name([tmp_path / "x" / ".." / "lumen train!"], root=root)  # by resolved path
    assert workspace.run_name([sample, other], base="demo", root=root).startswith("demo-synthetic-")


def test_data_roots_from_the_environment(tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv(workspace.DATA_DIR_ENV, f"{first}{os.pathsep}{second}{os.pathsep}")
    assert workspace.data_roots() == [first, second]
    assert workspace.data_roots(env=str(first)) == [first]


def test_missing_roots_are_named(tmp_path):
    with pytest.raises(DataError, match="nope"):
        workspace.data_roots(env=f"{tmp_path}{os.pathsep}{tmp_path / 'nope'}")


def test_unset_environment_means_the_sample(tmp_path):
    root = _project(tmp_path)
    with pytest.raises(DataError, match="make-sample"):
        workspace.data_roots(env="", root=root, generate=False)
    sample = workspace.sample_dir(root)
    sample.mkdir(parents=True)
    pd.DataFrame({"uuid": ["u"], "latitude": [45.0], "longitude": [16.0], "source": ["synthetic"]}).to_csv(
        sample / "data.csv", index=False
    )
    assert workspace.data_roots(env="  ", root=root, generate=False) == [sample]


def _fake_run(write_csv, returncode=0, stderr=""):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        out = Path(command[command.index("--out") + 1])
        if write_csv:
            (out / "data.csv").write_text("uuid,latitude,longitude,source\n")
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr=stderr)

    return run, calls


def test_make_sample_stages_then_renames(tmp_path, monkeypatch):
    run, calls = _fake_run(write_csv=True)
    monkeypatch.setattr(workspace.subprocess, "run", run)
    out = tmp_path / "data" / "synthetic"
    assert workspace.make_sample(out, locations=7, size_px=40, seed=3) == out
    assert (out / "data.csv").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["synthetic"]  # no staging folder left
    command = calls[0]
    assert command[:4] == [sys.executable, "-m", "geoguess_utils.cli", "make-sample"]
    assert command[command.index("--locations") + 1] == "7"
    assert command[command.index("--size") + 1] == "40"
    assert command[command.index("--seed") + 1] == "3"
    workspace.make_sample(out)  # complete already: nothing runs
    assert len(calls) == 1


def test_make_sample_failure_leaves_nothing(tmp_path, monkeypatch):
    run, _ = _fake_run(write_csv=False, returncode=2, stderr="geoguess make-sample: error: disk full")
    monkeypatch.setattr(workspace.subprocess, "run", run)
    out = tmp_path / "data" / "synthetic"
    with pytest.raises(DataError, match="disk full"):
        workspace.make_sample(out)
    assert list(out.parent.iterdir()) == []


def test_make_sample_refuses_an_unknown_folder(tmp_path):
    out = tmp_path / "synthetic"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=r"no data\.csv"):
        workspace.make_sample(out)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_make_sample_runs_the_real_generator(tmp_path):
    out = workspace.make_sample(tmp_path / "sample", locations=3, size_px=32, seed=1)
    table = pd.read_csv(out / "data.csv")
    assert len(table) == 3
    assert workspace.is_synthetic([out])


def _csv(folder, **columns):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(folder / "data.csv", index=False)
    return folder


def test_is_synthetic(tmp_path):
    synthetic = _csv(tmp_path / "s", uuid=["a", "b"], latitude=[45, 45], longitude=[16, 16], source=["synthetic"] * 2)
    real = _csv(tmp_path / "r", uuid=["c"], latitude=[45], longitude=[16])
    mixed = _csv(tmp_path / "m", uuid=["d", "e"], latitude=[45, 45], longitude=[16, 16], source=["synthetic", "car"])
    predict_only = tmp_path / "p"
    predict_only.mkdir()
    assert workspace.is_synthetic([synthetic])
    assert not workspace.is_synthetic([synthetic, real])
    assert not workspace.is_synthetic([mixed])
    assert not workspace.is_synthetic([predict_only])
    assert not workspace.is_synthetic([])


def test_publish_figures_command(tmp_path, monkeypatch, capsys):
    from geoguess_utils.course import figures

    root = _project(tmp_path)
    monkeypatch.chdir(root / "notebooks")
    assert figures.main([]) == 2
    assert "run the notebooks first" in capsys.readouterr().err
    (workspace.figures_dir(root) / "error_floor.png").write_bytes(b"fresh")
    assert figures.main(["error_floor.png"]) == 0
    assert "published figures/error_floor.png" in capsys.readouterr().out
    assert (root / "figures" / "error_floor.png").read_bytes() == b"fresh"
