"""Reading the committed ablation runs and drawing them (notebook 05)."""

from __future__ import annotations

import json

import matplotlib
import pandas as pd
import pytest

from geoguess_utils.course import ablation, workspace
from geoguess_utils.errors import DataError
from geoguess_utils.viz.ablation_plots import BETTER_COLOUR, WORSE_COLOUR, plot_ablation

matplotlib.use("Agg")


def _row(variant: str, mean: float, **extra) -> dict:
    return {
        "variant": variant,
        "mean_km": mean,
        "mean_km_sd": 1.0,
        "median_km": mean * 0.8,
        "median_km_sd": 0.5,
        "vs_recipe": mean / 60.0,
        "constant_mean_km": 130.0,
        **extra,
    }


def _write(path, rows, settings=None):
    path.write_text(json.dumps({"settings": settings or {"seeds": [0, 1, 2]}, "summary": rows}))
    return path


def test_a_run_is_read_with_its_best_variant_and_constant(tmp_path):
    run = ablation.load_ablation(_write(tmp_path / "a.json", [_row("recipe", 60.0), _row("best", 48.0)]))
    assert run.recipe_km == 60.0 and run.best["variant"] == "best"
    assert run.constant_km == 130.0 and run.settings["seeds"] == [0, 1, 2]
    assert list(run.summary["variant"]) == ["recipe", "best"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such ablation file"),
        ("{not json", "not a readable ablation JSON"),
        ({"summary": []}, "no 'summary' list"),
        ({"summary": [{"variant": "recipe", "mean_km": 60.0}]}, "summary row 1 lacks mean_km_sd"),
        ({"summary": [_row("recipe", 60.0), _row("x", float("nan"))]}, r"row 2 \('x'\) has non-finite mean_km"),
        ({"summary": [_row("best", 50.0)]}, "no 'recipe' row"),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_the_row(tmp_path, content, message):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError, match=message) as caught:
        ablation.load_ablation(path)
    assert str(path) in str(caught.value)


def test_the_committed_runs_load_and_their_best_beats_the_recipe():
    runs = ablation.committed_ablations(workspace.project_root(__file__))
    assert set(runs) == set(ablation.ABLATION_FILES)
    for run in runs.values():
        assert run.best["mean_km"] < run.recipe_km < run.constant_km
        assert len(run.settings["seeds"]) >= 3


def test_the_figure_colours_bars_by_whether_they_beat_the_recipe():
    table = pd.DataFrame([_row("recipe", 60.0), _row("better", 50.0), _row("worse", 70.0)])
    fig = plot_ablation({"one run": table}, {"one run": 130.0})
    (ax,) = fig.axes
    colours = [matplotlib.colors.to_hex(bar.get_facecolor(), keep_alpha=False) for bar in ax.patches]
    assert colours[1:] == [BETTER_COLOUR, WORSE_COLOUR]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["recipe  (1.00×)", "better  (0.83×)", "worse  (1.17×)"]
    with pytest.raises(ValueError, match="no 'recipe' row"):
        plot_ablation({"one run": table.iloc[1:]})
    with pytest.raises(ValueError, match="no ablation results"):
        plot_ablation({})
