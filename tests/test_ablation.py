"""The ablation script's pieces on made-up features (no timing, no accuracy claims)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import ablation  # noqa: E402

from geoguess_utils.errors import ConfigError  # noqa: E402
from geoguess_utils.geo import borders, distance  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def made_up():
    """120 locations whose first feature encodes latitude, so a trained head beats a constant."""
    rng = np.random.default_rng(0)
    lat, lon = borders.sample_points(120, rng, "mainland")
    features = rng.normal(size=(120, 4, 1280)).astype(np.float32) * 0.1
    features[:, :, 0] = (lat[:, None] - 44.5) * 3
    features[:, :, 1] = (lon[:, None] - 16.0) * 3
    table = pd.DataFrame({"uuid": [f"u{i:03d}" for i in range(120)], "latitude": lat, "longitude": lon})
    table["feature_row"] = np.arange(120)
    return table, features


def test_recipe_settings_come_from_the_config():
    recipe = ablation.recipe_settings()
    assert recipe["model"]["label_smoothing_tau_km"] == 0.0 and recipe["model"]["pooling"] == "concat"
    assert recipe["cells"] == {"scheme": "square", "spacing_deg": 0.3}
    assert "freeze_backbone_epochs" not in recipe["model"]


@pytest.mark.parametrize("name", ["recipe", "hybrid head", "retrieval", "kNN", "county split + county loss"])
def test_every_kind_of_variant_runs_and_reports(made_up, name):
    table, features = made_up
    result = ablation.run_variant(ablation.VARIANTS[name], ablation.recipe_settings(), table, features, 0, 2)
    assert result["count"] == 12  # the test split
    assert result["median_km"] > 0 and 0 < result["mean_km"] < 600
    assert result["classes"] >= 1 and result["constant_mean_km"] > 0


def test_best_constant_is_the_point_of_least_mean_distance(made_up):
    table = made_up[0]
    train, test = table.iloc[:100], table.iloc[100:]
    on_train = ablation.best_constant_km(train, train)["mean_km"]
    mean_lat, mean_lon = train["latitude"].mean(), train["longitude"].mean()
    at_mean = distance.haversine_km(train["latitude"], train["longitude"], mean_lat, mean_lon).mean()
    assert on_train <= at_mean + 1e-6
    assert ablation.best_constant_km(train, test)["count"] == 20


def test_summary_and_markdown():
    runs = {
        "recipe": [{"mean_km": 10.0, "median_km": 8.0, "classes": 5, "seconds": 1.0, "constant_mean_km": 20.0}] * 2,
        "other": [
            {"mean_km": 6.0, "median_km": 5.0, "classes": 7, "seconds": 2.0, "constant_mean_km": 20.0},
            {"mean_km": 8.0, "median_km": 5.0, "classes": 7, "seconds": 2.0, "constant_mean_km": 20.0},
        ],
    }
    rows = ablation.summarise_runs(runs)
    assert rows[1]["mean_km"] == 7.0 and rows[1]["vs_recipe"] == pytest.approx(0.7)
    assert rows[1]["mean_km_sd"] == pytest.approx(np.std([6.0, 8.0], ddof=1))
    text = ablation.markdown(rows)
    assert "| other | 7.0 ± 1.4 | 5.0 ± 0.0 | 0.70 | 7 | 2.0 |" in text
    assert text.splitlines()[-1].startswith("| best constant guess | 20.0 |")


def test_recipe_config_builds_through_the_command_line(tmp_path, monkeypatch):
    from geoguess_utils.tasks.classification import ClassificationTask
    from geoguess_utils.training import lightning_cli

    monkeypatch.chdir(tmp_path)
    args = ["--config", str(ablation.RECIPE), "--data.roots", f"[{tmp_path}]", "--trainer.logger", "false"]
    run = lightning_cli.GeoguessCLI(args=args)
    assert type(run.model) is ClassificationTask
    hp = run.model.hparams
    assert (hp.pooling, hp.head_hidden, hp.label_smoothing_tau_km, hp.decoding) == ("concat", 0, 0.0, "weighted_mean")
    assert run.datamodule.cells.scheme == "square" and run.datamodule.cells.spacing_deg == 0.3


def test_the_quick_config_is_the_best_combination():
    """configs/quick_cpu.yaml, read as changes to the recipe, is the ablation's best row with view dropout."""
    with_dropout = {**ablation.BEST, "model": {**ablation.BEST["model"], **ablation.VIEW_DROPOUT}}
    assert ablation.config_as_variant() == with_dropout


def test_a_config_on_another_budget_is_refused(tmp_path):
    config = yaml.safe_load(ablation.QUICK.read_text())
    config["data"]["image_size"] = 96
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="image_size 64 vs 96"):
        ablation.config_as_variant(other)


def test_scheme_parameters_reach_the_run(made_up):
    table, features = made_up
    recipe = ablation.recipe_settings()
    coarse = {"scheme": "balanced", "scheme_params": {"max_per_cell": 60, "min_per_cell": 20}}
    fine = {"scheme": "balanced", "scheme_params": {"max_per_cell": 12, "min_per_cell": 4}}
    assert ablation.run_variant(coarse, recipe, table, features, 0, 1)["classes"] < 5
    assert ablation.run_variant(fine, recipe, table, features, 0, 1)["classes"] > 5
