"""Cell schemes: the registry, the square scheme against the seed's recipe, a scheme added from outside."""

import re

import numpy as np
import pandas as pd
import pytest
import shapely
import torch

from geoguess_utils import evaluation
from geoguess_utils.cells import frame as cell_frames
from geoguess_utils.cells import scheme as schemes
from geoguess_utils.cells import square
from geoguess_utils.cells.context import CONTEXT_FORMAT, GeoContext
from geoguess_utils.cells.scheme import CellScheme, get_scheme, list_schemes, register_scheme
from geoguess_utils.checkpoints.record import describe_context_difference
from geoguess_utils.errors import CheckpointError, ConfigError, DataError
from geoguess_utils.geo import borders, distance, projection
from geoguess_utils.viz import webmap

SPLIT_LON = 16.5


@register_scheme("halves")
class Halves(CellScheme):
    """Two cells: Croatia west and east of a meridian (registered here, outside the package)."""

    def __init__(self, split_lon: float = SPLIT_LON) -> None:
        super().__init__()
        self.split_lon = float(split_lon)

    def params(self) -> dict[str, float]:
        return {"split_lon": self.split_lon}

    def build_cells(self, train_lat, train_lon, variant):
        land = borders.croatia(variant)
        lon0, lat0, lon1, lat1 = land.bounds
        west = shapely.intersection(shapely.box(lon0 - 1, lat0 - 1, self.split_lon, lat1 + 1), land)
        east = shapely.intersection(shapely.box(self.split_lon, lat0 - 1, lon1 + 1, lat1 + 1), land)
        return np.array([west, east], dtype=object), np.array([10, 20])


def _predictions(lat, lon, shift=0.1):
    table = pd.DataFrame(
        {"uuid": [f"p{i}" for i in range(len(lat))], "true_lat": lat, "true_lon": lon, "pred_lat": lat + shift}
    )
    table["pred_lon"] = lon
    table["error_km"] = distance.haversine_km(table.true_lat, table.true_lon, table.pred_lat, table.pred_lon)
    return table


def _cell_features(fmap):
    """The GeoJSON features of the web map's cell layers (those carrying a class index)."""
    import folium

    found, stack = [], [fmap]
    while stack:
        node = stack.pop()
        stack.extend(node._children.values())
        if isinstance(node, folium.GeoJson) and isinstance(node.data, dict):
            found.extend(f for f in node.data.get("features", []) if "class_index" in f.get("properties", {}))
    return found


def _no_ids(page):
    return re.sub(r"[0-9a-f]{32}", "ID", page)


@pytest.fixture(scope="module")
def halves_context(croatia_points):
    lat, lon = croatia_points
    return GeoContext.fit(lat[:600], lon[:600], scheme="halves")


# ----------------------------------------------------------------------------- registry


def test_registry_lists_and_finds_schemes():
    assert {"square", "halves"} <= set(list_schemes())
    assert get_scheme("square") is square.SquareScheme and get_scheme("halves") is Halves
    with pytest.raises(ConfigError, match=r"unknown cell scheme 'hexagons'.*square"):
        get_scheme("hexagons")


def test_registry_refuses_taken_names_and_foreign_classes():
    with pytest.raises(ConfigError, match="already taken"):

        @register_scheme("square")
        class OtherSquares(CellScheme):
            pass

    with pytest.raises(ConfigError, match="not a CellScheme"):
        register_scheme("plain")(dict)
    with pytest.raises(ConfigError, match="non-empty name"):
        register_scheme("  ")
    assert get_scheme("square") is square.SquareScheme


# ----------------------------------------------------------------------------- the square scheme


@pytest.mark.parametrize(("spacing", "variant"), [(0.3, "mainland"), (0.5, "full")])
def test_square_scheme_reproduces_the_seed_class_table(croatia_points, spacing, variant):
    lat, lon = croatia_points
    ctx = GeoContext.fit(lat[:700], lon[:700], spacing_deg=spacing, variant=variant)
    old = square.fit_class_table(square.build_grid(spacing, variant), lat[:700], lon[:700], variant=variant)
    pd.testing.assert_frame_equal(ctx.class_table, old, check_exact=True)
    assert ctx.scheme_name == "square" and ctx.spacing_deg == spacing

    # every point, on grid lines and far outside too, gets the class the seed gave it
    grid_lon = old.lon_min.to_numpy()[:40]
    grid_lat = old.lat_min.to_numpy()[:40]
    probe_lat = np.r_[lat, grid_lat, grid_lat + 0.01, old.lat_max.to_numpy()[:40], [45.0, 40.0, 47.5]]
    probe_lon = np.r_[lon, grid_lon, grid_lon, old.lon_max.to_numpy()[:40], [25.0, 16.0, 13.0]]
    want = square.assign_classes(old, probe_lat, probe_lon)
    np.testing.assert_array_equal(ctx.assign(probe_lat, probe_lon), want)

    again = GeoContext.from_dict(torch_round_trip(ctx.to_dict()))
    pd.testing.assert_frame_equal(again.class_table, old, check_exact=True)
    np.testing.assert_array_equal(again.assign(probe_lat, probe_lon), want)
    # the cells frame places points as the scheme does, grid lines included
    np.testing.assert_array_equal(cell_frames.assign_to_cells(again.cells_frame(), probe_lat, probe_lon), want)


def torch_round_trip(data):
    import io

    buffer = io.BytesIO()
    torch.save({"ctx": data}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)["ctx"]


def test_cells_frame_and_polygons_are_in_class_order(croatia_points):
    lat, lon = croatia_points
    ctx = GeoContext.fit(lat[:500], lon[:500], spacing_deg=0.4)
    cells = ctx.cells_frame()
    assert list(cells.columns[: len(ctx.class_table.columns)]) == list(ctx.class_table.columns)
    assert str(cells.crs) == "EPSG:4326" and cells.attrs["cell_scheme"] == {
        "name": "square",
        "params": {"spacing_deg": 0.4},
    }
    polygons = ctx.cell_polygons()
    assert len(polygons) == ctx.num_classes
    boxes = shapely.box(
        ctx.class_table.lon_min, ctx.class_table.lat_min, ctx.class_table.lon_max, ctx.class_table.lat_max
    )
    assert shapely.equals(polygons, boxes).all() and shapely.equals(cells.geometry.to_numpy(), boxes).all()
    # every training point lies in the polygon of its class
    classes = ctx.assign(lat[:500], lon[:500])
    assert shapely.covers(polygons[classes], shapely.points(lon[:500], lat[:500])).all()


def test_format_1_context_is_converted_on_read(croatia_points):
    lat, lon = croatia_points
    table = square.fit_class_table(square.build_grid(0.5), lat[:400], lon[:400])
    x, y = projection.to_projected(lat[:400], lon[:400])
    scaler = projection.MinMaxScaler.fit(x, y)
    columns = {}
    for name in square.CLASS_TABLE_COLUMNS:
        values = table[name].to_numpy()
        columns[name] = [int(v) for v in values] if values.dtype.kind in "iu" else [float(v) for v in values]
    old = {
        "format": 1,
        "crs": projection.DEFAULT_CRS,
        "spacing_deg": 0.5,
        "variant": "mainland",
        "centroid": "clipped",
        "scaler": scaler.to_dict(),
        "class_table": columns,
    }
    ctx = GeoContext.from_dict(torch_round_trip(old))
    pd.testing.assert_frame_equal(ctx.class_table, table, check_exact=True)
    np.testing.assert_array_equal(ctx.assign(lat, lon), square.assign_classes(table, lat, lon))
    np.testing.assert_array_equal(ctx.centroids_latlon(), table[["clipped_lat", "clipped_lon"]].to_numpy())
    assert ctx.scheme_name == "square" and ctx.spacing_deg == 0.5 and ctx.scaler == scaler
    assert ctx.to_dict()["format"] == CONTEXT_FORMAT == 2
    assert ctx.fingerprint() == GeoContext.fit(lat[:400], lon[:400], spacing_deg=0.5, centroid="clipped").fingerprint()

    broken = {**old, "class_table": {k: v for k, v in columns.items() if k != "lat_max"}}
    with pytest.raises(ConfigError, match="lat_max"):
        GeoContext.from_dict(broken)


def test_stored_cells_that_do_not_match_are_refused(croatia_points):
    lat, lon = croatia_points
    ctx = GeoContext.fit(lat[:400], lon[:400], spacing_deg=0.5)
    data = ctx.to_dict()
    short = {**data, "class_table": {k: v[:-1] for k, v in data["class_table"].items()}}
    with pytest.raises(ConfigError, match="rows but the square scheme holds"):
        GeoContext.from_dict(short)
    renamed = {**data, "scheme": {**data["scheme"], "name": "hexagons"}}
    with pytest.raises(ConfigError, match="unknown cell scheme 'hexagons'"):
        GeoContext.from_dict(renamed)
    triangle = {"type": "Polygon", "coordinates": [[[15.0, 45.0], [16.0, 45.0], [15.0, 46.0], [15.0, 45.0]]]}
    skewed = {**data, "scheme": {**data["scheme"], "cells": [triangle, *data["scheme"]["cells"][1:]]}}
    with pytest.raises(ConfigError, match="not axis-aligned boxes"):
        GeoContext.from_dict(skewed)
    bad_params = {**data, "scheme": {**data["scheme"], "params": {"side": 0.5}}}
    with pytest.raises(ConfigError, match="bad parameters"):
        GeoContext.from_dict(bad_params)


def test_square_outputs_are_the_same_from_the_cells_frame_and_the_class_table(croatia_points):
    lat, lon = croatia_points
    ctx = GeoContext.fit(lat[:500], lon[:500], spacing_deg=0.5)
    preds = _predictions(lat[500:], lon[500:])
    probs = np.random.default_rng(0).dirichlet(np.ones(ctx.num_classes), size=len(preds))
    pages = [
        _no_ids(webmap.map_html(webmap.build_map(preds, table, probs, thumbnails=False)))
        for table in (ctx.class_table, ctx.cells_frame())
    ]
    assert pages[0] == pages[1]
    by_table = evaluation.per_cell_errors(evaluation.Predictions(preds, None, "regression", ctx.class_table))
    by_cells = evaluation.per_cell_errors(evaluation.Predictions(preds, None, "regression", ctx.cells_frame()))
    pd.testing.assert_frame_equal(by_table, by_cells, check_exact=True)
    np.testing.assert_array_equal(by_cells[["lon_min", "lat_max"]], ctx.class_table[["lon_min", "lat_max"]])
    classes = ctx.assign(preds.true_lat, preds.true_lon)
    assert by_cells["n"].tolist() == np.bincount(classes, minlength=ctx.num_classes).tolist()


def test_context_differences_name_the_scheme_and_its_parameters(croatia_points, halves_context):
    lat, lon = croatia_points
    coarse = GeoContext.fit(lat[:600], lon[:600], spacing_deg=0.5)
    fine = GeoContext.fit(lat[:600], lon[:600], spacing_deg=0.3)
    assert "square spacing_deg 0.5 vs 0.3" in describe_context_difference(coarse, fine)
    assert "cell scheme 'square' vs 'halves'" in describe_context_difference(coarse, halves_context)
    data = coarse.to_dict()
    data["class_table"]["clipped_lat"][0] += 0.01
    assert "class points" in describe_context_difference(coarse, GeoContext.from_dict(data))
    moved = GeoContext.fit(lat[:600], lon[:600], scheme=Halves(split_lon=17.0))
    assert "halves split_lon 16.5 vs 17.0" in describe_context_difference(halves_context, moved)


# ----------------------------------------------------------------------------- a scheme added from outside


def test_toy_scheme_fits_assigns_and_gives_class_points(croatia_points, halves_context):
    lat, lon = croatia_points
    ctx = halves_context
    assert ctx.scheme_name == "halves" and ctx.spacing_deg is None and ctx.num_classes == 2
    assert ctx.class_table["cell_id"].tolist() == [10, 20]
    assert list(ctx.class_table.columns) == list(schemes.CLASS_COLUMNS)
    classes = ctx.assign(lat, lon)
    np.testing.assert_array_equal(classes, (lon >= SPLIT_LON).astype(np.int64))
    assert ctx.class_table["n_train"].tolist() == np.bincount(classes[:600]).tolist()
    # on the meridian: the east cell; at sea off Istria and in Hungary: the nearest cell
    assert ctx.assign([45.5, 44.6, 46.5], [SPLIT_LON, 13.3, 17.6]).tolist() == [1, 0, 1]
    for k in (0, 1):
        x, y = projection.to_projected(lat[:600][classes[:600] == k], lon[:600][classes[:600] == k])
        want = projection.to_latlon(x.mean(), y.mean())
        np.testing.assert_allclose(ctx.centroids_latlon("weighted")[k], np.ravel(want), atol=1e-9)
    assert borders.is_on_land(*ctx.centroids_latlon("clipped").T, "mainland").all()
    # the cells follow Croatia's outline, so they are not boxes
    assert not shapely.equals(ctx.cell_polygons(), shapely.envelope(ctx.cell_polygons())).any()


def test_toy_scheme_round_trips_through_a_weights_only_checkpoint(croatia_points, halves_context):
    lat, lon = croatia_points
    data = halves_context.to_dict()
    assert data["scheme"]["name"] == "halves" and data["scheme"]["params"] == {"split_lon": SPLIT_LON}
    again = GeoContext.from_dict(torch_round_trip(data))
    assert isinstance(again.scheme, Halves) and again.scheme.split_lon == SPLIT_LON
    assert again.fingerprint() == halves_context.fingerprint()
    assert shapely.equals_exact(again.cell_polygons(), halves_context.cell_polygons(), tolerance=0).all()
    np.testing.assert_array_equal(again.assign(lat, lon), halves_context.assign(lat, lon))
    np.testing.assert_array_equal(again.centroids_latlon(), halves_context.centroids_latlon())


def test_a_scheme_instance_sets_its_own_parameters_and_is_not_changed(croatia_points):
    lat, lon = croatia_points
    given = Halves(split_lon=17.0)
    ctx = GeoContext.fit(lat[:600], lon[:600], scheme=given)
    assert not given.is_fitted and ctx.scheme.split_lon == 17.0
    np.testing.assert_array_equal(ctx.assign(lat, lon), (lon >= 17.0).astype(np.int64))
    with pytest.raises(ConfigError, match="not fitted"):
        given.assign([45.0], [16.0])


def test_web_map_draws_the_toy_cells(croatia_points, halves_context, tmp_path):
    lat, lon = croatia_points
    preds = _predictions(lat[600:700], lon[600:700])
    probs = np.tile([0.25, 0.75], (len(preds), 1))
    cells = halves_context.cells_frame()
    fmap = webmap.build_map(preds, cells, probs, thumbnails=False)
    features = _cell_features(fmap)
    assert len(features) == 4  # two cells in the error layer, two in the probability layer
    for feature in features:
        k = feature["properties"]["class_index"]
        assert shapely.equals(shapely.geometry.shape(feature["geometry"]), halves_context.cell_polygons()[k])
    per_cell = webmap.cell_errors(cells, preds)
    east = lon[600:700] >= SPLIT_LON
    assert per_cell["n"].tolist() == [int((~east).sum()), int(east.sum())]
    assert per_cell["mean_error_km"][1] == pytest.approx(preds["error_km"][east].mean())
    saved = webmap.save_map(fmap, tmp_path / "halves.html")
    assert "0.750" in saved.read_text(encoding="utf-8")


def test_per_cell_errors_and_figures_take_the_toy_cells(croatia_points, halves_context):
    import matplotlib.pyplot as plt

    from geoguess_utils.viz import cell_maps, error_plots

    lat, lon = croatia_points
    preds = evaluation.Predictions(_predictions(lat[600:], lon[600:]), None, "regression", halves_context.cells_frame())
    per_cell = evaluation.per_cell_errors(preds)
    assert per_cell["cell_id"].tolist() == [10, 20] and per_cell["n"].sum() == 400
    bounds = shapely.bounds(halves_context.cell_polygons())
    np.testing.assert_array_equal(per_cell[["lon_min", "lat_min", "lon_max", "lat_max"]].to_numpy(), bounds)
    figures = [
        error_plots.plot_cell_errors({"toy": per_cell}),
        cell_maps.plot_centroid_kinds(halves_context.cells_frame(), lat[:600], lon[:600]),
    ]
    for fig in figures:
        assert fig.axes
        plt.close(fig)


def test_cells_frame_input_errors_name_what_is_missing():
    with pytest.raises(DataError, match=r"geometry.*lon_min"):
        cell_frames.as_cells_frame(pd.DataFrame({"class_index": [0], "lon_min": [15.0]}))
    with pytest.raises(DataError, match="class_index"):
        cell_frames.as_cells_frame(pd.DataFrame({"geometry": [shapely.box(15, 45, 16, 46)]}))
    with pytest.raises(DataError, match="repeats"):
        cell_frames.as_cells_frame(pd.DataFrame({"class_index": [0, 0], "geometry": [shapely.box(15, 45, 16, 46)] * 2}))
    with pytest.raises(DataError, match=r"classes \[1\]"):
        cell_frames.as_cells_frame(
            pd.DataFrame({"class_index": [0, 1], "geometry": [shapely.box(15, 45, 16, 46), None]})
        )
    with pytest.raises(DataError, match="non-finite"):
        cell_frames.assign_to_cells(
            pd.DataFrame({"class_index": [0], "geometry": [shapely.box(15, 45, 16, 46)]}), [np.nan], [15.5]
        )


def test_datamodule_passes_the_scheme_name(tmp_path):
    from _lumen_fixtures import write_lumen_root

    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.data.settings import CacheSettings, CellSettings

    root = write_lumen_root(tmp_path / "root", 16, image_size=32, seed=3).root
    common = {"image_size": 16, "batch_size": 4, "run_dir": str(tmp_path / "run")}
    module = GeoDataModule(
        roots=[str(root)], cells=CellSettings(scheme="halves"), cache=CacheSettings(dir=str(tmp_path / "c")), **common
    )
    module.setup("fit")
    assert module.context.scheme_name == "halves"
    assert set(module.locations["class_index"]) <= {0, 1}
    with pytest.raises(ConfigError, match="unknown cell scheme 'hexagons'"):
        GeoDataModule(roots=[str(root)], cells=CellSettings(scheme="hexagons"), **common)


def test_a_checkpoint_with_a_format_1_context_still_loads(croatia_points, tmp_path):
    from _reliability_helpers import tiny_task, write_checkpoint

    from geoguess_utils.cells.context import dict_fingerprint
    from geoguess_utils.checkpoints.files import load_checkpoint
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.tasks.loading import load_task

    lat, lon = croatia_points
    ctx = GeoContext.fit(lat[:300], lon[:300], spacing_deg=0.5)
    path = write_checkpoint(tiny_task(ClassificationTask, ctx), tmp_path / "new.ckpt")
    saved = load_checkpoint(path)
    table = ctx.class_table
    old = {
        "format": 1,
        "crs": ctx.crs,
        "spacing_deg": 0.5,
        "variant": ctx.variant,
        "centroid": ctx.centroid,
        "scaler": ctx.scaler.to_dict(),
        "class_table": {
            name: [int(v) for v in table[name]] if table[name].dtype.kind in "iu" else [float(v) for v in table[name]]
            for name in square.CLASS_TABLE_COLUMNS
        },
    }
    saved["geoguess"]["context"] = old
    saved["geoguess"]["context_fingerprint"] = dict_fingerprint(old)
    torch.save(saved, tmp_path / "old.ckpt")
    task = load_task(tmp_path / "old.ckpt", context=ctx)
    assert task.context.fingerprint() == ctx.fingerprint()
    pd.testing.assert_frame_equal(task.context.class_table, table, check_exact=True)
    old["class_table"]["weighted_lat"][0] += 0.5  # an altered old file is still caught
    saved["geoguess"]["context"] = old
    torch.save(saved, tmp_path / "altered.ckpt")
    with pytest.raises(CheckpointError, match="does not match its fingerprint"):
        load_task(tmp_path / "altered.ckpt")
