"""Pick fast numeric settings for the machine at hand (decided at run time).

bf16 autocast speeds up convolutions only on CPUs with native bf16 instructions
(``avx512_bf16`` or AMX); elsewhere it emulates bf16 and is slower than fp32.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty on systems without it)."""
    info = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not info.is_file():
        return frozenset()
    for line in info.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (``avx512_bf16`` or AMX)."""
    return any(flag in cpu_flags() for flag in _BF16_FLAGS)


def auto_precision(accelerator: str = "auto") -> str:
    """Lightning ``precision`` string that is fastest here.

    On CPUs this holds for convolutional backbones at 112 px and above; with small
    images (64 px) a trained EfficientNet-Lite0 ran faster in fp32 (see ``BENCHMARKS.md``).

    Args:
        accelerator: ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"auto"`` (GPU when available).

    Returns:
        ``"bf16-mixed"`` on a bf16-capable GPU or a CPU with native bf16, else ``"32-true"``.
    """
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


def describe_device() -> str:
    """One line naming the compute device, for benchmark tables."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    model = ""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return f"CPU {model or platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {bf16}"
