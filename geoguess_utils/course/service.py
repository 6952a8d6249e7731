"""Notebook 07's plumbing: a ``geoguess serve`` process that is always stopped, and one answer on a map.

Notebook 07 runs the model as a service: ``geoguess serve`` in a process of its own, spoken
to over HTTP. A server started from a notebook must not outlive it, even when a cell
fails half-way, so :class:`Service` stops its process by its PID in every way a session can
end:

* explicitly, with :meth:`Service.stop` (the notebook's last cell);
* at the end of a ``with`` block, normally or through an exception;
* when the object is garbage-collected, and when the Python process exits normally
  (a :func:`weakref.finalize`, which registers itself with :mod:`atexit`).

A kernel killed outright (``SIGKILL``) runs none of these; Jupyter then kills the kernel's
process group, and the server, started without a session of its own, is in that group.

:func:`process_running` says whether a PID still names a live process (the notebook's last
cell and ``tests/test_course_service.py`` check that the server is gone).
:func:`answer_map` (folium) and :func:`plot_answer` (matplotlib) draw one answer of the
server: its most probable cells, the predicted point, the truth and the search region.
"""

from __future__ import annotations

import os
import shutil
import sys
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from geoguess_utils.serve.loadtest import Server, start_server, stop_server

if TYPE_CHECKING:
    import folium
    from matplotlib.figure import Figure

START_TIMEOUT_S = 180.0
"""Longest wait for a new server's ``/health``, seconds: importing torch and FastAPI and
reading the checkpoint take a few seconds on a quiet machine and far longer on a busy one."""

STOP_GRACE_S = 10.0
"""How long a server may take to shut down after ``SIGTERM`` before it is killed, seconds."""

CELL_COLOUR = "#6a3d9a"
POINT_COLOUR = "#00bcd4"
TRUTH_COLOUR = "#ffffff"
REGION_COLOUR = "#e65100"


def geoguess_command() -> list[str]:
    """The command that runs ``geoguess`` from this Python environment.

    Returns:
        ``[".../bin/geoguess"]``, the console script next to this interpreter, when it is
        there; otherwise ``[sys.executable, "-m", "geoguess_utils.cli"]``, which runs the
        same code.
    """
    folder = Path(sys.executable).parent
    for name in ("geoguess", "geoguess.exe"):
        script = folder / name
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
    return [sys.executable, "-m", "geoguess_utils.cli"]


def _shut_down(server: Server, folder: Path | None, grace_s: float) -> int:
    """Stop ``server`` by its PID (SIGTERM, then SIGKILL) and remove ``folder`` when given."""
    try:
        return stop_server(server, grace_s)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class Service:
    """``geoguess serve`` on 127.0.0.1 and a free port, running until it is stopped.

    The constructor returns once ``GET /health`` answers. The process is stopped by its PID
    by :meth:`stop`, at the end of a ``with`` block (an exception inside it included), when
    the object is collected, or when Python exits (see the module's description).

    Args:
        models_dir: The ``--models`` folder: the ``*.ckpt`` files directly inside it are
            the models served (a link leading out of it is refused by the server).
        options: More ``geoguess serve`` options, e.g. ``["--preload"]``.
        timeout_s: Longest wait for ``/health``, seconds.
        env: Environment of the process (default: this process's).
        remove_models_dir: Delete ``models_dir`` once the server has stopped (for a
            temporary folder made for it).
        grace_s: Seconds between ``SIGTERM`` and ``SIGKILL`` when stopping.

    Raises:
        GeoguessError: The server exited or did not answer in time; the message quotes the
            end of its output. The process is stopped (and the folder removed, when asked)
            before this is raised.

    Example:
        >>> with Service(models) as server:  # doctest: +SKIP
        ...     httpx.get(f"{server.url}/models").json()
    """

    def __init__(
        self,
        models_dir: str | os.PathLike[str],
        options: Sequence[str] = (),
        timeout_s: float = START_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
        remove_models_dir: bool = False,
        grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.models_dir = Path(models_dir)
        owned = self.models_dir if remove_models_dir else None
        try:
            server = start_server(
                self.models_dir, list(options), timeout_s, None if env is None else dict(env), geoguess_command()
            )
        except BaseException:
            if owned is not None:
                shutil.rmtree(owned, ignore_errors=True)
            raise
        self._server = server
        self._stop = weakref.finalize(self, _shut_down, server, owned, grace_s)

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``"http://127.0.0.1:43817"``."""
        return self._server.url

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self._server.pid

    @property
    def command(self) -> list[str]:
        """The command line the process was started with."""
        return [str(part) for part in self._server.process.args]

    @property
    def running(self) -> bool:
        """Whether the process has not ended yet."""
        return self._server.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The process's exit status once it has ended (negative: the signal that ended it), else ``None``."""
        return self._server.process.poll()

    def output(self, chars: int = 4000) -> str:
        """The last ``chars`` characters the server printed (its log, warnings and errors)."""
        return self._server.output(chars)

    def stop(self) -> int | None:
        """Stop the server by its PID and wait for it; calling it again does nothing.

        Returns:
            The process's exit status.
        """
        if self._stop.alive:
            self._stop()
        return self.returncode

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"stopped (exit status {self.returncode})"
        return f"<geoguess serve at {self.url}, PID {self.pid}, {state}>"


def process_running(pid: int) -> bool:
    """Whether ``pid`` names a process that is still running.

    A process that has ended but was not yet waited for (a zombie) counts as ended. A
    :class:`Service` waits for its process when it stops it, so afterwards its PID names
    no process at all (until the system gives the number to a new one).

    Args:
        pid: A process id.

    Returns:
        ``False`` when no such process exists or it is a zombie; ``True`` otherwise.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to someone else
        return True
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1] != "Z"
    except (OSError, IndexError):  # no /proc (macOS), or the process ended just now
        pass
    return True


# ----------------------------------------------------------------------------- drawing one answer


def _cell_label(cell: Mapping[str, Any], rank: int, names: Mapping[int, str] | None) -> str:
    name = (names or {}).get(int(cell["class_index"]))
    where = f", {name}" if name else ""
    return f"#{rank} cell {cell['cell_id']}: {cell['probability']:.1%}{where}"


def _region_geometry(region: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The GeoJSON geometry of a search region (``{"geojson": Feature}`` or a bare Feature), or ``None``."""
    if not region:
        return None
    feature = region.get("geojson", region)
    geometry = feature.get("geometry") if isinstance(feature, Mapping) else None
    return dict(geometry) if geometry else None


def answer_map(
    answer: Mapping[str, Any],
    truth: Sequence[float] | None = None,
    region: Mapping[str, Any] | None = None,
    names: Mapping[int, str] | None = None,
    title: str = "",
) -> folium.Map:
    """One answer of ``POST /models/{name}/predict`` on an interactive map that works offline.

    Args:
        answer: The answer's JSON: ``latitude``, ``longitude`` and, for a classifier,
            ``top_cells`` (each with ``cell_id``, ``class_index``, ``probability`` and a
            GeoJSON ``polygon``).
        truth: The true ``(latitude, longitude)``, degrees, when known.
        region: A search region (``{"coverage", "area_km2", "geojson": Feature}``, as the
            server or :meth:`geoguess_utils.tasks.regions.SearchRegions.region` gives it).
        names: Cell names by class index (the ``name`` of ``GET /models/{name}/cells``).
        title: Shown in the map's layer names.

    Returns:
        A ``folium.Map``: Croatia and its neighbours drawn from the package's borders
        (Leaflet embedded, no tiles), the top cells shaded by probability (darker is more
        probable; hover for the numbers), the region's outline, the predicted point
        (cyan) and the truth (white), joined by a line.
    """
    import folium
    from branca.element import Element

    from geoguess_utils.geo import borders, distance
    from geoguess_utils.viz.webmap import LAND_COLOUR, NEIGHBOUR_COLOUR, SEA_COLOUR, surrounding_land
    from geoguess_utils.viz.webmap_html import embed_assets

    lon0, lat0, lon1, lat1 = borders.croatia_bounds("full")
    fmap = folium.Map(location=[(lat0 + lat1) / 2, (lon0 + lon1) / 2], zoom_start=7, tiles=None, control_scale=True)
    embed_assets(fmap)
    style = f"<style>.leaflet-container{{background:{SEA_COLOUR}}}</style>"
    fmap.get_root().header.add_child(Element(style), name="sea_background")
    land = folium.FeatureGroup(name="Land (drawn offline)")
    for shape, fill, edge in (
        (surrounding_land(), NEIGHBOUR_COLOUR, "#b8b8b8"),
        (borders.croatia("full").simplify(0.003, preserve_topology=True), LAND_COLOUR, "#555555"),
    ):
        look = {"fillColor": fill, "fillOpacity": 1.0, "color": edge, "weight": 0.8}
        folium.GeoJson(shape.__geo_interface__, style_function=lambda _, look=look: look, interactive=False).add_to(
            land
        )
    land.add_to(fmap)

    cells = list(answer.get("top_cells") or [])
    if cells:
        layer = folium.FeatureGroup(name=f"{title} top {len(cells)} cells".strip())
        top = max(float(cell["probability"]) for cell in cells) or 1.0
        for rank, cell in enumerate(cells, start=1):
            shade = 0.15 + 0.6 * float(cell["probability"]) / top
            look = {"fillColor": CELL_COLOUR, "fillOpacity": shade, "color": CELL_COLOUR, "weight": 1}
            folium.GeoJson(
                {"type": "Feature", "geometry": cell["polygon"], "properties": {}},
                style_function=lambda _, look=look: look,
                tooltip=_cell_label(cell, rank, names),
            ).add_to(layer)
        layer.add_to(fmap)
    geometry = _region_geometry(region)
    if geometry is not None:
        assert region is not None
        area = region.get("area_km2")
        label = f"search region, {float(region.get('coverage', 0)):.0%}" + (f", {area:,.0f} km²" if area else "")
        look = {"fill": False, "color": REGION_COLOUR, "weight": 2.5, "dashArray": "6 4"}
        folium.GeoJson(
            {"type": "Feature", "geometry": geometry, "properties": {}},
            style_function=lambda _: look,
            tooltip=label,
            name=label,
        ).add_to(fmap)

    point = [float(answer["latitude"]), float(answer["longitude"])]
    marks = folium.FeatureGroup(name="prediction and truth")
    if truth is not None:
        true_point = [float(truth[0]), float(truth[1])]
        km = float(distance.haversine_km(*true_point, *point))
        folium.PolyLine([true_point, point], color="#333333", weight=2, tooltip=f"{km:.1f} km").add_to(marks)
        folium.CircleMarker(
            true_point, radius=6, color="#000000", fill=True, fill_color=TRUTH_COLOUR, fill_opacity=1.0, tooltip="truth"
        ).add_to(marks)
    folium.CircleMarker(
        point, radius=6, color="#004d57", fill=True, fill_color=POINT_COLOUR, fill_opacity=1.0, tooltip="prediction"
    ).add_to(marks)
    marks.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    fmap.fit_bounds([[lat0, lon0], [lat1, lon1]])
    return fmap


def plot_answer(
    answer: Mapping[str, Any],
    truth: Sequence[float] | None = None,
    region: Mapping[str, Any] | None = None,
    title: str = "",
) -> Figure:
    """The same answer as :func:`answer_map`, as a static figure to save.

    Args:
        answer: The answer's JSON (see :func:`answer_map`).
        truth: The true ``(latitude, longitude)``, degrees, when known.
        region: A search region, when there is one.
        title: Title of the axes.

    Returns:
        A matplotlib figure: Croatia, the top cells shaded by probability and numbered by
        rank, the region's outline, the predicted point and the truth.
    """
    import shapely.geometry

    from geoguess_utils.viz import basemap

    fig, ax = basemap.new_axes(figsize=(7.0, 6.5))
    basemap.draw_croatia(ax)
    cells = list(answer.get("top_cells") or [])
    top = max((float(cell["probability"]) for cell in cells), default=1.0) or 1.0
    for rank, cell in enumerate(cells, start=1):
        shape = shapely.geometry.shape(cell["polygon"])
        shade = 0.15 + 0.6 * float(cell["probability"]) / top
        for part in getattr(shape, "geoms", [shape]):
            x, y = part.exterior.xy
            ax.fill(x, y, color=CELL_COLOUR, alpha=shade, linewidth=0.8, edgecolor=CELL_COLOUR)
        centre = shape.representative_point()
        ax.annotate(f"{rank}", (centre.x, centre.y), ha="center", va="center", fontsize=8, color="white")
    geometry = _region_geometry(region)
    if geometry is not None:
        shape = shapely.geometry.shape(geometry)
        for part in getattr(shape, "geoms", [shape]):
            x, y = part.exterior.xy
            ax.plot(x, y, color=REGION_COLOUR, linewidth=1.8, linestyle="--")
        ax.plot([], [], color=REGION_COLOUR, linestyle="--", label="search region")
    lat, lon = float(answer["latitude"]), float(answer["longitude"])
    if truth is not None:
        ax.plot([truth[1], lon], [truth[0], lat], color="#333333", linewidth=1.2)
        ax.scatter([truth[1]], [truth[0]], s=60, color=TRUTH_COLOUR, edgecolor="black", zorder=5, label="truth")
    ax.scatter([lon], [lat], s=60, color=POINT_COLOUR, edgecolor="#004d57", zorder=6, label="prediction")
    if cells:
        ax.fill([], [], color=CELL_COLOUR, alpha=0.5, label=f"top {len(cells)} cells (darker: more probable)")
    ax.legend(loc="lower left", fontsize=8)
    basemap.equal_km_axes(ax)
    ax.set_title(title)
    return fig
