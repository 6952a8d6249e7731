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


def cpu_bf16_pays(train_backbone: bool) -> bool:
    """Whether bf16 autocast makes a CPU training step faster than fp32.

    Measured with ``benchmarks/train_step.py`` on an AMD EPYC with ``avx512_bf16``
    (ResNet-18 and EfficientNet-Lite0, channels_last, see ``BENCHMARKS.md``): with the
    backbone frozen (forward pass only) bf16 runs the step about 2-2.5x faster, but a
    step that also trains the backbone runs 2-3x slower than fp32 (the bf16 backward
    pass). Without native bf16 instructions bf16 is always slower.

    Args:
        train_backbone: Whether the step computes gradients through the backbone.
    """
    return cpu_has_native_bf16() and not train_backbone


def auto_precision(accelerator: str = "auto", train_backbone: bool = False) -> str:
    """Lightning ``precision`` string that is fastest here.

    Args:
        accelerator: ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"auto"`` (GPU when available).
        train_backbone: Whether the backbone is trained (on CPUs bf16 then loses, see
            :func:`cpu_bf16_pays`).

    Returns:
        ``"bf16-mixed"`` on a bf16-capable GPU, or on a CPU where :func:`cpu_bf16_pays`;
        else ``"16-mixed"`` on older GPUs and ``"32-true"`` on CPUs.
    """
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_bf16_pays(train_backbone) else "32-true"


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
