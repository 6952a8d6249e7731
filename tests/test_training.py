"""``geoguess fit`` end to end: checkpoints, logs, freezing, resume, Ctrl+C, DDP, and learning."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from _training_helpers import (
    ONE_BATCH,
    ONE_THREAD_ENV,
    QUICK_CONFIG,
    REPO,
    ParameterWatch,
    fit_args,
    make_dataset,
    use_tiny_backbone,
)

from geoguess_utils.checkpoints.files import AtomicCheckpointIO, load_checkpoint
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.data.settings import CacheSettings, CellSettings
from geoguess_utils.errors import ConfigError
from geoguess_utils.evaluation import summarise_km
from geoguess_utils.geo import distance, projection
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.regression import RegressionTask
from geoguess_utils.training import lightning_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny") / "root", 48, size=32, seed=11)


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


def _run_dirs(work: Path) -> list[Path]:
    return sorted((work / "runs" / "quick_cpu").glob("version_*"))


def test_fit_logs_checkpoints_and_tests_the_best(tiny_root, tmp_path, monkeypatch):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert lightning_cli.run(fit_args(tiny_root, tmp_path, *ONE_BATCH)) == 0  # two epochs of one batch
    (run,) = _run_dirs(tmp_path)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in names and "best.ckpt" in names  # one fixed name, whichever epoch was best
    metrics = _metrics(run)
    for column in (
        "val/mean_km",
        "val/median_km",
        "val/acc_1_km",
        "val/acc_25_km",
        "val/acc_200_km",
        "val/acc_750_km",
        "val/acc",
        "val/acc_top5",
        "train/loss_epoch",
        "test/mean_km",
        "test/acc_750_km",
    ):
        assert column in metrics and metrics[column].notna().any(), column
    assert (run / "split.csv").is_file() and (run / "config.yaml").is_file()
    assert any((run).glob("events.out.tfevents.*"))  # TensorBoard
    # the checkpoint loads without unpickling code and is self-contained
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["geoguess"]["backbone"] == "efficientnet_lite0"
    assert ckpt["geoguess"]["image_size"] == 32
    assert ckpt["epoch"] == 1


def test_frozen_backbone_learns_from_the_unfreeze_epoch_on(tiny_root, tmp_path, monkeypatch):
    use_tiny_backbone(monkeypatch)
    for scheduler in ("plateau", "onecycle"):
        pl.seed_everything(0)
        datamodule = GeoDataModule(
            roots=[str(tiny_root)],
            image_size=32,
            batch_size=8,
            cells=CellSettings(spacing_deg=0.5),
            cache=CacheSettings(dir=str(tmp_path / "cache")),
        )
        task = RegressionTask(pretrained=False, lr=1e-3, freeze_backbone_epochs=1, scheduler=scheduler)
        watch = ParameterWatch()
        trainer = pl.Trainer(
            max_epochs=2,
            limit_train_batches=2,
            limit_val_batches=1,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[watch],
        )
        trainer.fit(task, datamodule=datamodule)
        (frozen_backbone, frozen_head), (thawed_backbone, thawed_head) = watch.moved
        assert frozen_backbone == 0.0 and frozen_head > 0.0, scheduler
        assert thawed_backbone > 0.0 and thawed_head > 0.0, scheduler
        assert all(lr == 0.0 for lr in watch.backbone_lrs[0]), scheduler
        assert all(lr > 0.0 for lr in watch.backbone_lrs[1]), scheduler
        # every parameter stays in the one optimiser: head and backbone groups throughout
        assert [g["name"] for g in trainer.optimizers[0].param_groups] == ["head", "backbone"]
        n_params = sum(len(g["params"]) for g in trainer.optimizers[0].param_groups)
        assert n_params == len(list(task.net.parameters()))


def test_resume_continues_from_the_last_checkpoint(tiny_root, tmp_path, monkeypatch):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert lightning_cli.run(fit_args(tiny_root, tmp_path, *ONE_BATCH, "--test_after_fit", "false", epochs=1)) == 0
    (first,) = _run_dirs(tmp_path)
    last = first / "checkpoints" / "last.ckpt"
    args = fit_args(tiny_root, tmp_path, *ONE_BATCH, "--ckpt_path", str(last), "--test_after_fit", "false", epochs=2)
    assert lightning_cli.run(args) == 0
    second = _run_dirs(tmp_path)[-1]
    epochs = _metrics(second)["epoch"].dropna().unique()
    assert list(epochs) == [1]  # only the missing epoch was trained
    assert load_checkpoint(second / "checkpoints" / "last.ckpt")["epoch"] == 1


def test_ctrl_c_stops_gracefully_and_still_tests(tiny_root, tmp_path, monkeypatch):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    callback = '[{"class_path": "_training_helpers.InterruptAtBatch", "init_args": {"epoch": 1, "batch": 1}}]'
    args = fit_args(tiny_root, tmp_path, "--trainer.callbacks", callback, epochs=3)
    assert lightning_cli.run(args) == lightning_cli.INTERRUPTED_EXIT_CODE
    (run,) = _run_dirs(tmp_path)
    metrics = _metrics(run)
    assert metrics["test/mean_km"].notna().any()
    assert metrics["epoch"].max() <= 1
    assert load_checkpoint(run / "checkpoints" / "best.ckpt")["epoch"] == 0  # the only validated epoch


def test_checkpoints_are_written_atomically(tiny_root, tmp_path, monkeypatch):
    use_tiny_backbone(monkeypatch)
    cli = lightning_cli.GeoguessCLI(args=fit_args(tiny_root, tmp_path, "--trainer.logger", "false"))
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert cli.model.hparams.backbone == "efficientnet_lite0"
    assert isinstance(cli.model, ClassificationTask)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_run_on_cpu_unfreezes_checkpoints_and_tests(tiny_root, tmp_path):
    """Lightning's own DDP (gloo on CPU) through ``geoguess fit``.

    Two short epochs rather than ``fast_dev_run``: that would skip checkpoints and never
    reach the epoch where the backbone is unfrozen, the step known to break under DDP.
    """
    args = fit_args(
        tiny_root,
        tmp_path,
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.limit_test_batches",
        "1",
        epochs=2,
    )
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "PYTHONUNBUFFERED": "1"}
    env.update(ONE_THREAD_ENV)  # two processes on two cores: one torch thread each
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "geoguess_utils.cli", "fit", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "distributed_backend=gloo" in output
    assert "All distributed processes registered. Starting with 2 processes" in output
    assert "test/mean_km" in output
    (run,) = _run_dirs(tmp_path)
    metrics = _metrics(run)
    lrs = metrics.dropna(subset=["lr-AdamW/backbone"])["lr-AdamW/backbone"].tolist()
    assert lrs[0] == 0.0 and lrs[-1] > 0.0  # frozen in epoch 0, learning in epoch 1
    assert metrics["val/mean_km"].notna().sum() == 2
    assert (run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_short_training_beats_the_training_mean_baseline(tmp_path, monkeypatch):
    """A pretrained backbone, trained briefly, locates unseen synthetic places better than a constant guess.

    The baseline guesses the training mean (in the projected CRS) for every validation
    location. The model is judged on its last epoch, not on the best one.
    """
    root = make_dataset(tmp_path / "learn", 400, size=64, seed=5)
    monkeypatch.chdir(tmp_path)
    args = [
        "--config",
        str(QUICK_CONFIG),
        "--data.roots",
        f"[{root}]",
        "--data.image_size",
        "64",
        "--data.cells.spacing_deg",
        "0.5",
        "--data.split.fractions",
        "[0.7, 0.25, 0.05]",
        "--data.num_workers",
        "0",
        "--data.augment",
        "false",
        "--data.cache.dir",
        str(tmp_path / "cache"),
        "--model.init_args.lr",
        "0.001",
        "--model.init_args.freeze_backbone_epochs",
        "5",
        "--trainer.max_epochs",
        "5",
        "--trainer.enable_progress_bar",
        "false",
        "--test_after_fit",
        "false",
    ]
    assert lightning_cli.run(args) == 0
    (run,) = _run_dirs(tmp_path)
    split = pd.read_csv(run / "split.csv")
    table = pd.read_csv(root / "data.csv").merge(split, on="uuid")
    train, val = table[table["split"] == "train"], table[table["split"] == "val"]
    x, y = projection.to_projected(train["latitude"].to_numpy(), train["longitude"].to_numpy())
    mean_lat, mean_lon = projection.to_latlon(np.mean(x), np.mean(y))
    baseline = summarise_km(distance.haversine_km(val["latitude"], val["longitude"], mean_lat, mean_lon))["mean_km"]
    val_km = _metrics(run)["val/mean_km"].dropna()
    assert len(val_km) == 5
    assert val_km.iloc[-1] < 0.85 * baseline, (val_km.tolist(), baseline)
    assert torch.isfinite(torch.tensor(val_km.to_numpy())).all()


def test_an_old_config_names_each_moved_key(tmp_path):
    from geoguess_utils.training.moved_keys import moved_key_problems

    old = tmp_path / "old.yaml"
    old.write_text(
        "data:\n  roots: [x]\n  spacing_deg: 0.3\n  image_cache: memory\ncheckpoint:\n  monitor: val/haversine_km\n"
    )
    problems = moved_key_problems(["--config", str(old), "--data.seed", "3", "--data.image_size", "64"])
    assert f"{old}: data.spacing_deg moved to data.cells.spacing_deg" in problems
    assert f"{old}: data.image_cache moved to data.cache.images" in problems
    assert f"{old}: checkpoint.monitor: the metric val/haversine_km is now called val/mean_km" in problems
    assert "--data.seed moved to --data.split.seed" in problems
    assert len(problems) == 4  # --data.image_size kept its name
    assert moved_key_problems(["--config", str(REPO / "configs" / "quick_cpu.yaml")]) == []
    from geoguess_utils import cli

    code = cli.main(["fit", "--config", str(old)])
    assert code == 2


def test_ctrl_c_before_any_validation_tests_nothing_and_says_so(tiny_root, tmp_path, monkeypatch, capsys):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    callback = '[{"class_path": "_training_helpers.InterruptAtBatch", "init_args": {"epoch": 0, "batch": 1}}]'
    args = fit_args(tiny_root, tmp_path, "--trainer.callbacks", callback, epochs=2)
    assert lightning_cli.run(args) == lightning_cli.INTERRUPTED_EXIT_CODE
    err = capsys.readouterr().err
    assert "not testing: training was interrupted before any validation" in err
    assert "best checkpoint:" not in err  # an unvalidated last.ckpt is never called the best
    (run,) = _run_dirs(tmp_path)
    metrics = _metrics(run) if (run / "metrics.csv").is_file() else pd.DataFrame()
    assert "test/mean_km" not in metrics.columns or metrics["test/mean_km"].isna().all()
    if (run / "checkpoints" / "last.ckpt").is_file():
        assert "last checkpoint (never validated" in err


def test_resuming_another_runs_checkpoint_names_both_sides_and_leaves_no_run_folder(
    tiny_root, tmp_path, monkeypatch, capsys
):
    from geoguess_utils import cli

    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert lightning_cli.run(fit_args(tiny_root, tmp_path, *ONE_BATCH, "--test_after_fit", "false", epochs=1)) == 0
    (first,) = _run_dirs(tmp_path)
    saved = lightning_cli.GeoguessCLI(args=fit_args(tiny_root, tmp_path, "--trainer.logger", "false"))
    saved.datamodule.setup("fit")
    coarse = saved.datamodule.context.num_classes
    finer = fit_args(
        tiny_root, tmp_path, "--data.cells.spacing_deg", "0.25", "--ckpt_path", str(first / "checkpoints" / "last.ckpt")
    )
    capsys.readouterr()
    assert cli.main(["fit", *finer]) == 2
    err = capsys.readouterr().err
    other = lightning_cli.GeoguessCLI(
        args=fit_args(tiny_root, tmp_path, "--data.cells.spacing_deg", "0.25", "--trainer.logger", "false")
    )
    other.datamodule.setup("fit")
    requested = other.datamodule.context.num_classes
    assert coarse != requested
    assert f"{coarse} classes in the checkpoint vs {requested} requested" in err, err
    assert _run_dirs(tmp_path) == [first]  # the refused run left no version_1 behind


def test_scheme_parameters_reach_the_cells_from_the_command_line(tiny_root, tmp_path, monkeypatch):
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.checkpoints.record import read_record

    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    params = "{max_per_cell: 20, min_per_cell: 6}"
    extra = ("--data.cells.scheme", "balanced", "--data.cells.params", params, "--test_after_fit", "false", *ONE_BATCH)
    assert lightning_cli.run(fit_args(tiny_root, tmp_path, *extra, epochs=1)) == 0
    (run,) = _run_dirs(tmp_path)
    record = read_record(load_checkpoint(run / "checkpoints" / "last.ckpt"), "last.ckpt")
    scheme = GeoContext.from_dict(record["context"]).scheme
    assert scheme.name == "balanced" and (scheme.max_per_cell, scheme.min_per_cell) == (20, 6)
    bad = fit_args(tiny_root, tmp_path, "--data.cells.scheme", "balanced", "--data.cells.params", "{max_cells: 4}")
    with pytest.raises(ConfigError, match="'balanced' has no parameter 'max_cells'"):
        lightning_cli.run(bad)
    # cells so large that one holds every training location: refused before training, in one line
    one = fit_args(tiny_root, tmp_path, "--data.cells.scheme", "balanced", "--data.cells.params", "{max_per_cell: 500}")
    with pytest.raises(ConfigError, match="gives one class"):
        lightning_cli.run(one)
    assert _run_dirs(tmp_path) == [run]  # no empty run folder stays behind
