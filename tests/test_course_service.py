"""Notebook 07's server helper: a real ``geoguess serve`` that is gone after every way of ending, and the answer maps.

Each server test starts the command on 127.0.0.1 with a tiny untrained checkpoint and checks,
by its PID, that no server process is left: after a ``with`` block, after an exception
inside one, after :meth:`Service.stop`, when the object is collected, and when the Python
process that started it exits without stopping it.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import matplotlib
import numpy as np
import pytest
from _reliability_helpers import tiny_task, write_checkpoint

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.course import service
from geoguess_utils.errors import GeoguessError
from geoguess_utils.tasks.classification import ClassificationTask

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
GONE_WITHIN_S = 15.0
"""How long a stopped server's PID may take to disappear (it is waited for, so at once in practice)."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, croatia_points) -> Path:
    """A tiny untrained classifier's checkpoint, outside any models folder."""
    lat, lon = croatia_points
    context = GeoContext.fit(lat[:300], lon[:300], spacing_deg=1.0)
    path = tmp_path_factory.mktemp("checkpoint") / "tiny.ckpt"
    return write_checkpoint(tiny_task(ClassificationTask, context), path)


def models_folder(base: Path, checkpoint: Path, name: str = "tiny") -> Path:
    """A new models folder holding a copy of ``checkpoint`` as ``<name>.ckpt``."""
    folder = base / "models"
    folder.mkdir()
    (folder / f"{name}.ckpt").write_bytes(checkpoint.read_bytes())
    return folder


def env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def gone(pid: int, within_s: float = GONE_WITHIN_S) -> bool:
    """Whether ``pid`` names no running process, waiting up to ``within_s`` for it to end."""
    deadline = time.monotonic() + within_s
    while service.process_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ----------------------------------------------------------------------------- process checks (no server)
def test_process_running_tells_a_live_process_from_an_ended_one():
    assert service.process_running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert service.process_running(child.pid)
        child.terminate()
        deadline = time.monotonic() + 10
        while child.poll() is None and time.monotonic() < deadline:  # ended, but not yet waited for: a zombie
            time.sleep(0.05)
        if Path("/proc").is_dir():
            assert not service.process_running(child.pid), "an ended, unreaped child counts as ended"
    finally:
        child.kill()
        child.wait(10)
    assert not service.process_running(child.pid)
    assert not service.process_running(0) and not service.process_running(-1)


def test_the_command_is_this_environments_geoguess():
    command = service.geoguess_command()
    assert Path(command[0]).parent == Path(sys.executable).parent
    done = subprocess.run([*command, "serve", "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "--models" in done.stdout


# ----------------------------------------------------------------------------- a real server
@pytest.mark.slow
def test_a_with_block_serves_and_leaves_no_process(tmp_path, checkpoint):
    models = models_folder(tmp_path, checkpoint)
    with service.Service(models, ["--preload"], env=env_with_repo()) as server:
        pid = server.pid
        assert server.running and service.process_running(pid)
        assert server.url.startswith("http://127.0.0.1:")
        assert server.command[server.command.index("--models") + 1] == str(models)
        assert httpx.get(f"{server.url}/health", timeout=10).json()["models"] == 1
        listed = httpx.get(f"{server.url}/models", timeout=10).json()["models"]
        assert [entry["name"] for entry in listed] == ["tiny"]
        assert "running" in repr(server)
    assert not server.running and server.returncode is not None
    assert gone(pid), f"server PID {pid} is still running after the with block"
    assert server.stop() == server.returncode  # a second stop does nothing
    assert models.is_dir(), "the models folder is the caller's: kept"
    assert "stopped" in repr(server)


@pytest.mark.slow
def test_an_exception_inside_the_block_still_stops_the_server(tmp_path, checkpoint):
    models = models_folder(tmp_path, checkpoint)
    pids = []
    with (
        pytest.raises(RuntimeError, match="a later cell failed"),
        service.Service(models, env=env_with_repo(), remove_models_dir=True) as server,
    ):
        pids.append(server.pid)
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200
        raise RuntimeError("a later cell failed")
    assert pids and gone(pids[0]), f"server PID {pids[0]} outlived the exception"
    assert not models.exists(), "remove_models_dir: the folder goes with the server"


@pytest.mark.slow
def test_a_forgotten_server_stops_when_its_object_is_collected(tmp_path, checkpoint):
    server = service.Service(models_folder(tmp_path, checkpoint), env=env_with_repo())
    pid = server.pid
    assert service.process_running(pid)
    del server
    gc.collect()
    assert gone(pid), f"server PID {pid} outlived its Service object"


@pytest.mark.slow
def test_a_forgotten_server_stops_when_python_exits(tmp_path, checkpoint):
    """The notebook's kernel ending normally without the last cell: the finalizer runs at exit."""
    models = models_folder(tmp_path, checkpoint)
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from geoguess_utils.course import service
        server = service.Service({str(models)!r})
        Path({str(pid_file)!r}).write_text(str(server.pid))
        """
    )  # the module ends with the server still running and referenced: only the exit can stop it
    done = subprocess.run(
        [sys.executable, "-c", script], env=env_with_repo(), capture_output=True, text=True, timeout=400, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pid = int(pid_file.read_text())
    assert gone(pid), f"server PID {pid} outlived the Python process that started it"


@pytest.mark.slow
def test_a_server_that_cannot_start_raises_and_leaves_nothing(tmp_path):
    models = tmp_path / "empty"
    models.mkdir()
    (models / "notes.txt").write_text("no checkpoint here\n")
    before = set(os.listdir(tmp_path))
    with pytest.raises(GeoguessError, match=r"(?s)exited with status 2.*unrecognized"):  # an unknown option
        service.Service(models, ["--port-typo"], env=env_with_repo(), timeout_s=120, remove_models_dir=True)
    assert not models.exists()
    assert set(os.listdir(tmp_path)) == before - {"empty"}


# ----------------------------------------------------------------------------- drawing an answer (no server)
def _square(lon: float, lat: float, side: float = 0.3) -> dict:
    ring = [[lon, lat], [lon + side, lat], [lon + side, lat + side], [lon, lat + side], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _cell(cell_id: int, index: int, probability: float, lon: float, lat: float) -> dict:
    point = {"latitude": lat + 0.15, "longitude": lon + 0.15}
    return {"cell_id": cell_id, "class_index": index, "probability": probability, **point, "polygon": _square(lon, lat)}


ANSWER = {
    "uuid": "upload",
    "latitude": 45.3,
    "longitude": 15.9,
    "top_cells": [_cell(7, 2, 0.6, 15.8, 45.2), _cell(9, 4, 0.1, 16.4, 43.5)],
    "views_used": 4,
}
REGION = {
    "coverage": 0.9,
    "area_km2": 1234.0,
    "geojson": {"type": "Feature", "geometry": _square(15.5, 45.0, 0.9), "properties": {"coverage": 0.9}},
}


def test_the_answer_map_draws_cells_points_and_region_offline():
    from geoguess_utils.viz.webmap import map_html

    page = map_html(service.answer_map(ANSWER, truth=(45.0, 16.2), region=REGION, names={2: "near Karlovac"}))
    assert "#1 cell 7: 60.0%, near Karlovac" in page
    assert "#2 cell 9: 10.0%" in page
    assert "search region, 90%, 1,234 km²" in page
    assert "truth" in page and "prediction" in page
    assert "<script src=" not in page, "Leaflet is embedded: the page fetches nothing"
    assert "top 2 cells" in page
    plain = map_html(service.answer_map({"latitude": 44.0, "longitude": 16.0}))  # a regressor: a point, no cells
    assert "prediction" in plain and "#1 cell" not in plain and "top 0 cells" not in plain
    assert "search region" not in plain


def test_the_answer_figure_has_a_patch_per_cell_and_the_region():
    fig = service.plot_answer(ANSWER, truth=(45.0, 16.2), region=REGION, title="one answer")
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.texts]
    assert labels == ["1", "2"]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "search region" in legend and "truth" in legend and "prediction" in legend
    assert ax.get_title() == "one answer"
    assert np.isclose(ax.collections[-1].get_offsets()[0], [15.9, 45.3]).all()  # the prediction, drawn last
    matplotlib.pyplot.close(fig)
