"""The course helpers: dataset overview, training runs, predictions, errors, figures and the map command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
import torch
from _training_helpers import use_tiny_backbone

from geoguess_utils import cli, evaluation, inference
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.course import exploration, runs
from geoguess_utils.data import geodataset, loading, splits, validation
from geoguess_utils.datasets.synthetic import write
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.geo import borders, distance, projection
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.regression import RegressionTask
from geoguess_utils.viz import error_plots, location_maps, prediction_map, training_curves, webmap

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_FIT = [
    "--model.init_args.pretrained",
    "false",
    "--model.init_args.freeze_backbone_epochs",
    "0",
    "--data.image_size",
    "32",
    "--data.batch_size",
    "8",
    "--data.num_workers",
    "0",
    "--data.cells.spacing_deg",
    "0.5",
    "--trainer.max_epochs",
    "2",
    "--trainer.limit_train_batches",
    "2",
    "--trainer.limit_val_batches",
    "2",
    "--trainer.enable_model_summary",
    "false",
]


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone():
    """The helpers train, predict and draw whatever network they are given: a two-layer backbone stands in."""
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        yield


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    """Keep every dataset cache of this module under a temporary folder."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def root(tmp_path_factory, cache_home) -> Path:
    folder = tmp_path_factory.mktemp("sample") / "root"
    write.generate_dataset(folder, 40, size=32, seed=3, workers=1)
    return folder


@pytest.fixture(scope="module")
def locations(root) -> pd.DataFrame:
    return loading.load_locations([root])


@pytest.fixture(scope="module")
def split_csv(root, locations, tmp_path_factory) -> Path:
    return splits.save_split(
        splits.make_split(locations["uuid"], seed=0), tmp_path_factory.mktemp("split") / "split.csv"
    )


@pytest.fixture(scope="module")
def context(locations, split_csv) -> GeoContext:
    split = splits.load_split(split_csv)
    train = locations[locations["uuid"].isin(split.loc[split["split"] == "train", "uuid"])]
    return GeoContext.fit(train["latitude"].to_numpy(), train["longitude"].to_numpy(), spacing_deg=0.5)


def _task(kind, context):
    torch.manual_seed(0)
    task = (ClassificationTask if kind == "classification" else RegressionTask)(pretrained=False)
    task.configure_context(context, image_size=32)
    return task.eval()


@pytest.fixture(scope="module")
def trained(root, tmp_path_factory, cache_home) -> runs.RunFiles:
    """A two-epoch classification run of a tiny untrained-backbone model, through geoguess fit."""
    run_dir = tmp_path_factory.mktemp("runs") / "course" / "classification"
    return runs.train("quick_cpu", [root], run_dir, "classification", seed=0, extra=TINY_FIT)


# ----------------------------------------------------------------------------- dataset overview


def test_dataset_layout_names_the_csv_the_folders_and_the_views(root, tmp_path):
    text = exploration.dataset_layout(root, examples=2)
    assert "data.csv" in text and "40 rows: uuid, latitude, longitude, source" in text
    assert "40 folders" in text and "... 38 more" in text
    assert text.count("0.jpg 90.jpg 180.jpg 270.jpg") == 2 and "(32x32 px JPEG)" in text
    unlabelled = tmp_path / "unlabelled"
    (unlabelled / "images" / "a").mkdir(parents=True)
    assert "no data.csv" in exploration.dataset_layout(unlabelled)


def test_location_views_reads_the_four_views_and_names_a_missing_file(locations, tmp_path):
    views = exploration.location_views(locations.iloc[0])
    assert sorted(views) == [0, 90, 180, 270]
    assert all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in views.values())
    row = locations.iloc[0].copy()
    row["path_180"] = str(tmp_path / "gone.jpg")
    with pytest.raises(DataError, match=r"gone\.jpg"):
        exploration.location_views(row)
    row["path_180"] = ""  # a view the location does not have: left out, and drawn as "no photo"
    assert sorted(exploration.location_views(row)) == [0, 90, 270]
    from geoguess_utils.viz import photos

    fig = photos.plot_quadruplets([("full", views), ("three", exploration.location_views(row))])
    assert "no photo" in [t.get_text() for ax in fig.axes for t in ax.texts]


def test_location_summary_counts_and_ranges(locations):
    two_roots = pd.concat([locations.assign(root="a"), locations.head(5).assign(root="b")], ignore_index=True)
    table = exploration.location_summary(two_roots)
    assert list(table.index) == ["a", "b", "all"]
    assert table.loc["all", "locations"] == 45 and table.loc["b", "locations"] == 5
    assert table.loc["a", "lat_max"] == locations["latitude"].max()
    assert table.loc["a", "lon_min"] == locations["longitude"].min()
    mid_lon = (locations["longitude"].min() + locations["longitude"].max()) / 2
    expected_ns = distance.haversine_km(locations["latitude"].min(), mid_lon, locations["latitude"].max(), mid_lon)
    assert table.loc["a", "north_south_km"] == pytest.approx(expected_ns)


def test_on_islands_tells_islands_from_mainland_and_sea():
    lat = np.array([45.05, 45.81, 43.0, 43.15])  # Krk, Zagreb, open Adriatic, Hvar
    lon = np.array([14.60, 15.98, 15.5, 16.65])
    assert exploration.on_islands(lat, lon).tolist() == [True, False, False, True]


def test_cell_density_counts_every_point_and_the_land_area_adds_up():
    lat, lon = borders.sample_points(3000, np.random.default_rng(1), "mainland")
    density = exploration.cell_density(lat, lon, spacing_deg=0.5)
    assert density["n"].sum() == 3000  # every mainland point lies in exactly one cell
    mainland_m2 = shapely.area(
        shapely.transform(
            borders.croatia("mainland"), lambda c: np.column_stack(projection.to_projected(c[:, 1], c[:, 0]))
        )
    )
    assert density["land_km2"].sum() == pytest.approx(mainland_m2 / 1e6, rel=1e-6)
    small = density["land_km2"] < exploration.DENSITY_MIN_AREA_KM2
    assert density.loc[small, "per_1000_km2"].isna().all() and density.loc[~small, "per_1000_km2"].notna().all()


def test_density_dispersion_is_about_one_when_uniform_and_large_when_clustered():
    rng = np.random.default_rng(2)
    lat, lon = borders.sample_points(4000, rng, "mainland")
    uniform = exploration.density_dispersion(exploration.cell_density(lat, lon, 0.5))
    assert 0.6 < uniform < 1.6
    near_zagreb = rng.normal(0, 0.05, (2, 3000)) + np.array([[45.81], [15.98]])
    clustered = exploration.density_dispersion(
        exploration.cell_density(np.r_[lat[:1000], near_zagreb[0]], np.r_[lon[:1000], near_zagreb[1]], 0.5)
    )
    assert clustered > 20 * uniform
    with pytest.raises(DataError):
        exploration.density_dispersion(exploration.cell_density(np.array([]), np.array([]), 0.5))


def test_faulty_copy_plants_exactly_the_faults_the_validator_finds(root, tmp_path):
    faults = exploration.write_faulty_copy(root, tmp_path / "faulty", n_locations=6)
    assert sorted(faults.values()) == sorted(exploration.FAULT_KINDS)
    report = validation.validate_roots([tmp_path / "faulty"])
    assert {p.uuid: p.kind for p in [*report.problems, *report.warnings]} == faults
    assert [p.kind for p in report.warnings] == ["missing_view"], "a missing view is a warning, not a problem"
    assert len(report.locations) == 6
    with pytest.raises(ConfigError, match="exists"):
        exploration.write_faulty_copy(root, tmp_path / "faulty")
    with pytest.raises(ConfigError, match="at least"):
        exploration.write_faulty_copy(root, tmp_path / "other", n_locations=3)


# ----------------------------------------------------------------------------- training runs


def test_resolve_config_picks_the_gpu_config_only_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runs.resolve_config("auto", REPO) == REPO / "configs" / "quick_cpu.yaml"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runs.resolve_config(None, REPO) == REPO / "configs" / "gpu_full.yaml"
    assert runs.resolve_config("quick_cpu", REPO) == REPO / "configs" / "quick_cpu.yaml"
    with pytest.raises(ConfigError, match="no training config"):
        runs.resolve_config("nope", REPO)


def test_fit_arguments_parse_into_a_run_writing_into_run_dir(root, tmp_path):
    from geoguess_utils.training.lightning_cli import GeoguessCLI

    run_dir = tmp_path / "runs" / "x" / "regression"
    argv = runs.fit_arguments(REPO / "configs" / "quick_cpu.yaml", [root], run_dir, "regression", quick=True, seed=4)
    cli_ = GeoguessCLI(args=argv)
    assert isinstance(cli_.model, RegressionTask)
    assert cli_.model.hparams.lr == runs.REGRESSION_LR
    assert Path(cli_.trainer.log_dir) == run_dir.resolve()
    assert {Path(lg.log_dir) for lg in cli_.trainer.loggers} == {run_dir.resolve()}
    assert cli_.datamodule.roots == [str(root.resolve())]
    assert cli_.datamodule.image_size == int(runs.QUICK_OVERRIDES["--data.image_size"])
    assert cli_.datamodule.reading.expected_source_size is None  # the synthetic sample's images are not 640 px
    assert cli_.trainer.max_epochs == int(runs.QUICK_OVERRIDES["--trainer.max_epochs"])
    assert cli_.config["seed_everything"] == 4 and cli_.datamodule.split_settings.seed == 4
    with pytest.raises(ConfigError, match="unknown task"):
        runs.fit_arguments("c.yaml", [root], run_dir, "detection")


def test_clear_run_dir_deletes_runs_but_never_a_foreign_folder(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch\n")
    (run / "events.out.tfevents.1.host").write_text("")
    runs.clear_run_dir(run)
    assert not run.exists()
    runs.clear_run_dir(run)  # nothing there: nothing to do
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(ConfigError, match=r"thesis\.tex"):
        runs.clear_run_dir(other)
    assert (other / "thesis.tex").read_text() == "keep me"


def test_train_writes_a_run_that_can_be_found_again(trained, root):
    assert trained.complete
    assert trained.best_checkpoint == trained.run_dir / "checkpoints" / "best.ckpt"
    assert trained.last_checkpoint is not None and (trained.run_dir / "config.yaml").is_file()
    curves = runs.read_metrics(trained.metrics_csv)
    assert list(curves.index) == [0, 1]
    assert curves["val/mean_km"].notna().all() and "train/loss_epoch" in curves
    tested = runs.logged_test_results(trained.metrics_csv)
    assert tested["mean_km"] > 0 and 0 <= tested["acc_200_km"] <= 1
    before = trained.best_checkpoint.stat().st_mtime_ns
    again = runs.find_or_train("quick_cpu", [root], trained.run_dir, "classification")
    assert again == trained and trained.best_checkpoint.stat().st_mtime_ns == before  # found, not retrained
    assert runs.run_files_of_checkpoint(trained.best_checkpoint) == trained


def test_read_metrics_merges_epoch_rows_and_leaves_steps_and_test_out(tmp_path):
    path = tmp_path / "metrics.csv"
    pd.DataFrame(
        {
            "epoch": [np.nan, 0, 0, 0, 1, 1, 1],
            "step": [0, 4, 9, 9, 14, 19, 19],
            "train/loss_step": [np.nan, 3.0, 2.0, np.nan, 1.5, np.nan, np.nan],
            "train/loss_epoch": [np.nan, np.nan, 2.5, np.nan, np.nan, 1.2, np.nan],
            "val/mean_km": [np.nan, np.nan, np.nan, 80.0, np.nan, 60.0, np.nan],
            "test/mean_km": [np.nan] * 6 + [65.0],
        }
    ).to_csv(path, index=False)
    curves = runs.read_metrics(path)
    assert list(curves.columns) == ["train/loss_epoch", "val/mean_km"]
    assert curves.to_dict("list") == {"train/loss_epoch": [2.5, 1.2], "val/mean_km": [80.0, 60.0]}
    assert runs.logged_test_results(path) == {"mean_km": 65.0}
    with pytest.raises(DataError, match="no training log"):
        runs.read_metrics(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="epoch"):
        runs.read_metrics(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- predictions and errors


def test_predict_a_split_matches_the_model_on_the_same_images(root, locations, split_csv, context):
    task = _task("classification", context)
    pred = inference.predict(task, [root], split="test", split_csv=split_csv, batch_size=5)
    split = splits.load_split(split_csv)
    test_uuids = [u for u in locations["uuid"] if u in set(split.loc[split["split"] == "test", "uuid"])]
    assert pred.table["uuid"].tolist() == test_uuids
    assert pred.task_name == "classification" and pred.labelled
    assert pred.probabilities.shape == (len(test_uuids), context.num_classes)
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0)
    # independent path: the same views through the task directly
    views = geodataset.GeoDataset(locations.set_index("uuid").loc[test_uuids].reset_index(), image_size=32)
    images = torch.stack([views[i]["images"] for i in range(len(views))])
    with torch.no_grad():
        expected = task.predict_latlon(images).numpy()
        expected_probs = task.class_probabilities(task(images)).numpy()
    assert np.allclose(pred.table[["pred_lat", "pred_lon"]].to_numpy(), expected)
    assert np.allclose(pred.probabilities, expected_probs)
    truth = locations.set_index("uuid").loc[test_uuids]
    assert np.array_equal(pred.table["true_lat"].to_numpy(), truth["latitude"].to_numpy())
    km = distance.haversine_km(truth["latitude"], truth["longitude"], expected[:, 0], expected[:, 1])
    assert np.allclose(pred.table["error_km"], km)
    assert pred.table["path_90"].tolist() == truth["path_90"].tolist()


def test_predict_whole_roots_and_unlabelled_roots(root, locations, context, tmp_path):
    task = _task("regression", context)
    everything = inference.predict(task, [root])
    assert everything.table["uuid"].tolist() == locations["uuid"].tolist()
    assert everything.probabilities is None and everything.labelled
    unlabelled = tmp_path / "unlabelled"
    (unlabelled / "images").mkdir(parents=True)
    for uuid in locations["uuid"][:3]:
        shutil.copytree(Path(locations.set_index("uuid").at[uuid, "path_0"]).parent, unlabelled / "images" / uuid)
    bare = inference.predict(task, [unlabelled])
    assert len(bare.table) == 3 and not bare.labelled and bare.table["error_km"].isna().all()
    with pytest.raises(DataError, match="no true position"):
        evaluation.summarise(bare)


def test_predict_refuses_unknown_splits_and_a_missing_split_file(root, context, tmp_path):
    task = _task("classification", context)
    with pytest.raises(ConfigError, match="unknown split"):
        inference.predict(task, [root], split="holdout", split_csv=tmp_path / "s.csv")
    with pytest.raises(ConfigError, match=r"split\.csv"):
        inference.predict(task, [root], split="test", split_csv=tmp_path / "missing.csv")


def _table(true_lat, true_lon, pred_lat, pred_lon):
    return pd.DataFrame(
        {
            "uuid": [f"u{i}" for i in range(len(true_lat))],
            "true_lat": true_lat,
            "true_lon": true_lon,
            "pred_lat": pred_lat,
            "pred_lon": pred_lon,
            "error_km": distance.haversine_km(true_lat, true_lon, pred_lat, pred_lon),
        }
    )


def test_summaries_and_comparison_agree_with_the_metric_module():
    rng = np.random.default_rng(4)
    lat, lon = borders.sample_points(50, rng)
    a = _table(lat, lon, lat + 0.1, lon)
    b = _table(lat, lon, np.full(50, 45.0), np.full(50, 16.0))
    table = evaluation.compare({"near": a, "centre": b})
    assert list(table.index) == ["near", "centre"]
    assert table.loc["near"].to_dict() == pytest.approx(evaluation.summarise_km(a["error_km"]))
    assert table.loc["near", "acc_25_km"] == 1.0 and table["count"].tolist() == [50, 50]
    assert table.loc["centre", "mean_km"] == pytest.approx(b["error_km"].mean())


def test_prediction_spread_is_zero_for_one_point_and_equal_for_perfect_predictions():
    lat, lon = borders.sample_points(200, np.random.default_rng(5))
    perfect = evaluation.prediction_spread(_table(lat, lon, lat, lon))
    assert perfect["pred_km"] == pytest.approx(perfect["true_km"]) and 80 < perfect["true_km"] < 250
    centre = evaluation.prediction_spread(_table(lat, lon, np.full(200, 45.0), np.full(200, 16.0)))
    assert centre["pred_km"] == pytest.approx(0.0, abs=1e-6)


def test_per_cell_errors_group_by_the_cell_of_the_true_point(context):
    rng = np.random.default_rng(6)
    lat, lon = borders.sample_points(300, rng)
    table = _table(lat, lon, lat + rng.normal(0, 0.3, 300), lon)
    pred = evaluation.Predictions(table, None, "regression", context.class_table)
    cells = evaluation.per_cell_errors(pred)
    assert len(cells) == context.num_classes and cells["n"].sum() == 300
    classes = context.assign(lat, lon)
    for _, cell in cells[cells["n"] > 0].iterrows():
        inside = classes == cell["class_index"]
        assert cell["n"] == inside.sum()
        assert cell["mean_error_km"] == pytest.approx(table["error_km"][inside].mean())
        assert cell["median_error_km"] == pytest.approx(np.median(table["error_km"][inside]))
    assert cells.loc[cells["n"] == 0, "mean_error_km"].isna().all()


def test_figures_have_one_panel_per_model(context):
    import matplotlib.pyplot as plt

    lat, lon = borders.sample_points(60, np.random.default_rng(7))
    runs = {
        "a": evaluation.Predictions(_table(lat, lon, lat + 0.2, lon), None, "regression", context.class_table),
        "b": evaluation.Predictions(_table(lat, lon, lat, lon + 0.5), None, "regression", context.class_table),
    }
    curves = {"a": pd.DataFrame({"train/loss_epoch": [2.0, 1.0], "val/loss": [2.1, 1.5], "val/mean_km": [90, 70]})}
    figures = [
        error_plots.plot_error_distribution(runs),
        error_plots.plot_cell_errors({name: evaluation.per_cell_errors(p) for name, p in runs.items()}),
        training_curves.plot_training_curves(curves),
        location_maps.plot_locations_and_density(lat, lon, exploration.cell_density(lat, lon)),
    ]
    axes_with_data = [len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) for fig in figures]
    assert axes_with_data == [2, 2, 2, 2]
    for fig in figures:
        plt.close(fig)
    with pytest.raises(ValueError):
        training_curves.plot_training_curves({})


def test_prediction_map_embeds_thumbnails_and_focuses_on_the_median_error(root, split_csv, context):
    pred = inference.predict(_task("classification", context), [root], split="val", split_csv=split_csv)
    page = webmap.map_html(prediction_map.prediction_map(pred, title="tiny", thumbnail_px=16))
    assert page.count("data:image/jpeg;base64,") == 4 * len(pred.table)
    median_row = int(np.argsort(pred.table["error_km"].to_numpy())[len(pred.table) // 2])
    assert f"Probability over cells: location {median_row + 1} of {len(pred.table)}, " in page
    for uuid in pred.table["uuid"]:
        assert uuid in page
    small = webmap.map_html(prediction_map.prediction_map(pred, thumbnail_px=None, max_locations=2))
    assert "data:image/jpeg;base64," not in small
    assert sum(uuid in small for uuid in pred.table["uuid"]) == 2


# ----------------------------------------------------------------------------- geoguess map


def test_map_command_draws_the_test_split_of_a_run(trained, root, tmp_path, capsys):
    out = tmp_path / "figs" / "map.html"
    args = ["--data", str(root), "--split", "test", "--out", str(out), "--thumbnail-px", "16"]
    status = cli.main(["map", "--ckpt", str(trained.best_checkpoint), *args])
    assert status == 0
    printed = capsys.readouterr().out
    split = splits.load_split(trained.split_csv)
    n_test = int((split["split"] == "test").sum())
    assert f"test split: {n_test} locations" in printed and str(out) in printed
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/jpeg;base64,") == 4 * n_test
    mean = float(re.search(r"mean ([0-9.]+) km", printed).group(1))
    logged = runs.logged_test_results(trained.metrics_csv)["mean_km"]
    assert mean == pytest.approx(logged, abs=0.05)  # the same number Lightning logged at test time


def test_map_command_reports_missing_split_files_and_missing_truth(trained, root, locations, tmp_path, capsys):
    lone = tmp_path / "lone.ckpt"
    lone.write_bytes(trained.best_checkpoint.read_bytes())
    status = cli.main(
        ["map", "--ckpt", str(lone), "--data", str(root), "--split", "test", "--out", str(tmp_path / "m")]
    )
    assert status == 2 and "split.csv" in capsys.readouterr().err
    unlabelled = tmp_path / "unlabelled"
    (unlabelled / "images").mkdir(parents=True)
    uuid = locations["uuid"][0]
    shutil.copytree(Path(locations.at[0, "path_0"]).parent, unlabelled / "images" / uuid)
    status = cli.main(["map", "--ckpt", str(trained.best_checkpoint), "--data", str(unlabelled), "--out", str(lone)])
    assert status == 2 and "true positions" in capsys.readouterr().err


def test_map_command_is_registered():
    assert cli.COMMANDS["map"][0] == "geoguess_utils.cli.map"
    parser = cli.build_parser()
    assert "map" in parser.format_help()
