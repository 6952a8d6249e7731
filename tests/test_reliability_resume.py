"""A training run killed with SIGKILL in mid-epoch resumes to exactly the result of an uninterrupted run.

Three ``geoguess fit`` processes train the same tiny model on the same synthetic sample:
one runs through, one is killed with SIGKILL in the middle of its second epoch, and a
third resumes the killed one from its ``last.ckpt``. The resumed run must reach the
uninterrupted run's split, class table, weights, optimiser state and metrics.

Tolerance: on one machine and one thread the runs are bit-identical; the test allows
1e-6 relative (1e-7 absolute) on weights and optimiser moments and 1e-6 km on metrics,
far below anything a wrong resume gives (a batch trained twice or skipped, another
shuffle or augmentation, lost optimiser moments all move weights by 1e-4 or more).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from _reliability_helpers import TINY_BACKBONE
from pytorch_lightning.callbacks import ModelCheckpoint

from geoguess_utils import cli
from geoguess_utils.checkpoints.files import load_checkpoint
from geoguess_utils.errors import CheckpointError
from geoguess_utils.training import callbacks, lightning_cli

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
CONFIG = REPO / "configs" / "quick_cpu.yaml"
RTOL, ATOL, KM_TOL = 1e-6, 1e-7, 1e-6
KILL_EPOCH, KILL_BATCH = 1, 3  # 6 batches per epoch; steps are saved every 2, so step 9's work is lost


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "sample"
    argv = ["make-sample", "--out", str(root), "--locations", "60", "--size", "32", "--seed", "0", "--workers", "1"]
    assert cli.main(argv) == 0
    return root


def _fit_argv(root: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--config",
        str(CONFIG),
        "--model.class_path",
        "geoguess_utils.tasks.classification.ClassificationTask",
        "--model.init_args.backbone",
        TINY_BACKBONE,
        "--model.init_args.pretrained",
        "false",
        "--model.init_args.freeze_backbone_epochs",
        "1",
        "--model.init_args.dropout",
        "0.3",  # random masks in every step: a resume must repeat them
        "--data.roots",
        f"[{root}]",
        "--data.image_size",
        "32",
        "--data.batch_size",
        "8",
        "--data.num_workers",
        "0",
        "--data.cells.spacing_deg",
        "0.5",
        "--data.cache.dir",
        str(cache),
        "--trainer.max_epochs",
        "3",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--step_checkpoint.every_n_train_steps",
        "2",
        *extra,
    ]


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), str(REPO), env.get("PYTHONPATH")]))
    log = open(cwd / "output.txt", "w")  # noqa: SIM115 - closed by _finish
    return subprocess.Popen(
        [sys.executable, "-m", "geoguess_utils.cli", "fit", *argv], cwd=cwd, env=env, stdout=log, stderr=log
    )


def _finish(process: subprocess.Popen, cwd: Path, timeout: float = 240) -> str:
    process.wait(timeout=timeout)
    process.stdout and process.stdout.close()
    return (cwd / "output.txt").read_text()


def _run_dir(cwd: Path, version: int) -> Path:
    return cwd / "runs" / "quick_cpu" / f"version_{version}"


def _tensors(state: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested dict/list, by its path."""
    found = {}
    items = state.items() if isinstance(state, dict) else enumerate(state)
    for key, value in items:
        name = f"{prefix}/{key}"
        if isinstance(value, torch.Tensor):
            found[name] = value
        elif isinstance(value, (dict, list, tuple)):
            found.update(_tensors(value, name))
    return found


def _assert_same_tensors(a: dict, b: dict, what: str) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys(), what
    assert ta, what
    for name in ta:
        torch.testing.assert_close(tb[name], ta[name], rtol=RTOL, atol=ATOL, msg=lambda m, n=name: f"{what} {n}: {m}")


def _epoch_metrics(run: Path, column: str) -> pd.Series:
    metrics = pd.read_csv(run / "metrics.csv")
    rows = metrics.dropna(subset=[column])
    return rows.set_index("epoch")[column] if "epoch" in rows else rows[column]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_result(sample, tmp_path):
    polls_left = 2400  # a hang guard counted in polls of 0.1 s, not a timing assertion
    ref_cwd, kill_cwd = tmp_path / "reference", tmp_path / "killed"
    marker = tmp_path / "halted.txt"
    halt = (
        f'[{{"class_path": "_reliability_helpers.HaltAt", "init_args": '
        f'{{"marker": "{marker}", "epoch": {KILL_EPOCH}, "batch": {KILL_BATCH}}}}}]'
    )
    reference = _start(_fit_argv(sample, tmp_path / "cache_ref"), ref_cwd)
    victim = _start(_fit_argv(sample, tmp_path / "cache_kill", "--trainer.callbacks", halt), kill_cwd)
    while not marker.exists():
        if victim.poll() is not None:
            pytest.fail("the run to be killed ended on its own:\n" + _finish(victim, kill_cwd)[-3000:])
        polls_left -= 1
        assert polls_left > 0, "the run to be killed never reached the halting batch"
        time.sleep(0.1)
    os.kill(victim.pid, signal.SIGKILL)
    _finish(victim, kill_cwd)
    assert victim.returncode == -signal.SIGKILL

    # what the kill left behind: a complete mid-epoch checkpoint (step 8 of 18, inside epoch 1)
    checkpoints = _run_dir(kill_cwd, 0) / "checkpoints"
    interrupted = load_checkpoint(checkpoints / "last.ckpt")
    assert (interrupted["epoch"], interrupted["global_step"]) == (KILL_EPOCH, 8)
    loader_state = interrupted["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader_state["epoch"] == KILL_EPOCH and loader_state["batches"] == 2
    assert load_checkpoint(checkpoints / "best.ckpt")["epoch"] == 0  # epoch 1 was never validated

    resumed = _start(
        _fit_argv(sample, tmp_path / "cache_kill", "--ckpt_path", str(checkpoints / "last.ckpt")), kill_cwd
    )
    resumed_output = _finish(resumed, kill_cwd)
    assert resumed.returncode == 0, resumed_output[-4000:]
    reference_output = _finish(reference, ref_cwd)
    assert reference.returncode == 0, reference_output[-4000:]

    ref_run, resumed_run = _run_dir(ref_cwd, 0), _run_dir(kill_cwd, 1)
    # same split and class table
    assert (resumed_run / "split.csv").read_text() == (ref_run / "split.csv").read_text()
    assert (_run_dir(kill_cwd, 0) / "split.csv").read_text() == (ref_run / "split.csv").read_text()
    final_ref = load_checkpoint(ref_run / "checkpoints" / "last.ckpt")
    final_resumed = load_checkpoint(resumed_run / "checkpoints" / "last.ckpt")
    assert final_resumed["geoguess"]["context_fingerprint"] == final_ref["geoguess"]["context_fingerprint"]
    assert (final_resumed["epoch"], final_resumed["global_step"]) == (final_ref["epoch"], final_ref["global_step"])
    # same weights (batch-norm statistics included) and optimiser moments
    _assert_same_tensors(final_ref["state_dict"], final_resumed["state_dict"], "weights")
    _assert_same_tensors(final_ref["optimizer_states"], final_resumed["optimizer_states"], "optimiser")
    assert final_resumed["lr_schedulers"] == final_ref["lr_schedulers"]
    # same validation after every epoch the resumed run trained, and the same test of the same best checkpoint
    ref_val = _epoch_metrics(ref_run, "val/mean_km")
    resumed_val = _epoch_metrics(resumed_run, "val/mean_km")
    assert list(resumed_val.index) == [1, 2]
    np.testing.assert_allclose(resumed_val.to_numpy(), ref_val.loc[[1, 2]].to_numpy(), rtol=0, atol=KM_TOL)
    for column in ("test/mean_km", "test/median_km", "test/acc"):
        ref_test, resumed_test = _epoch_metrics(ref_run, column), _epoch_metrics(resumed_run, column)
        np.testing.assert_allclose(resumed_test.to_numpy(), ref_test.to_numpy(), rtol=0, atol=KM_TOL)
    # the best checkpoint is chosen over the whole run, the interrupted part included
    assert _best_line(resumed_output).rsplit("/", 1)[-1] == _best_line(reference_output).rsplit("/", 1)[-1]
    for folder in (checkpoints, resumed_run / "checkpoints"):
        assert not list(folder.glob("last-v*.ckpt"))  # one last.ckpt per folder, always the latest state
        assert not list(folder.glob(".*.tmp"))  # nothing half-written was left behind


def _best_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("best checkpoint: ")]
    assert lines, output[-3000:]
    return lines[-1]


def test_resuming_from_an_unsafe_or_foreign_checkpoint_is_refused(sample, tmp_path, monkeypatch, capsys):
    """``geoguess fit --ckpt_path`` reads the file with weights_only before anything else."""
    monkeypatch.chdir(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(tmp_path / "payload_ran"),))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "extra": Payload()}, evil)
    args = _fit_argv(sample, tmp_path / "cache", "--trainer.logger", "false", "--ckpt_path", str(evil))
    assert cli.main(["fit", *args]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and str(evil) in err
    assert not (tmp_path / "payload_ran").exists()

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    model = lightning_cli.GeoguessCLI(args=_fit_argv(sample, tmp_path / "cache", "--trainer.logger", "false")).model
    with pytest.raises(CheckpointError, match="not written by a geoguess task"):
        lightning_cli.check_resume_checkpoint(model, foreign)

    other = tmp_path / "other_backbone.ckpt"
    record = {"format": 1, "task": "classification", "backbone": "resnet18", "image_size": 32}
    record.update({"normalization": {}, "context": {}, "context_fingerprint": ""})
    torch.save({"state_dict": {}, "geoguess": record}, other)
    with pytest.raises(CheckpointError, match=r"backbone 'resnet18' in the checkpoint vs 'shufflenet_v2_x0_5'"):
        lightning_cli.check_resume_checkpoint(model, other)


def test_resume_from_an_epoch_end_checkpoint_keeps_the_plateau_schedule(sample, tmp_path, monkeypatch):
    """Lightning writes the epoch-end checkpoint before its ReduceLROnPlateau step; the resume makes it up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = [
            *_fit_argv(sample, tmp_path / "cache"),
            "--trainer.limit_train_batches",
            "2",
            "--trainer.limit_val_batches",
            "1",
            "--step_checkpoint.every_n_train_steps",
            "0",
            "--test_after_fit",
            "false",
        ]
        for name in ("reference", "interrupted"):
            (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / "reference")
        assert lightning_cli.run([*base, "--trainer.max_epochs", "2"]) == 0
        monkeypatch.chdir(tmp_path / "interrupted")
        assert lightning_cli.run([*base, "--trainer.max_epochs", "1"]) == 0
        first = _run_dir(tmp_path / "interrupted", 0) / "checkpoints" / "last.ckpt"
        assert lightning_cli.run([*base, "--trainer.max_epochs", "2", "--ckpt_path", str(first)]) == 0
    finally:
        torch.set_num_threads(threads)
    ref = load_checkpoint(_run_dir(tmp_path / "reference", 0) / "checkpoints" / "last.ckpt")
    resumed = load_checkpoint(_run_dir(tmp_path / "interrupted", 1) / "checkpoints" / "last.ckpt")
    assert ref["epoch"] == resumed["epoch"] == 1  # last.ckpt is the last epoch, improved or not
    assert ref["lr_schedulers"][0]["last_epoch"] == 1  # stepped after epoch 0
    assert resumed["lr_schedulers"] == ref["lr_schedulers"]
    _assert_same_tensors(ref["state_dict"], resumed["state_dict"], "weights")


def test_the_best_score_survives_a_resume_into_a_new_folder(tmp_path):
    """Each run logs to a new version folder; the interrupted run's best score must still count."""
    saved = callbacks.RunCheckpoint(dirpath=tmp_path / "version_0", monitor="val/km", mode="min")
    best_path = str(tmp_path / "version_0" / "best-epoch00.ckpt")
    saved.best_model_score = torch.tensor(12.5)
    saved.best_model_path = saved.kth_best_model_path = best_path
    saved.best_k_models = {best_path: torch.tensor(12.5)}
    saved.kth_value = torch.tensor(12.5)
    state = saved.state_dict()
    resumed = callbacks.RunCheckpoint(dirpath=tmp_path / "version_1", monitor="val/km", mode="min")
    resumed.load_state_dict(state)
    assert resumed.best_model_path == best_path and float(resumed.best_model_score) == 12.5
    assert resumed.best_k_models == {best_path: torch.tensor(12.5)}
    one_process = SimpleNamespace(strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, **_: decision))
    assert not resumed.check_monitor_top_k(one_process, torch.tensor(13.0))  # worse than the interrupted run's best
    assert resumed.check_monitor_top_k(one_process, torch.tensor(12.0))
    plain = ModelCheckpoint(dirpath=tmp_path / "version_1", monitor="val/km", mode="min")
    with pytest.warns(UserWarning, match="dirpath has changed"):
        plain.load_state_dict(state)
    assert plain.check_monitor_top_k(one_process, torch.tensor(13.0))  # what this guards against
    assert resumed.last_model_path == ""  # the new run's last.ckpt goes to its own folder
