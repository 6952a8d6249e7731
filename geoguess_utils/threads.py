"""How many threads the math libraries use: the CPUs this process may really use, and no spinning.

torch sizes its thread pools to the machine's cores. When other programs hold some of those
cores (a browser, a second job on a shared server, a CI neighbour), the pools' threads wait
for each other, and OpenMP's threads spin while they wait, burning the very CPU time the
others need: a small training step then slows down far more than the load explains.

:func:`prepare_process` (run by every ``geoguess`` command before torch is imported) asks
OpenMP to sleep instead of spinning while it waits (``OMP_WAIT_POLICY=PASSIVE``) unless the
environment already says otherwise, and :func:`available_cpus` counts the CPUs the process
may use: its CPU affinity, within the container's CPU quota (cgroup v2 ``cpu.max`` or v1
``cpu.cfs_quota_us``). ``GEOGUESS_TORCH_THREADS`` overrides the count everywhere.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from geoguess_utils.errors import ConfigError

THREADS_VARIABLE = "GEOGUESS_TORCH_THREADS"
"""Environment variable: the number of threads of torch's intra-op pool, for every command."""

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The container's CPU quota in CPUs (e.g. 1.5), or ``None`` when there is none or it cannot be read."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        if text:
            return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity, within the CPU quota (rounded up), at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity on this system
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def torch_threads() -> int:
    """Threads of torch's intra-op pool: ``GEOGUESS_TORCH_THREADS`` when set, else :func:`available_cpus`.

    Raises:
        ConfigError: The variable is set to something other than a whole number of at least 1.
    """
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if not text:
        return available_cpus()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{THREADS_VARIABLE} must be a whole number of at least 1, got {text!r}")
    return int(text)


def prepare_process() -> None:
    """Before torch is imported: OpenMP threads sleep while they wait (unless the environment says otherwise).

    Also sizes the OpenMP and MKL pools to :func:`torch_threads` unless ``OMP_NUM_THREADS`` /
    ``MKL_NUM_THREADS`` are set. Changes the environment of this process only.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        threads = str(torch_threads())
    except ConfigError:  # reported by the command that reads it, with its exit status
        return
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    os.environ.setdefault("MKL_NUM_THREADS", threads)
