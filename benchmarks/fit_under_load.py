r"""The quick fit alone and beside two busy processes, for two source trees: how much a shared machine slows it.

    python benchmarks/fit_under_load.py --data data/synthetic_settlements --before /tmp/before_tree \\
        [--rounds 2] [--epochs 6]

Runs ``geoguess fit --config configs/quick_cpu.yaml`` (``--trainer.max_epochs EPOCHS``, no logger,
no test) on ``--data`` from each tree, first once to fill the caches, then ``--rounds`` times in
alternation: quiet, and with two busy-loop processes (started before the fit and stopped after it,
by this script). ``--before`` is another checkout of the project (e.g. ``git worktree add
/tmp/before_tree COMMIT``); the same Python runs both. Prints each run's wall time, the medians,
and each tree's slowdown under load (loaded / quiet). Note the machine's load (``uptime``) beside
the numbers: other jobs move them.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _busy(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def fit_seconds(tree: Path, data: str, epochs: int, work: Path) -> float:
    """Wall time of one quick fit run from ``tree`` (a fresh working folder each time)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(tree)
    folder = Path(tempfile.mkdtemp(dir=work))
    command = [sys.executable, "-m", "geoguess_utils.cli", "fit", "--config", str(tree / "configs" / "quick_cpu.yaml")]
    command += ["--data.roots", f"[{Path(data).resolve()}]", "--trainer.max_epochs", str(epochs)]
    command += ["--trainer.logger", "false", "--test_after_fit", "false", "--trainer.enable_progress_bar", "false"]
    command += ["--trainer.default_root_dir", str(folder), "--checkpoint.dirpath", str(folder / "ckpt")]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"fit from {tree} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def loaded_fit_seconds(tree: Path, data: str, epochs: int, work: Path, busy: int) -> float:
    """Wall time of one quick fit while ``busy`` busy-loop processes run (bounded to 30 minutes)."""
    stop_at = time.monotonic() + 1800
    workers = [multiprocessing.Process(target=_busy, args=(stop_at,), daemon=True) for _ in range(busy)]
    for worker in workers:
        worker.start()
    try:
        return fit_seconds(tree, data, epochs, work)
    finally:
        for worker in workers:
            worker.terminate()
            worker.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a labelled dataset root")
    parser.add_argument("--before", required=True, type=Path, help="another checkout of the project to compare")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--busy", type=int, default=2, help="busy-loop processes beside the loaded runs")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": REPO}
    work = Path(tempfile.mkdtemp(prefix="fit_under_load_"))
    for tree in trees.values():  # fill the image and embedding caches first
        fit_seconds(tree, args.data, 1, work)
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for name, tree in trees.items():
            quiet = fit_seconds(tree, args.data, args.epochs, work)
            loaded = loaded_fit_seconds(tree, args.data, args.epochs, work, args.busy)
            times.setdefault((name, "quiet"), []).append(quiet)
            times.setdefault((name, "loaded"), []).append(loaded)
            print(f"round {round_ + 1} {name}: quiet {quiet:.1f} s, with {args.busy} busy {loaded:.1f} s", flush=True)
    print(f"load average now: {os.getloadavg()}")
    for name in trees:
        quiet = statistics.median(times[(name, "quiet")])
        loaded = statistics.median(times[(name, "loaded")])
        print(f"{name}: median quiet {quiet:.1f} s, loaded {loaded:.1f} s, slowdown {loaded / quiet:.2f} x")


if __name__ == "__main__":
    main()
