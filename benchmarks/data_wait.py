"""How long training waits for data: a timing callback and a short ``geoguess fit`` run with it.

:class:`DataWaitMeter` records, for every training batch, the wall time between the end
of the previous batch (or the start of the epoch) and the start of this one, which is
when the loop fetches the batch from the DataLoader, and the time of the step itself
(forward, backward, optimiser, logging). The gap also holds the loop's own bookkeeping,
so it is an upper bound of the time spent waiting for data.

:func:`quick_training` runs ``geoguess fit --config configs/quick_cpu.yaml`` as a
separate process with the meter added, on a given dataset, and returns the records and
the checkpoint it wrote (which the inference benchmark reuses).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from geoguess_utils.io import atomic_write_text

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
QUICK_CONFIG = REPO / "configs" / "quick_cpu.yaml"


class DataWaitMeter(pl.Callback):
    """Record data-wait and step seconds of every training batch; write them as JSON when training ends.

    Args:
        out: JSON file written at the end of training: a list of records with epoch,
            batch, ``wait_s``, ``step_s`` and whether the backbone was frozen.
    """

    def __init__(self, out: str) -> None:
        super().__init__()
        self.out = out
        self.records: list[dict[str, Any]] = []
        self._mark = 0.0
        self._start = 0.0
        self._wait = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock for the first batch's wait."""
        self._mark = time.perf_counter()

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """The batch has arrived: the wait ends, the step begins."""
        self._start = time.perf_counter()
        self._wait = self._start - self._mark

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """The step is done: record it and start the clock for the next wait."""
        now = time.perf_counter()
        self.records.append(
            {
                "epoch": trainer.current_epoch,
                "batch": batch_idx,
                "wait_s": self._wait,
                "step_s": now - self._start,
                "frozen": bool(getattr(pl_module, "backbone_frozen", False)),
            }
        )
        self._mark = now

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the records."""
        if trainer.is_global_zero:
            atomic_write_text(self.out, json.dumps(self.records))


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Data-wait share overall, in steady state (first batch of each epoch left out), and per phase.

    Returns:
        ``wait_share`` (total wait / total step time), ``steady_wait_share``, the same per
        ``frozen``/``unfrozen`` phase, batch counts and mean step seconds.
    """

    def share(rows: list[dict[str, Any]]) -> dict[str, Any]:
        step = sum(r["step_s"] for r in rows)
        wait = sum(r["wait_s"] for r in rows)
        return {
            "batches": len(rows),
            "wait_s": wait,
            "step_s": step,
            "wait_share": wait / step if step > 0 else None,
            "mean_step_s": step / len(rows) if rows else None,
            "max_wait_s": max((r["wait_s"] for r in rows), default=None),
        }

    steady = [r for r in records if r["batch"] > 0]
    result = {"all": share(records), "steady": share(steady)}
    for phase, frozen in (("frozen", True), ("unfrozen", False)):
        result[phase] = share([r for r in records if r["frozen"] == frozen])
        result[f"{phase}_steady"] = share([r for r in steady if r["frozen"] == frozen])
    return result


def quick_training(
    data_root: Path,
    work: Path,
    epochs: int = 2,
    frozen_epochs: int = 1,
    limit_train_batches: int | None = None,
    extra: list[str] | None = None,
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """Run ``geoguess fit`` with the quick CPU config and the meter, in a fresh process.

    Args:
        data_root: Labelled dataset root to train on.
        work: Folder for the run's logs, checkpoints, caches and the meter's JSON.
        epochs: Training epochs.
        frozen_epochs: Of which the first ones train the head only.
        limit_train_batches: Cap on training batches per epoch (None: all).
        extra: More ``geoguess fit`` arguments (overrides).
        timeout_s: Give up after this long.

    Returns:
        ``records`` (per-batch timings), ``summary`` (:func:`summarize`), ``checkpoint``
        (path of the best checkpoint), ``wall_s`` and the command line.

    Raises:
        RuntimeError: When the training process fails (its output is included).
    """
    work.mkdir(parents=True, exist_ok=True)
    out = work / "data_wait.json"
    out.unlink(missing_ok=True)
    meter = json.dumps({"class_path": "data_wait.DataWaitMeter", "init_args": {"out": str(out)}})
    argv = [
        sys.executable,
        "-m",
        "geoguess_utils.cli",
        "fit",
        "--config",
        str(QUICK_CONFIG),
        "--data.roots",
        f"[{data_root}]",
        "--data.cache.dir",
        str(work / "cache"),
        "--trainer.max_epochs",
        str(epochs),
        "--model.init_args.freeze_backbone_epochs",
        str(frozen_epochs),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.callbacks+",
        meter,
        "--test_after_fit",
        "false",
    ]
    if limit_train_batches is not None:
        argv += ["--trainer.limit_train_batches", str(limit_train_batches)]
    argv += list(extra or [])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCHMARKS), *filter(None, [env.get("PYTHONPATH")])])
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"quick training failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    checkpoint = None
    for line in done.stderr.splitlines():
        if line.startswith("best checkpoint: "):
            checkpoint = str((work / line.removeprefix("best checkpoint: ").strip()).resolve())
    records = json.loads(out.read_text())
    return {
        "records": records,
        "summary": summarize(records),
        "checkpoint": checkpoint,
        "wall_s": wall,
        "command": "geoguess " + " ".join(argv[3:]),
    }
