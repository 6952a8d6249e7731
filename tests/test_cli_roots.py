"""``predict``, ``map`` and ``evaluate`` over several dataset roots, and over the roots a run recorded."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from _training_helpers import fit_args, make_dataset, run_cli, use_tiny_backbone

from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import distance
from geoguess_utils.inference.progress import ProgressLines
from geoguess_utils.training.run_files import RunFiles

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROGRESS = re.compile(r"^geoguess (predict|map): (\d+)/(\d+) locations, \d+\.\d s$")


@pytest.fixture(scope="module", autouse=True)
def _tiny_backbone():
    """Which roots are read is plumbing: a two-layer backbone stands in for the real one."""
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        yield


_main = run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny classifier trained on two roots named relative to the folder ``geoguess fit`` ran in."""
    from geoguess_utils.training import lightning_cli

    work = tmp_path_factory.mktemp("two_roots")
    roots = [make_dataset(work / "root_a", 24, size=32, seed=31), make_dataset(work / "root_b", 24, size=32, seed=32)]
    old = Path.cwd()
    os.chdir(work)
    try:
        extra = ("--trainer.logger", "false", "--data.roots", "[root_a, root_b]")  # overrides fit_args' roots
        fitted = lightning_cli.GeoguessCLI(args=fit_args(work / "unused", work, *extra, epochs=1))
        lightning_cli.fit(fitted.trainer, fitted.model, fitted.datamodule)
    finally:
        os.chdir(old)
    ckpt = Path(fitted.trainer.checkpoint_callback.best_model_path)
    truth = pd.concat([pd.read_csv(root / "data.csv") for root in roots], ignore_index=True)
    return SimpleNamespace(
        work=work, ckpt=ckpt, roots=roots, truth=truth, split=pd.read_csv(work / "split.csv", dtype=str)
    )


@pytest.fixture(scope="module")
def predicted(run, tmp_path_factory):
    """``geoguess predict`` with no --data, its output going into a buffer: (status, CSV path, stdout, stderr)."""
    out = tmp_path_factory.mktemp("predicted") / "predictions.csv"
    status, stdout, stderr = _main(
        ["predict", "--ckpt", str(run.ckpt), "--out", str(out), "--batch-size", "8", "--cache-dir", str(run.work / "c")]
    )
    return SimpleNamespace(status=status, out=out, stdout=stdout, stderr=stderr)


def test_the_run_records_its_roots_as_absolute_paths(run):
    assert "root_a" in (run.work / "config.yaml").read_text()  # as typed, relative
    assert Path.cwd() != run.work and not Path("root_a").exists()
    recorded = (run.work / "data_roots.txt").read_text().splitlines()
    assert recorded == [str(root.resolve()) for root in run.roots]
    assert RunFiles(run.work).data_roots() == [root.resolve() for root in run.roots]


def test_predict_defaults_to_the_runs_roots(run, predicted):
    assert predicted.status == 0, predicted.stderr
    table = pd.read_csv(predicted.out)
    assert sorted(table["uuid"]) == sorted(run.truth["uuid"])
    assert len(table) == 48
    assert f"the run's dataset roots (from {run.work / 'config.yaml'})" in predicted.stderr


def test_predict_prints_progress_lines_when_its_output_is_not_a_terminal(predicted):
    lines = [line for line in predicted.stderr.splitlines() if line.startswith("geoguess predict: ")]
    assert "geoguess predict: predicting 48 locations" in lines
    progress = [PROGRESS.match(line) for line in lines if PROGRESS.match(line)]
    assert len(progress) >= 2, predicted.stderr
    done = [int(m.group(2)) for m in progress]
    assert done == sorted(done) and done[-1] == 48 and all(int(m.group(3)) == 48 for m in progress)
    assert "\r" not in predicted.stderr  # no progress bar


def test_progress_lines_come_at_every_tenth():
    stream = io.StringIO()
    lines = ProgressLines("geoguess predict", stream=stream)
    trainer = SimpleNamespace(is_global_zero=True, predict_dataloaders=[SimpleNamespace(dataset=range(1000))])
    lines.on_predict_start(trainer, None)
    for index in range(32):  # batches of 32 locations, the last one short
        batch = {"uuid": ["u"] * (32 if index < 31 else 1000 - 31 * 32)}
        lines.on_predict_batch_end(trainer, None, None, batch, index)
    printed = stream.getvalue().splitlines()
    assert printed[0] == "geoguess predict: predicting 1,000 locations"
    done = [int(line.split(": ")[1].split("/")[0].replace(",", "")) for line in printed[1:]]
    assert len(done) == 10 and done[-1] == 1000
    assert all(d >= 100 * (i + 1) for i, d in enumerate(done))


def test_predict_takes_several_roots(run, predicted, tmp_path):
    out = tmp_path / "both.csv"
    argv = ["predict", "--ckpt", str(run.ckpt), "--data", *map(str, run.roots), "--out", str(out)]
    status, _, stderr = _main([*argv, "--cache-dir", str(run.work / "c")])
    assert status == 0, stderr
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(predicted.out))
    assert "the run's dataset roots" not in stderr


def test_evaluate_scores_exactly_the_test_split_of_a_run(run, predicted, tmp_path):
    test_uuids = set(run.split.loc[run.split["split"] == "test", "uuid"])
    assert 0 < len(test_uuids) < 48
    status, stdout, stderr = _main(["evaluate", str(predicted.out), "--run", str(run.work), "--split", "test"])
    assert status == 0, stderr
    result = json.loads(stdout)
    assert result["count"] == len(test_uuids)
    merged = run.truth.merge(pd.read_csv(predicted.out), on="uuid", suffixes=("", "_pred"))
    merged = merged[merged["uuid"].isin(test_uuids)]
    m = merged
    km = distance.haversine_km(m["latitude_pred"], m["longitude_pred"], m["latitude"], m["longitude"])
    assert result["mean_km"] == pytest.approx(float(np.mean(km)))
    assert "baseline_mean_km" in result  # the run's training rows
    notes = [line for line in stderr.splitlines() if "left out" in line]
    assert len(notes) == 1 and f"left out the {48 - len(test_uuids)} rows of {predicted.out}" in notes[0]
    # the run may be named by its checkpoint as well, and the truth may be a CSV of the test rows only
    assert _main(["evaluate", str(predicted.out), "--run", str(run.ckpt), "--split", "test"])[1] == stdout
    run.truth[run.truth["uuid"].isin(test_uuids)].to_csv(tmp_path / "test_truth.csv", index=False)
    argv = ["evaluate", str(predicted.out), "--run", str(run.work), "--split", "test", "--truth"]
    assert json.loads(_main([*argv, str(tmp_path / "test_truth.csv")])[1]) == pytest.approx(result)


def test_evaluate_takes_several_truth_roots(run, predicted):
    status, stdout, stderr = _main(["evaluate", str(predicted.out), "--truth", *map(str, run.roots)])
    assert status == 0, stderr
    assert json.loads(stdout)["count"] == 48
    status, _, stderr = _main(["evaluate", str(predicted.out), "--truth", str(run.roots[0])])
    assert status == 2
    assert "24 predicted uuid(s) are not in the truth" in stderr and len(stderr.strip().splitlines()) == 1


def test_evaluate_of_a_split_refuses_what_it_cannot_score(run, predicted, tmp_path):
    test_uuids = sorted(run.split.loc[run.split["split"] == "test", "uuid"])
    table = pd.read_csv(predicted.out)
    short = tmp_path / "short.csv"
    table[table["uuid"] != test_uuids[0]].to_csv(short, index=False)
    status, _, stderr = _main(["evaluate", str(short), "--run", str(run.work), "--split", "test"])
    assert status == 2
    assert f"1 uuid(s) of the test split of {run.work / 'split.csv'} have no prediction" in stderr
    assert repr(test_uuids[0]) in stderr and len(stderr.strip().splitlines()) == 1
    # a split needs the run's split file, and all its roots
    status, _, stderr = _main(["evaluate", str(predicted.out), "--truth", str(run.roots[0]), "--split", "test"])
    assert status == 2 and "--split test picks rows of a run's split.csv; give --run RUN" in stderr
    argv = ["evaluate", str(predicted.out), "--run", str(run.work), "--truth", str(run.roots[0]), "--split", "test"]
    status, _, stderr = _main(argv)
    assert set(test_uuids) - set(pd.read_csv(run.roots[0] / "data.csv")["uuid"])  # some test rows are in root_b
    assert status == 2 and "in no truth file" in stderr and str(run.work / "split.csv") in stderr
    status, _, stderr = _main(["evaluate", str(predicted.out)])
    assert status == 2 and "--truth ROOT [ROOT ...]" in stderr and "--run RUN" in stderr


def test_map_defaults_to_the_runs_roots_and_refuses_a_split_of_some_of_them(run, tmp_path):
    n_test = int((run.split["split"] == "test").sum())
    out = tmp_path / "map.html"
    argv = ["map", "--ckpt", str(run.ckpt), "--split", "test", "--out", str(out), "--no-thumbnails"]
    status, stdout, stderr = _main([*argv, "--cache-dir", str(run.work / "c")])
    assert status == 0, stderr
    assert stdout.startswith(f"test split: {n_test} locations") and out.is_file()
    progress = [m for m in map(PROGRESS.match, stderr.splitlines()) if m and m.group(1) == "map"]
    assert progress and progress[-1].group(2) == progress[-1].group(3) == str(n_test)
    status, _, stderr = _main([*argv, "--data", str(run.roots[0])])
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert f"covers every root {run.ckpt} was trained on (root_a, root_b); --data gives root_a" in stderr


def test_a_run_without_its_roots_is_refused_naming_the_file(run, tmp_path):
    moved = tmp_path / "moved"
    (moved / "checkpoints").mkdir(parents=True)
    shutil.copy(run.ckpt, moved / "checkpoints" / "best.ckpt")
    argv = ["predict", "--ckpt", str(moved / "checkpoints" / "best.ckpt"), "--out", str(tmp_path / "p.csv")]
    status, _, stderr = _main(argv)
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert str(moved / "config.yaml") in stderr and "--data ROOT [ROOT ...]" in stderr
    (moved / "config.yaml").write_text("data:\n  roots: [no_such_root]\n")
    status, _, stderr = _main(argv)
    assert status == 2 and "names the dataset root 'no_such_root', which is not a folder here" in stderr


def test_run_roots_resolve_from_the_run_folder_up(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "data" / "a").mkdir(parents=True)
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    folder = project / "runs" / "quick_cpu" / "version_0"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"data:\n  roots:\n  - data/a\n  - {elsewhere}\n")
    monkeypatch.chdir(tmp_path)
    assert RunFiles(folder).data_roots() == [project / "data" / "a", elsewhere]
    (folder / "config.yaml").write_text("data:\n  roots: [\n")
    with pytest.raises(ConfigError, match=r"config.yaml is not a readable YAML file"):
        RunFiles(folder).data_roots()
    (folder / "config.yaml").write_text("trainer: {}\n")
    with pytest.raises(ConfigError, match=r"names no dataset roots"):
        RunFiles(folder).data_roots()
