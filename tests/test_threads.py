"""Thread counts from the CPUs a process may really use, and the quiet-while-waiting OpenMP policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from geoguess_utils import threads
from geoguess_utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_cgroup_quota_limits_the_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # cgroup v2: 1.5 CPUs
    assert threads.cgroup_cpu_quota(tmp_path) == 1.5
    assert threads.available_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.available_cpus(tmp_path) == 8
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")  # cgroup v1: 3 CPUs
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.available_cpus(tmp_path) == 3
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert threads.available_cpus(tmp_path) == 8


def test_the_variable_overrides_the_count_and_is_checked(monkeypatch):
    monkeypatch.setenv(threads.THREADS_VARIABLE, "3")
    assert threads.torch_threads() == 3
    monkeypatch.setenv(threads.THREADS_VARIABLE, "zero")
    with pytest.raises(ConfigError, match="GEOGUESS_TORCH_THREADS"):
        threads.torch_threads()


def test_every_command_starts_torch_with_sleeping_openmp_threads_and_the_available_count(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env |= {"PYTHONPATH": str(REPO), threads.THREADS_VARIABLE: "1"}
    code = (
        "import os, sys; from geoguess_utils.threads import prepare_process; prepare_process(); import torch; "
        "print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["PASSIVE", "1"], done.stderr
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # what the environment says wins
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split()[0] == "ACTIVE"


def test_the_head_trains_from_cached_features_on_one_thread(monkeypatch):
    import torch
    from pytorch_lightning.accelerators import CPUAccelerator

    from geoguess_utils.training.callbacks import CachedPhaseThreads

    class Settings:
        enabled = True

    class Trainer:
        accelerator = CPUAccelerator()
        datamodule = type("DM", (), {"embeddings": Settings()})()

    class Task:
        backbone_frozen = True

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the process's count, e.g. from the CPUs it may use
    try:
        callback = CachedPhaseThreads()
        callback.on_train_start(Trainer(), Task())
        callback.on_train_epoch_start(Trainer(), Task())
        assert torch.get_num_threads() == 1
        Task.backbone_frozen = False  # the backbone trains: images, the process's count again
        callback.on_train_epoch_start(Trainer(), Task())
        assert torch.get_num_threads() == 2
        Task.backbone_frozen = True
        callback.on_train_epoch_start(Trainer(), Task())
        callback.on_train_end(Trainer(), Task())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
