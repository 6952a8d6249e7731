"""``benchmarks/readme_results.py``: the README's results table, written from finished runs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from geoguess_utils import evaluation
from geoguess_utils.data import splits
from geoguess_utils.datasets.synthetic.write import generate_dataset
from geoguess_utils.errors import DataError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import readme_results  # noqa: E402


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("results") / "sample"
    table = generate_dataset(root, 30, size=32, seed=5, workers=1)
    return root, table


def fake_run(folder: Path, root: Path, table: pd.DataFrame, mean_km: float, seed: int = 0) -> Path:
    """A run folder as ``geoguess fit`` leaves it: config, split and a CSV log with test values."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"data": {"roots": [str(root)]}}))
    splits.save_split(splits.make_split(table["uuid"], seed=seed), folder / "split.csv")
    rows = [
        {"epoch": 0, "step": 3, "train/loss_epoch": 4.0, "val/mean_km": 130.0},
        {"epoch": 1, "step": 7, "train/loss_epoch": 3.5, "val/mean_km": 120.0},
        {"epoch": 1, "step": 8, "test/mean_km": mean_km, "test/median_km": mean_km - 10, "test/acc_25_km": 0.125},
    ]
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    return folder


def test_the_table_holds_the_logged_numbers_and_both_baselines(sample, tmp_path):
    root, table = sample
    run = fake_run(tmp_path / "cls", root, table, mean_km=98.765)
    result = readme_results.read_run("tiny classifier", run, tmp_path)
    markdown = readme_results.results_table([result])
    assert "| tiny classifier | 2 | 98.8 | 88.8 | 12.5 % |" in markdown

    split = splits.load_split(run / "split.csv")
    merged = table.merge(split, on="uuid")
    train = merged.loc[merged["split"] == "train", ["latitude", "longitude"]].to_numpy(dtype=np.float64)
    test = merged.loc[merged["split"] == "test", ["latitude", "longitude"]].to_numpy(dtype=np.float64)
    expected = evaluation.baselines(train, test)
    assert f"mean position | – | {expected['baseline_mean_km']:.1f} |" in markdown
    assert f"in hindsight | – | {expected['baseline_best_constant_km']:.1f} |" in markdown
    assert f"test split of {len(test)} locations (sample)" in markdown


def test_runs_on_different_splits_are_refused(sample, tmp_path):
    root, table = sample
    first = readme_results.read_run("a", fake_run(tmp_path / "a", root, table, 90.0, seed=0), tmp_path)
    second = readme_results.read_run("b", fake_run(tmp_path / "b", root, table, 80.0, seed=1), tmp_path)
    with pytest.raises(DataError, match="different splits"):
        readme_results.results_table([first, second])


def test_roots_come_from_the_option_when_the_run_has_no_config(sample, tmp_path):
    root, table = sample
    run = fake_run(tmp_path / "cls", root, table, mean_km=70.0)
    (run / "config.yaml").unlink()
    with pytest.raises(DataError, match="--roots"):
        readme_results.read_run("cls", run, tmp_path)
    assert readme_results.read_run("cls", run, tmp_path, [root]).roots == (root,)


def test_an_untested_run_is_refused(sample, tmp_path):
    root, table = sample
    run = fake_run(tmp_path / "untested", root, table, 90.0)
    log = pd.read_csv(run / "metrics.csv")
    log[log["test/mean_km"].isna()].to_csv(run / "metrics.csv", index=False)
    with pytest.raises(DataError, match="did not test its best checkpoint"):
        readme_results.read_run("untested", run, tmp_path)


def test_main_writes_between_the_markers_and_check_sees_drift(sample, tmp_path, capsys):
    root, table = sample
    run = fake_run(tmp_path / "cls", root, table, mean_km=50.0)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{readme_results.START}\nstale numbers\n{readme_results.END}\noutro\n")
    argv = ["--readme", str(readme), "--run", "model", str(run)]
    assert readme_results.main([*argv, "--check"]) == 1
    assert readme_results.main(argv) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "stale numbers" not in text
    assert "| model | 2 | 50.0 | 40.0 | 12.5 % |" in text
    assert readme_results.main([*argv, "--check"]) == 0
    readme.write_text("no markers here\n")
    assert readme_results.main(argv) == 2
    assert "needs exactly one" in capsys.readouterr().err


def test_the_readme_has_one_results_block():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    replaced = readme_results.replace_between_markers(text, "TABLE")
    assert f"{readme_results.START}\nTABLE\n{readme_results.END}" in replaced
