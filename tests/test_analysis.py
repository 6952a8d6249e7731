import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from geoguess_utils.cells import square
from geoguess_utils.cells.context import CENTROID_KINDS
from geoguess_utils.course import analysis
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance

# Standard parallels of EPSG:3766 (HTRS96 / Croatia LCC): 45 deg 55' and 43 deg 05'.
LCC_PARALLELS = (45 + 55 / 60, 43 + 5 / 60)


@pytest.fixture(scope="module")
def pairs_table():
    pairs = analysis.sample_pairs(800, np.random.default_rng(3))
    return analysis.distance_table(pairs.lat1, pairs.lon1, pairs.lat2, pairs.lon2)


def test_pairs_lie_in_croatia():
    pairs = analysis.sample_pairs(50, np.random.default_rng(0))
    assert len(pairs) == 50
    assert borders.is_on_land(pairs.lat1, pairs.lon1, "mainland").all()
    assert borders.is_on_land(pairs.lat2, pairs.lon2, "mainland").all()
    with pytest.raises(ConfigError):
        analysis.sample_pairs(0, np.random.default_rng(0))


def test_geodesic_reference_matches_pyproj(pairs_table):
    _, _, dist_m = Geod(ellps="WGS84").inv(
        pairs_table.lon1.to_numpy(),
        pairs_table.lat1.to_numpy(),
        pairs_table.lon2.to_numpy(),
        pairs_table.lat2.to_numpy(),
    )
    np.testing.assert_allclose(pairs_table.geodesic_km, dist_m / 1000.0, rtol=1e-12)


def test_degrees_exaggerate_east_west_by_one_over_cos_latitude():
    # Two points one degree of longitude apart at 45 N: the degree method calls it a
    # full degree of a great circle, the truth is about cos(45 deg) of that.
    table = analysis.distance_table([45.0, 44.0], [15.0, 16.0], [45.0, 45.0], [16.0, 16.0])
    east_west, north_south = table.iloc[0], table.iloc[1]
    assert east_west.degrees_km == pytest.approx(analysis.KM_PER_DEGREE)
    assert east_west.degrees_rel_err == pytest.approx(1 / np.cos(np.radians(45.0)) - 1, abs=0.01)
    assert abs(north_south.degrees_rel_err) < 0.01
    assert abs(east_west.cosine_degrees_rel_err) < 0.01
    assert east_west.bearing_deg == pytest.approx(90.0, abs=1.0)
    assert north_south.bearing_deg == pytest.approx(0.0, abs=1e-6) or north_south.bearing_deg == pytest.approx(180.0)


def test_chord_is_shorter_than_the_arc(pairs_table):
    assert (pairs_table.chord_3d_km < pairs_table.haversine_km).all()


def test_distortion_ranking(pairs_table):
    summary = analysis.distortion_summary(pairs_table)
    assert summary.index[0] == "degrees"
    assert summary.index[-1] == "projected"
    assert summary.loc["degrees", "mean_abs_err_pct"] > 10
    assert summary.loc["haversine", "max_abs_err_pct"] < 0.5
    assert summary.loc["projected", "max_abs_err_pct"] < 0.1
    assert set(summary.index) == set(analysis.DISTANCE_METHODS)


def test_coinciding_points_have_no_relative_error():
    table = analysis.distance_table([45.0], [16.0], [45.0], [16.0])
    assert table.geodesic_km.iloc[0] == 0
    assert np.isnan(table.haversine_rel_err.iloc[0])


def test_bad_pairs_are_refused():
    with pytest.raises(DataError):
        analysis.distance_table([45.0, np.nan], [16.0, 16.0], [45.0, 45.0], [16.0, 16.0])
    with pytest.raises(DataError):
        analysis.distance_table([45.0], [16.0], [45.0, 44.0], [16.0, 16.0])


def test_scale_error_vanishes_on_the_standard_parallels():
    lat = np.array([*LCC_PARALLELS, 44.5, 46.4, 42.5])
    ppm = analysis.scale_error_ppm(lat, np.full(lat.size, 16.5))
    assert np.abs(ppm[:2]).max() < 1.0  # true scale on both standard parallels
    assert ppm[2] < -100  # squeezed between them
    assert ppm[3] > 0 and ppm[4] > 0  # stretched outside them


def test_scale_error_predicts_short_projected_distances():
    lat, lon = 45.8, 18.5
    table = analysis.distance_table([lat], [lon], [lat + 0.01], [lon + 0.01])
    ppm = analysis.scale_error_ppm([lat + 0.005], [lon + 0.005])[0]
    assert table.projected_rel_err.iloc[0] * 1e6 == pytest.approx(ppm, abs=2.0)
    with pytest.raises(ConfigError):
        analysis.scale_error_ppm([45.0], [16.0], "EPSG:4326")


def test_box_cells_number_cells_like_build_grid():
    box = square.box_cells(0.5)
    kept = square.build_grid(0.5)
    lon0, lat0, lon1, lat1 = borders.croatia_bounds("mainland")
    assert len(box) == int(np.ceil((lon1 - lon0) / 0.5)) * int(np.ceil((lat1 - lat0) / 0.5))
    merged = kept.merge(pd.DataFrame({"cell_id": box.cell_id, "box_geometry": box.geometry}), on="cell_id")
    assert len(merged) == len(kept)
    assert shapely.equals(merged.geometry.values, merged.box_geometry.values).all()
    with pytest.raises(ConfigError):
        square.box_cells(-1)


def test_grid_steps_shrink_step_by_step(croatia_points):
    lat, lon = croatia_points
    steps = analysis.grid_steps(lat[:300], lon[:300], 0.3)
    assert len(steps.box_cells) > len(steps.intersecting) >= len(steps.with_data) == len(steps.class_table)
    assert set(steps.with_data.cell_id) <= set(steps.intersecting.cell_id)
    assert steps.with_data.n_train.sum() == 300
    assert (steps.with_data.n_train > 0).all()


def test_cell_counts_agree_with_the_grid(croatia_points):
    lat, lon = croatia_points
    counts = analysis.cell_counts((0.7, 0.3), lat, lon)
    assert counts.n_cells.tolist() == [len(square.build_grid(0.7)), len(square.build_grid(0.3))]
    assert (counts.n_box_cells > counts.n_cells).all()
    assert (counts.n_cells >= counts.n_classes).all()
    assert counts.n_classes.iloc[1] > counts.n_classes.iloc[0]
    assert "n_classes" not in analysis.cell_counts((0.5,)).columns


def test_floor_kinds_are_the_context_kinds():
    assert set(analysis.FLOOR_KINDS) == set(CENTROID_KINDS)


def test_centroid_distances_by_hand(croatia_points):
    lat, lon = croatia_points
    table = square.fit_class_table(square.build_grid(0.5), lat, lon)
    dist = analysis.centroid_distances(table, lat[:5], lon[:5])
    for i in range(5):
        row = table[table.class_index == dist.class_index.iloc[i]].iloc[0]
        for kind in analysis.FLOOR_KINDS:
            expected = distance.haversine_km(lat[i], lon[i], row[f"{kind}_lat"], row[f"{kind}_lon"])
            assert dist[f"{kind}_km"].iloc[i] == pytest.approx(expected)


def test_error_floor_shrinks_with_finer_grids(croatia_points):
    lat, lon = croatia_points
    floor = analysis.error_floor(lat[:800], lon[:800], (0.7, 0.5, 0.3, 0.2), lat[800:], lon[800:])
    assert set(floor.points) == {"train", "held-out"}
    for _, part in floor.groupby("points"):
        for kind in analysis.FLOOR_KINDS:
            values = part.sort_values("spacing_deg", ascending=False)[f"{kind}_km"].to_numpy()
            assert (np.diff(values) < 0).all(), (kind, values)
    assert (floor[floor.points == "held-out"].n_points == 200).all()


def _road_points(n, rng):
    """Points bunched along a few east-west 'roads' across the mainland, as real car data is."""
    lat, lon = borders.sample_points(12 * n, rng)
    roads = np.array([45.15, 45.45, 45.85, 43.6, 44.1])
    near = np.abs(lat[:, None] - roads[None, :]).min(axis=1) < 0.03
    return lat[near][:n], lon[near][:n]


def test_weighted_centroids_beat_geometric_on_training_points():
    lat, lon = _road_points(600, np.random.default_rng(11))
    assert lat.size == 600
    floor = analysis.error_floor(lat, lon, (0.5, 0.3))
    for _, row in floor.iterrows():
        assert row.weighted_km < row.geometric_km
        assert row.weighted_km < row.clipped_km


def test_training_distances_stay_within_the_cell(croatia_points):
    lat, lon = croatia_points
    spacing = 0.4
    table = square.fit_class_table(square.build_grid(spacing), lat, lon)
    dist = analysis.centroid_distances(table, lat, lon)
    # A cell's geometric and weighted centroids lie inside the (convex) cell, so no
    # training point in the cell is further away than the cell's diagonal.
    diagonal_km = distance.haversine_km(42.3, 13.5, 42.3 + spacing, 13.5 + spacing)
    assert dist.geometric_km.max() <= diagonal_km
    assert dist.weighted_km.max() <= diagonal_km


# Figures drawn from these tables (geoguess_utils.maps).


def test_grid_progression_figure(croatia_points, tmp_path):
    from geoguess_utils.viz import basemap, cell_maps

    lat, lon = croatia_points
    steps = analysis.grid_steps(lat[:300], lon[:300], 0.4)
    fig = cell_maps.plot_grid_progression(steps, lat[:300], lon[:300])
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 5 and titles[0].startswith("1.") and titles[4].startswith("5.")
    assert str(len(steps.box_cells)) in titles[1]
    assert str(len(steps.intersecting)) in titles[2]
    assert str(len(steps.class_table)) in titles[4]
    aspect = 1 / np.cos(np.radians(44.5))
    assert all(ax.get_aspect() == pytest.approx(aspect) for ax in fig.axes)
    path = basemap.save_figure(fig, tmp_path / "progression.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_course_figures_draw_what_they_are_given(croatia_points, pairs_table):
    from geoguess_utils.viz import cell_maps, projection_maps

    lat, lon = croatia_points
    fig = projection_maps.plot_distance_errors(pairs_table)
    assert len(fig.axes) == 2
    ppm = analysis.scale_error_ppm(lat[:100], lon[:100])
    fig = projection_maps.plot_scale_error(lat[:100], lon[:100], ppm, "EPSG:3766")
    assert "EPSG:3766" in fig.axes[0].get_title()
    steps = [analysis.grid_steps(lat, lon, s) for s in (0.7, 0.3)]
    fig = cell_maps.plot_grid_spacings(steps)
    assert [ax.get_title() for ax in fig.axes] == [
        f"0.7 deg: {len(steps[0].class_table)} classes",
        f"0.3 deg: {len(steps[1].class_table)} classes",
    ]
    fig = cell_maps.plot_centroid_kinds(steps[1].class_table, lat, lon, bounds=(14.0, 44.3, 16.6, 45.7))
    assert fig.axes[0].get_xlim() == (14.0, 16.6)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"geometric", "clipped", "weighted"} <= set(labels)
    floor = analysis.error_floor(lat[:800], lon[:800], (0.7, 0.3), lat[800:], lon[800:])
    fig = cell_maps.plot_error_floor(floor)
    assert [ax.get_title().split(" ")[0] for ax in fig.axes] == ["train", "held-out"]
    assert all(len(ax.get_lines()) == len(analysis.FLOOR_KINDS) for ax in fig.axes)
